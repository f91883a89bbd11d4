// Raw terminal input as keys. In raw mode one `data` chunk may hold several keys (typing
// fast, pasting) and escape sequences for the arrows and editing keys; an ESC byte on its
// own is the Esc key.

export type KeyName =
  | 'enter'
  | 'escape'
  | 'backspace'
  | 'delete'
  | 'left'
  | 'right'
  | 'up'
  | 'down'
  | 'home'
  | 'end'
  | 'pageup'
  | 'pagedown'
  | 'tab'
  | 'ctrl-a'
  | 'ctrl-c'
  | 'ctrl-d'
  | 'ctrl-e'
  | 'ctrl-k'
  | 'ctrl-l'
  | 'ctrl-u'
  | 'ctrl-w'

/** A printable character, or a named key. */
export type Key = { char: string } | { name: KeyName }

const SEQUENCES: Readonly<Record<string, KeyName>> = {
  '[A': 'up',
  '[B': 'down',
  '[C': 'right',
  '[D': 'left',
  '[H': 'home',
  '[F': 'end',
  OA: 'up',
  OB: 'down',
  OC: 'right',
  OD: 'left',
  OH: 'home',
  OF: 'end',
  '[1~': 'home',
  '[7~': 'home',
  '[4~': 'end',
  '[8~': 'end',
  '[3~': 'delete',
  '[5~': 'pageup',
  '[6~': 'pagedown',
}

const CONTROLS: Readonly<Record<number, KeyName>> = {
  0x01: 'ctrl-a',
  0x03: 'ctrl-c',
  0x04: 'ctrl-d',
  0x05: 'ctrl-e',
  0x08: 'backspace',
  0x09: 'tab',
  0x0a: 'enter',
  0x0b: 'ctrl-k',
  0x0c: 'ctrl-l',
  0x0d: 'enter',
  0x15: 'ctrl-u',
  0x17: 'ctrl-w',
  0x7f: 'backspace',
}

export function decodeKeys(chunk: string): Key[] {
  const keys: Key[] = []
  for (let i = 0; i < chunk.length;) {
    const c = chunk[i]!
    if (c === '\x1b') {
      // CSI/SS3: ESC [ params final, or ESC O letter; anything else is a lone Esc
      const next = chunk[i + 1]
      if (next === '[' || next === 'O') {
        let j = i + 2
        if (next === '[') while (j < chunk.length && /[0-9;]/.test(chunk[j]!)) j++
        const body = chunk.slice(i + 1, j + 1)
        // modifiers (Ctrl, Shift: `[1;5C`, `[3;2~`) do not change what the key does here
        const plain = body.replace(/^\[1;\d+([A-Z])$/, '[$1').replace(/;\d+~$/, '~')
        const name = SEQUENCES[plain]
        if (j < chunk.length) {
          if (name) keys.push({ name })
          i = j + 1
          continue
        }
      }
      keys.push({ name: 'escape' })
      i++
      continue
    }
    const code = c.charCodeAt(0)
    if (c === '\r' && chunk[i + 1] === '\n') {
      keys.push({ name: 'enter' })
      i += 2
      continue
    }
    const control = CONTROLS[code]
    if (control) keys.push({ name: control })
    else if (code >= 0x20) {
      // keep surrogate pairs together
      const point = chunk.codePointAt(i)!
      const ch = String.fromCodePoint(point)
      keys.push({ char: ch })
      i += ch.length
      continue
    }
    i++
  }
  return keys
}

export const isChar = (key: Key, ch?: string): key is { char: string } =>
  'char' in key && (ch === undefined || key.char === ch)

export const isKey = (key: Key, name: KeyName): boolean => 'name' in key && key.name === name
