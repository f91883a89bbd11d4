// Shell lines into commands and words, with the quoting rules of sh that people type
// without thinking: '...' is literal, "..." allows \" and \\, a backslash escapes the next
// character outside quotes, `;` and newlines end a command, `#` at the start of a word
// starts a comment. No variables, globs or pipes: every word goes to the command as typed.

import { UsageError } from '../../core/errors.js'

export interface Word {
  value: string
  /** Offset in the text of the word's first raw character (a quote, if it starts with one). */
  start: number
}

export interface Segment {
  words: Word[]
  /** 1-based line of the text where the segment's first word starts. */
  line: number
}

export interface Scan {
  /** The commands, split at `;` and newlines; the last one is where the text ends. */
  segments: Segment[]
  /** A word still being typed when the text ends (not yet ended by a blank, `;` or newline). */
  current: (Word & { quote: "'" | '"' | undefined }) | undefined
  /** The text ends inside quotes or with a backslash continuation: more input is needed. */
  incomplete: boolean
  /** The text ends inside a comment. */
  inComment: boolean
  /** Where an unterminated quote opened (1-based line), for the error message. */
  openQuoteLine: number | undefined
}

const BLANK = new Set([' ', '\t', '\r'])

export function scan(text: string): Scan {
  const segments: Segment[] = [{ words: [], line: 1 }]
  let state: 'blank' | 'word' | 'single' | 'double' | 'comment' = 'blank'
  let value = ''
  let start = -1
  let line = 1
  let quoteLine = 1
  let continued = false

  const segment = () => segments[segments.length - 1]!
  const begin = (at: number) => {
    if (start >= 0) return
    start = at
    if (segment().words.length === 0) segment().line = line
  }
  const endWord = () => {
    if (start >= 0) segment().words.push({ value, start })
    value = ''
    start = -1
  }
  const endSegment = () => {
    endWord()
    segments.push({ words: [], line })
  }

  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    continued = false
    if (state === 'comment') {
      if (c === '\n') {
        line++
        state = 'blank'
        endSegment()
      }
      continue
    }
    if (state === 'single') {
      if (c === "'") state = 'word'
      else value += c
      if (c === '\n') line++
      continue
    }
    if (state === 'double') {
      if (c === '"') state = 'word'
      else if (c === '\\' && i + 1 < text.length && '"\\\n'.includes(text[i + 1]!)) {
        i++
        if (text[i] === '\n') line++
        else value += text[i]
      } else {
        if (c === '\n') line++
        value += c
      }
      continue
    }
    // outside quotes
    if (c === '\\') {
      if (i + 1 >= text.length) {
        continued = true // a trailing backslash: the next line continues this one
        break
      }
      i++
      if (text[i] === '\n') {
        line++
        continued = true
        continue
      }
      begin(i - 1)
      value += text[i]
      state = 'word'
    } else if (c === "'" || c === '"') {
      begin(i)
      state = c === "'" ? 'single' : 'double'
      quoteLine = line
    } else if (c === ';' || c === '\n') {
      if (c === '\n') line++
      state = 'blank'
      endSegment()
    } else if (BLANK.has(c)) {
      state = 'blank'
      endWord()
    } else if (c === '#' && start < 0) {
      state = 'comment'
    } else {
      begin(i)
      value += c
      state = 'word'
    }
  }

  const inQuotes = state === 'single' || state === 'double'
  const current =
    start >= 0
      ? {
          value,
          start,
          quote: inQuotes ? (state === 'single' ? ("'" as const) : ('"' as const)) : undefined,
        }
      : undefined
  return {
    segments,
    current,
    incomplete: inQuotes || continued,
    inComment: state === 'comment',
    openQuoteLine: inQuotes ? quoteLine : undefined,
  }
}

export interface ShellCommand {
  argv: string[]
  /** 1-based line where the command starts. */
  line: number
}

/**
 * Split complete text into commands; an unterminated quote is a usage error. With
 * `firstLine` (scripts), the error names the line.
 */
export function splitCommands(text: string, firstLine?: number): ShellCommand[] {
  const s = scan(text)
  const offset = (firstLine ?? 1) - 1
  if (s.openQuoteLine !== undefined) {
    const where = firstLine === undefined ? '' : `line ${s.openQuoteLine + offset}: `
    throw new UsageError(`${where}unterminated quote`, {
      hint: 'close it with the same quote; inside \'...\' nothing is special, inside "..." write \\" and \\\\',
    })
  }
  const segments = s.segments.map((seg) => ({ ...seg, words: [...seg.words] }))
  if (s.current) segments[segments.length - 1]!.words.push(s.current)
  return segments
    .filter((seg) => seg.words.length > 0)
    .map((seg) => ({ argv: seg.words.map((w) => w.value), line: seg.line + offset }))
}

/** A word as the shell would need it typed: quoted when it holds anything special. */
export function quoteWord(value: string): string {
  if (value !== '' && !/[\s'"\\;#]/.test(value)) return value
  return `'${value.replaceAll("'", `'\\''`)}'`
}
