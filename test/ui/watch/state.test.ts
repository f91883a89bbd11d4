// The watch view's keys as a state machine: q/Ctrl-C quit, h help, f the filter editor
// (Enter applies or shows the error, Esc cancels), s sort, r reset, o view, space pause.
import { describe, expect, it } from 'vitest'
import { decodeKeys } from '../../../src/ui/watch/keys.js'
import {
  handleKey,
  initialUiState,
  type WatchEffect,
  type WatchUiState,
} from '../../../src/ui/watch/state.js'

/** Feed raw input; returns the final state and every effect, in order. */
function type(input: string, state = initialUiState(), filterText = '') {
  const effects: WatchEffect[] = []
  for (const key of decodeKeys(input)) {
    const r = handleKey(state, key, { filterText })
    state = r.state
    effects.push(...r.effects)
  }
  return { state, effects }
}

describe('watch keys', () => {
  it.each(['q', 'Q', '\x03'])('%j quits', (key) => {
    expect(type(key).effects).toEqual([{ kind: 'quit' }])
  })

  it('Ctrl-C quits even from the help and the filter editor', () => {
    expect(type('h\x03').effects).toEqual([{ kind: 'quit' }])
    expect(type('ftype\x03').effects).toEqual([{ kind: 'quit' }])
  })

  it('s cycles the sort keys and says so', () => {
    const { state, effects } = type('sss')
    expect(effects).toEqual([
      { kind: 'sort', sort: 'rate' },
      { kind: 'sort', sort: 'latency' },
      { kind: 'sort', sort: 'address' },
    ])
    expect(state.sort).toBe('address')
    expect(state.message?.text).toBe('sorted by address')
    expect(type('s', state).state.sort).toBe('count')
  })

  it('o switches between the table and the log; space pauses and resumes', () => {
    const o = type('o')
    expect(o.state.view).toBe('log')
    expect(o.effects).toEqual([{ kind: 'view', view: 'log' }])
    expect(type('o', o.state).state.view).toBe('top')
    const paused = type(' ')
    expect(paused.state.paused).toBe(true)
    expect(type(' ', paused.state).effects).toEqual([{ kind: 'pause', paused: false }])
  })

  it('r resets', () => {
    const { state, effects } = type('r')
    expect(effects).toEqual([{ kind: 'reset' }])
    expect(state.message?.text).toMatch(/reset/)
  })

  it('h opens the help; any key closes it without acting; q still quits', () => {
    const open = type('h').state
    expect(open.help).toBe(true)
    const closed = type('s', open)
    expect(closed.state.help).toBe(false)
    expect(closed.effects).toEqual([])
    expect(type('q', open).effects).toEqual([{ kind: 'quit' }])
  })

  it('f opens the editor on the current filter; Enter applies the new one', () => {
    const opened = type('f', initialUiState(), 'type pio').state
    expect(opened.editor).toEqual({ text: 'type pio ', cursor: 9 })
    const { state, effects } = type('dir write\r', opened)
    expect(state.editor).toBeUndefined()
    expect(effects).toEqual([{ kind: 'filter', spec: { types: ['pio'], dirs: ['write'] } }])
  })

  it('keys in the editor edit the line instead of acting (q, s, o, space)', () => {
    const { state, effects } = type('fq so')
    expect(effects).toEqual([])
    expect(state.editor).toEqual({ text: 'q so', cursor: 4 })
  })

  it('line editing: arrows, Home/End, Backspace, Delete, Ctrl-U, Ctrl-W', () => {
    const edit = (input: string) => type('f' + input).state.editor
    expect(edit('type pio\x1b[D\x1b[D\x7f')).toEqual({ text: 'type io', cursor: 5 })
    expect(edit('abc\x1b[H\x1b[3~')).toEqual({ text: 'bc', cursor: 0 })
    expect(edit('abc\x01X\x05Y')).toEqual({ text: 'XabcY', cursor: 5 })
    expect(edit('type pio\x17')).toEqual({ text: 'type ', cursor: 5 })
    expect(edit('type pio\x1b[D\x1b[D\x15')).toEqual({ text: 'io', cursor: 0 })
    expect(edit('\x7f\x1b[D')).toEqual({ text: '', cursor: 0 })
  })

  it('a bad filter keeps the editor open and shows why; Esc then cancels', () => {
    const bad = type('ftype dma\r')
    expect(bad.effects).toEqual([])
    expect(bad.state.editor?.text).toBe('type dma')
    expect(bad.state.message).toEqual({
      text: "type: 'dma' is not one of pio, mmio, pcicfg",
      error: true,
    })
    const fixed = type('\x7f\x7f\x7fmmio\r', bad.state)
    expect(fixed.effects).toEqual([{ kind: 'filter', spec: { types: ['mmio'] } }])
    const cancelled = type('\x1b', bad.state)
    expect(cancelled.state.editor).toBeUndefined()
    expect(cancelled.effects).toEqual([])
  })

  it('an empty line clears the filter', () => {
    expect(type('f\x15\r', initialUiState(), 'type pio').effects).toEqual([
      { kind: 'filter', spec: {} },
    ])
  })

  it('an unknown key points at the help and changes nothing else', () => {
    const before: WatchUiState = initialUiState({ sort: 'rate' })
    const { state, effects } = type('x', before)
    expect(effects).toEqual([])
    expect({ ...state, message: undefined }).toEqual(before)
    expect(state.message?.text).toMatch(/h shows the keys/)
  })
})
