// The VM name a launch script gives acrn-dm, read from the script's text without running
// any of it. acrnctl finds it by running the whole script with bash (as root, side effects
// and all) with the acrn-dm line swapped for `acrnctl gentmpfile`; here the script is
// read as bash would expand the acrn-dm command's last argument: its words (quotes,
// escapes, line continuations, comments, redirections and `| ; &` ending the command),
// plain assignments above it (`name=vm1`, `export name=vm1`, arrays `p=(... vm1)` over
// several lines), the script's arguments (`$1`, `${1:-vm1}`) and `${VAR:-default}`.
// What it cannot follow is refused with the reason, never guessed: a command substitution
// (`$(...)`, backquotes), arithmetic, a variable set some other way (`read`, a loop, a
// sourced file), or a positional parameter inside a function (the function's, not the
// script's). `vm add --name` then says the name instead.

import { ConflictError, UsageError } from '../errors.js'
import { addToRegistry, checkRegistryArgs, checkVmName, type RegistryEntry } from './registry.js'

/** Why the name could not be read, and where. */
export class ScriptReadError extends Error {
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super(line === undefined ? message : `line ${line}: ${message}`)
    this.name = 'ScriptReadError'
  }
}

export interface AcrnDmCommand {
  /** The VM name: the command's last argument. */
  name: string
  /** 1-based line of the acrn-dm command. */
  line: number
  /** The command's words as bash would pass them (acrn-dm and its options). */
  argv: string[]
}

type Value =
  | { kind: 'scalar'; text: string }
  | { kind: 'array'; items: string[] }
  /** Set in a way this reader cannot follow: why, and where. */
  | { kind: 'unknown'; why: string; line: number }

/** A word of shell text: its pieces, literal or to expand. */
type Piece = { lit: string } | { expand: string; quoted: boolean }
interface Word {
  pieces: Piece[]
  /** An operator (`|`, `;`, `&`, `&&`, `||`, `(`, `)`) rather than a word. */
  op?: string
}

const OPERATORS = ['&&', '||', ';;', '|', ';', '&', '(', ')']

