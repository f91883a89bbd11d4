// The shell's splitter: `;` and newlines end commands, `#` starts a comment, quotes and
// backslashes keep what they enclose together (UX.md, "Interactive shell").

import { describe, expect, it } from 'vitest'
import { quoteWord, scan, splitCommands } from '../../../src/cli/shell/tokenize.js'

const argvs = (text: string) => splitCommands(text).map((c) => c.argv)

describe('splitting commands', () => {
  it.each([
    ['vm list', [['vm', 'list']]],
    ['  vm   show\tdemo  ', [['vm', 'show', 'demo']]],
    [
      'vm create a; vm start a',
      [
        ['vm', 'create', 'a'],
        ['vm', 'start', 'a'],
      ],
    ],
    [
      'vm list;vm list',
      [
        ['vm', 'list'],
        ['vm', 'list'],
      ],
    ],
    [
      'vm list;;  ; vm show a;',
      [
        ['vm', 'list'],
        ['vm', 'show', 'a'],
      ],
    ],
    [
      'vm list\nvm show a\n',
      [
        ['vm', 'list'],
        ['vm', 'show', 'a'],
      ],
    ],
    ['', []],
    [' ; ', []],
  ])('%j', (text, expected) => {
    expect(argvs(text)).toEqual(expected)
  })
})

describe('comments', () => {
  it.each([
    ['# only a comment', []],
    ['vm list # and the rest; vm show a', [['vm', 'list']]],
    [
      'vm list #x\nvm show a',
      [
        ['vm', 'list'],
        ['vm', 'show', 'a'],
      ],
    ],
    // '#' inside a word or quoted is not a comment
    ['guest access a#b', [['guest', 'access', 'a#b']]],
    ["vm create '#1'", [['vm', 'create', '#1']]],
    ['vm create "a # b"', [['vm', 'create', 'a # b']]],
    ['vm create \\#x', [['vm', 'create', '#x']]],
  ])('%j', (text, expected) => {
    expect(argvs(text)).toEqual(expected)
  })
})

describe('quotes and backslashes', () => {
  it.each([
    [`memseg set 'a b'`, ['memseg', 'set', 'a b']],
    [`x 'a;b' "c;d"`, ['x', 'a;b', 'c;d']],
    [`x 'it''s'`, ['x', 'its']],
    [`x "say \\"hi\\""`, ['x', 'say "hi"']],
    [`x "back\\\\slash"`, ['x', 'back\\slash']],
    [`x "keep \\n as is"`, ['x', 'keep \\n as is']],
    [`x 'no \\escapes'`, ['x', 'no \\escapes']],
    [`x a\\ b`, ['x', 'a b']],
    [`x a\\;b`, ['x', 'a;b']],
    [`x pre"mid"'post'`, ['x', 'premidpost']],
    [`x '' ""`, ['x', '', '']],
    ['x a\\\nb', ['x', 'ab']],
    ['x "two\nlines"', ['x', 'two\nlines']],
  ])('%s', (text, expected) => {
    expect(argvs(text)).toEqual([expected])
  })

  it('an unterminated quote is a usage error naming the line in scripts', () => {
    expect(() => splitCommands(`vm create 'a`)).toThrow(/^unterminated quote$/)
    expect(() => splitCommands(`vm list\nvm create "a\n`, 10)).toThrow(
      /^line 11: unterminated quote/,
    )
    try {
      splitCommands(`'`)
    } catch (e) {
      expect((e as { exitCode: number }).exitCode).toBe(2)
    }
  })

  it('commands know their line', () => {
    expect(splitCommands('a\n\n# c\nb; c\n', 5).map((c) => [c.argv[0], c.line])).toEqual([
      ['a', 5],
      ['b', 8],
      ['c', 8],
    ])
  })
})

describe('scanning a line being typed (for completion)', () => {
  it('gives the word under the cursor with where it starts', () => {
    const s = scan('vm create a; vm sh')
    expect(s.segments.at(-1)!.words.map((w) => w.value)).toEqual(['vm'])
    expect(s.current).toEqual({ value: 'sh', start: 16, quote: undefined })
  })

  it('no current word after a blank', () => {
    expect(scan('vm show ').current).toBeUndefined()
  })

  it('an open quote is part of the current word', () => {
    const s = scan(`vm apply -f 'my fi`)
    expect(s.current).toEqual({ value: 'my fi', start: 12, quote: "'" })
    expect(s.incomplete).toBe(true)
  })

  it('knows when more lines are needed', () => {
    expect(scan('vm list\n').incomplete).toBe(false)
    expect(scan('vm create \\\n').incomplete).toBe(true)
    expect(scan('vm create "a\n').incomplete).toBe(true)
    expect(scan('vm create "a\nb"\n').incomplete).toBe(false)
  })

  it('inside a comment', () => {
    expect(scan('vm list # vm sh').inComment).toBe(true)
    expect(scan('vm list #\n').inComment).toBe(false)
  })
})

describe('quoteWord', () => {
  it.each([
    ['demo', 'demo'],
    ['a b', `'a b'`],
    [`it's`, `'it'\\''s'`],
    ['', `''`],
    ['a;b', `'a;b'`],
  ])('%j -> %s', (value, quoted) => {
    expect(quoteWord(value)).toBe(quoted)
    expect(argvs(`x ${quoted}`)).toEqual([['x', value]])
  })
})