/** Split one logical line into words and operators, as bash's tokenizer would. */
function tokenize(text: string, line: number): Word[] {
  const words: Word[] = []
  let current: Piece[] | undefined
  let lit = ''
  const flushLit = () => {
    if (lit !== '') (current ??= []).push({ lit })
    lit = ''
  }
  const endWord = () => {
    flushLit()
    if (current) words.push({ pieces: current })
    current = undefined
  }
  const start = () => (current ??= [])
  let i = 0
  /** `$NAME`, `${...}`, `$1`, `$@`...: the text to expand, from i (at the `$`). */
  const dollar = (quoted: boolean) => {
    const next = text[i + 1]
    if (next === '(') {
      throw new ScriptReadError(
        text[i + 2] === '('
          ? 'an arithmetic expansion $((...)) is computed when the script runs'
          : 'a command substitution $(...) runs a command',
        line,
      )
    }
    if (next === '{') {
      const close = text.indexOf('}', i + 2)
      if (close < 0) throw new ScriptReadError('an unclosed ${', line)
      flushLit()
      start().push({ expand: text.slice(i + 2, close), quoted })
      i = close + 1
      return
    }
    const m = /^([A-Za-z_][A-Za-z0-9_]*|[0-9]|[@*#?$!-])/.exec(text.slice(i + 1))
    if (!m) {
      lit += '$'
      i++
      return
    }
    flushLit()
    start().push({ expand: m[1]!, quoted })
    i += 1 + m[1]!.length
  }
  while (i < text.length) {
    const ch = text[i]!
    if (ch === ' ' || ch === '\t') {
      endWord()
      i++
    } else if (ch === '#' && current === undefined && lit === '') {
      break // a comment to the end of the line
    } else if (ch === "'") {
      const close = text.indexOf("'", i + 1)
      if (close < 0) throw new ScriptReadError('an unclosed single quote', line)
      start()
      lit += text.slice(i + 1, close)
      i = close + 1
    } else if (ch === '"') {
      start()
      i++
      while (i < text.length && text[i] !== '"') {
        const c = text[i]!
        if (c === '\\' && i + 1 < text.length && '$`"\\'.includes(text[i + 1]!)) {
          lit += text[i + 1]
          i += 2
        } else if (c === '$') dollar(true)
        else if (c === '`')
          throw new ScriptReadError('a command substitution `...` runs a command', line)
        else {
          lit += c
          i++
        }
      }
      if (i >= text.length) throw new ScriptReadError('an unclosed double quote', line)
      i++
    } else if (ch === '\\') {
      start()
      lit += text[i + 1] ?? ''
      i += 2
    } else if (ch === '$') {
      dollar(false)
    } else if (ch === '`') {
      throw new ScriptReadError('a command substitution `...` runs a command', line)
    } else {
      const op = text.startsWith('&>', i) ? undefined : OPERATORS.find((o) => text.startsWith(o, i))
      if (op) {
        endWord()
        words.push({ pieces: [], op })
        i += op.length
      } else if ((ch === '>' || ch === '<' || ch === '&') && current === undefined && lit === '') {
        // a redirection with no fd number before it
        const m = /^(>>|>&|<&|&>|>|<)\s*(\S*)/.exec(text.slice(i))!
        words.push({ pieces: [], op: 'redirect' })
        i += m[0].length
      } else if (
        (ch === '>' || ch === '<') &&
        lit !== '' &&
        /^\d+$/.test(lit) &&
        current === undefined
      ) {
        lit = ''
        const m = /^(>>|>&|<&|>|<)\s*(\S*)/.exec(text.slice(i))!
        words.push({ pieces: [], op: 'redirect' })
        i += m[0].length
      } else {
        lit += ch
        i++
      }
    }
  }
  endWord()
  return words
}

/** The logical lines of a script: continuations joined, with the line each starts on. */
function logicalLines(text: string): { text: string; line: number }[] {
  const out: { text: string; line: number }[] = []
  const raw = text.split('\n')
  for (let n = 0; n < raw.length; n++) {
    const first = n + 1
    let joined = raw[n]!.replace(/\r$/, '')
    while (/(^|[^\\])(\\\\)*\\$/.test(joined) && n + 1 < raw.length) {
      joined = joined.slice(0, -1) + raw[++n]!.replace(/\r$/, '')
    }
    out.push({ text: joined, line: first })
  }
  return out
}

interface Scope {
  vars: Map<string, Value>
  args: readonly string[]
  /** The function a line is in, if any (its positional parameters are not the script's). */
  inFunction: string | undefined
  line: number
}

function lookup(name: string, scope: Scope): Value | undefined {
  if (/^[0-9]$/.test(name)) {
    if (scope.inFunction !== undefined) {
      throw new ScriptReadError(
        `$${name} inside function ${scope.inFunction} is the function's argument, not the script's`,
        scope.line,
      )
    }
    const v = name === '0' ? 'script' : scope.args[Number(name) - 1]
    return v === undefined ? undefined : { kind: 'scalar', text: v }
  }
  if (/^[@*#?$!-]$/.test(name)) {
    throw new ScriptReadError(`$${name} is known only when the script runs`, scope.line)
  }
  const v = scope.vars.get(name)
  if (v?.kind === 'unknown') {
    throw new ScriptReadError(`$${name} is set on line ${v.line} by ${v.why}`, scope.line)
  }
  return v
}

/** The text of a variable known to be set (lookup has refused unknown ones). */
function textOf(v: Value): string {
  return v.kind === 'array' ? (v.items[0] ?? '') : v.kind === 'scalar' ? v.text : ''
}

function itemsOf(v: Value): string[] {
  return v.kind === 'array' ? v.items : v.kind === 'scalar' ? [v.text] : []
}

/** The words one piece to expand gives (more than one only for "${arr[@]}" / $unquoted). */
function expandPiece(expr: string, quoted: boolean, scope: Scope): string[] {
  let m: RegExpExecArray | null
  if ((m = /^([A-Za-z_][A-Za-z0-9_]*)\[([@*])\]$/.exec(expr))) {
    const v = lookup(m[1]!, scope)
    if (v === undefined)
      throw new ScriptReadError(`\${${expr}}: ${m[1]} is not set above`, scope.line)
    const items = itemsOf(v)
    return quoted && m[2] === '*' ? [items.join(' ')] : items
  }
  if ((m = /^([A-Za-z_][A-Za-z0-9_]*)\[(-?[0-9]+)\]$/.exec(expr))) {
    const v = lookup(m[1]!, scope)
    const items = v === undefined ? [] : itemsOf(v)
    const k = Number(m[2])
    const item = items[k < 0 ? items.length + k : k]
    if (item === undefined) throw new ScriptReadError(`\${${expr}} is not set above`, scope.line)
    return [item]
  }
  m = /^([A-Za-z_][A-Za-z0-9_]*|[0-9]+)(?:(:?)([-=])(.*))?$/.exec(expr)
  if (!m) {
    throw new ScriptReadError(`\${${expr}} is an expansion this reader does not follow`, scope.line)
  }
  const [, name, colon, op, fallback] = m
  const v = lookup(name!, scope)
  const text = v === undefined ? undefined : textOf(v)
  let result: string
  if (op !== undefined && (text === undefined || (colon === ':' && text === ''))) {
    if (/[$`]/.test(fallback!)) {
      throw new ScriptReadError(`the default of \${${expr}} is itself an expansion`, scope.line)
    }
    result = fallback!
  } else if (text === undefined) {
    throw new ScriptReadError(
      /^[0-9]+$/.test(name!)
        ? `$${name} is the script's argument ${name}, and vm add was given none`
        : `$${name} is not set by a plain assignment above`,
      scope.line,
    )
  } else result = text
  // unquoted: split on blanks (IFS) as bash does; a glob pattern is not followed
  return quoted ? [result] : result.split(/[ \t\n]+/).filter((w) => w !== '')
}

/** A word's expansion: one or more fields (zero when an unquoted expansion is empty). */
function expandWord(word: Word, scope: Scope): string[] {
  let fields: string[] = []
  let open = false // whether the last field may still grow
  let sawQuotedOrLit = false
  for (const piece of word.pieces) {
    if ('lit' in piece) {
      if (open) fields[fields.length - 1] += piece.lit
      else fields.push(piece.lit)
      open = true
      sawQuotedOrLit = true
      continue
    }
    const parts = expandPiece(piece.expand, piece.quoted, scope)
    if (piece.quoted) sawQuotedOrLit = true
    if (parts.length === 0) continue
    if (open) fields[fields.length - 1] = fields.at(-1)! + parts[0]!
    else fields.push(parts[0]!)
    fields = fields.concat(parts.slice(1))
    open = true
  }
  if (fields.length === 0 && sawQuotedOrLit) fields = ['']
  return fields
}

const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)(\+?)=/

/** Apply the assignments a command made of nothing else makes (`a=1 b=2`, `export a=1`). */
function assignments(words: Word[], scope: Scope): boolean {
  let list = words
  const first = words[0]
  if (first && first.pieces.length === 1 && 'lit' in first.pieces[0]!) {
    const head = first.pieces[0].lit
    if (head === 'export' || head === 'declare' || head === 'local' || head === 'readonly')
      list = words.slice(1).filter((w) => !isFlagWord(w))
  }
  if (list.length === 0 || list.some((w) => w.op !== undefined || !assignmentOf(w))) return false
  for (const w of list) {
    const { name, append, value } = assignmentOf(w)!
    const fields = expandWord(value, scope)
    const text = fields.join(' ')
    const old = append ? lookup(name, scope) : undefined
    const before = old === undefined ? '' : textOf(old)
    scope.vars.set(name, { kind: 'scalar', text: append ? before + text : text })
  }
  return true
}

function isFlagWord(w: Word): boolean {
  return w.pieces.length === 1 && 'lit' in w.pieces[0]! && /^-[a-zA-Z]+$/.test(w.pieces[0].lit)
}

function assignmentOf(w: Word): { name: string; append: boolean; value: Word } | undefined {
  const first = w.pieces[0]
  if (!first || !('lit' in first)) return undefined
  const m = ASSIGNMENT.exec(first.lit)
  if (!m) return undefined
  const rest = first.lit.slice(m[0].length)
  return {
    name: m[1]!,
    append: m[2] === '+',
    value: { pieces: [...(rest ? [{ lit: rest }] : []), ...w.pieces.slice(1)] },
  }
}

/** Wrappers that run the next word as the command. */
const PREFIXES = new Set(['exec', 'nohup', 'time', 'command', 'sudo'])

/** The command words of a simple command (assignments and wrappers before it skipped). */
function commandWords(words: Word[]): Word[] {
  let i = 0
  while (i < words.length && !words[i]!.op) {
    const w = words[i]!
    const lit = w.pieces.length === 1 && 'lit' in w.pieces[0]! ? w.pieces[0].lit : undefined
    if (assignmentOf(w) || (lit !== undefined && PREFIXES.has(lit))) i++
    else break
  }
  const out: Word[] = []
  for (; i < words.length; i++) {
    const w = words[i]!
    if (w.op === 'redirect') continue
    if (w.op !== undefined) break
    out.push(w)
  }
  return out
}

function isAcrnDm(word: Word, scope: Scope): boolean {
  // the command word's literal text: acrnctl's test, the first word ends in "acrn-dm"
  const text = word.pieces.map((p) => ('lit' in p ? p.lit : `$${p.expand}`)).join('')
  if (text.endsWith('acrn-dm')) return true
  try {
    return expandWord(word, scope).at(-1)?.endsWith('acrn-dm') ?? false
  } catch {
    return false
  }
}

/**
 * Find the acrn-dm command of a launch script and the VM name it is given, for the
 * script's arguments `args`. Throws ScriptReadError when there is no acrn-dm command or
 * its name cannot be known without running the script.
 */
export function readLaunchScript(text: string, args: readonly string[] = []): AcrnDmCommand {
  if (text.includes('\0')) throw new ScriptReadError('it is not a text file (it has NUL bytes)')
  const scope: Scope = { vars: new Map(), args, inFunction: undefined, line: 0 }
  const found: AcrnDmCommand[] = []
  let braceDepth = 0
  let functionDepth = 0
  let pendingArray: { name: string; words: Word[]; line: number } | undefined
  for (const { text: lineText, line } of logicalLines(text)) {
    scope.line = line
    const trimmed = lineText.trim()
    // an array assignment over several lines: name=( ... )
    if (pendingArray) {
      const words = tokenize(lineText, line)
      const close = words.findIndex((w) => w.op === ')')
      pendingArray.words.push(...(close < 0 ? words : words.slice(0, close)))
      if (close >= 0) {
        setArray(pendingArray.name, pendingArray.words, scope)
        pendingArray = undefined
      }
      continue
    }
    const fn =
      /^(?:function\s+([A-Za-z_][\w-]*)\s*(?:\(\s*\))?|([A-Za-z_][\w-]*)\s*\(\s*\))\s*(\{)?\s*$/.exec(
        trimmed,
      )
    if (fn) {
      scope.inFunction = fn[1] ?? fn[2]
      functionDepth = braceDepth + 1
      if (fn[3]) braceDepth++
      continue
    }
    if (trimmed === '{') {
      braceDepth++
      continue
    }
    if (trimmed === '}' || trimmed.startsWith('} ') || trimmed === '};') {
      if (braceDepth === functionDepth) {
        scope.inFunction = undefined
        functionDepth = 0
      }
      braceDepth = Math.max(0, braceDepth - 1)
      continue
    }
    let words: Word[]
    try {
      words = tokenize(lineText, line)
    } catch (e) {
      // a line bash would run that we cannot read matters only if it is the acrn-dm line
      if (/(^|[\s;&|/])acrn-dm(\s|$)/.test(lineText)) throw e
      const a = ASSIGNMENT.exec(trimmed.replace(/^(export|declare|local|readonly)\s+/, ''))
      if (a) {
        const why = (e as Error).message.replace(/^line \d+: /, '')
        scope.vars.set(a[1]!, { kind: 'unknown', why, line })
      }
      continue
    }
    // name=( a b c ) on one line, or opening one over several
    const arr = words.length >= 2 && words[1]!.op === '(' ? arrayStart(words[0]!) : undefined
    if (arr !== undefined) {
      const rest = words.slice(2)
      const close = rest.findIndex((w) => w.op === ')')
      if (close < 0) pendingArray = { name: arr, words: rest, line }
      else setArray(arr, rest.slice(0, close), scope)
      continue
    }
    if (words.length === 0) continue
    try {
      if (assignments(words, scope)) continue
    } catch (e) {
      // a variable we cannot know: it matters only if the acrn-dm line uses it
      const why = (e as Error).message.replace(/^line \d+: /, '')
      for (const w of words) {
        const a = assignmentOf(w)
        if (a) scope.vars.set(a.name, { kind: 'unknown', why, line })
      }
      continue
    }
    const cmd = commandWords(words)
    if (cmd.length === 0 || !isAcrnDm(cmd[0]!, scope)) continue
    const argv = cmd.flatMap((w) => expandWord(w, scope))
    const name = argv.at(-1)
    if (argv.length < 2 || name === undefined || name === '' || name.startsWith('-')) {
      throw new ScriptReadError('the acrn-dm command has no VM name as its last argument', line)
    }
    found.push({ name, line, argv })
  }
  if (found.length === 0) {
    throw new ScriptReadError(
      "no acrn-dm command (a line whose command's name ends in acrn-dm, as acrnctl looks for)",
    )
  }
  const names = [...new Set(found.map((f) => f.name))]
  if (names.length > 1) {
    throw new ScriptReadError(
      `it runs acrn-dm more than once with different names (${found.map((f) => `${f.name} on line ${f.line}`).join(', ')})`,
    )
  }
  return found[0]!
}

function arrayStart(word: Word): string | undefined {
  const a = assignmentOf(word)
  return a && a.value.pieces.length === 0 ? a.name : undefined
}

function setArray(name: string, words: Word[], scope: Scope): void {
  try {
    const items = words.filter((w) => w.op === undefined).flatMap((w) => expandWord(w, scope))
    scope.vars.set(name, { kind: 'array', items })
  } catch (e) {
    const why = (e as Error).message.replace(/^line \d+: /, '')
    scope.vars.set(name, { kind: 'unknown', why, line: scope.line })
  }
}

export interface AddedScript extends RegistryEntry {
  /** The script the entry was copied from. */
  source: string
  /** How the name was learnt: the script's acrn-dm line, or --name. */
  nameFrom: { line: number; command: string[] } | 'given'
}

/**
 * Register the launch script at `source` with `args`: its VM name read from its acrn-dm
 * command (launch-script.ts), or `name` when given (which must then agree with a name the
 * script does give). `taken` says whether a VM of that name exists elsewhere.
 */
export function registerLaunchScript(options: {
  confDir: string
  source: string
  text: Buffer
  args: readonly string[]
  name?: string
  taken?: (name: string) => string | undefined
}): AddedScript {
  checkRegistryArgs(options.args)
  let read: ReturnType<typeof readLaunchScript> | undefined
  let unreadable: ScriptReadError | undefined
  try {
    read = readLaunchScript(options.text.toString('utf8'), options.args)
  } catch (e) {
    if (!(e instanceof ScriptReadError)) throw e
    unreadable = e
  }
  if (options.name !== undefined) {
    checkVmName(options.name, '--name')
    if (read && read.name !== options.name) {
      throw new UsageError(
        `${options.source} names its VM '${read.name}' (line ${read.line}), not '${options.name}'`,
        {
          flag: '--name',
          hint: `leave out --name, or change the script; start would run a VM named '${read.name}'`,
        },
      )
    }
  } else if (!read) {
    throw new UsageError(`cannot read the VM name from ${options.source}: ${unreadable!.message}`, {
      hint: 'hsmctl reads the acrn-dm command’s last argument without running the script; say the name yourself with --name NAME',
    })
  }
  const name = options.name ?? read!.name
  checkVmName(name)
  const other = options.taken?.(name)
  if (other) {
    throw new ConflictError(
      `a VM named '${name}' exists already: ${other}`,
      'VM names are unique; pick another (--name, or the script’s)',
    )
  }
  const entry = addToRegistry(options.confDir, { name, script: options.text, args: options.args })
  return {
    ...entry,
    source: options.source,
    nameFrom: read ? { line: read.line, command: read.argv } : 'given',
  }
}
