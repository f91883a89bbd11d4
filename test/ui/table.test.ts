// Tables on a terminal (boxes) and off it (columns for cut and awk): the layout, and work
// linear in the cells, so that `ioreq report` prints 10,000 rows at once (issue 13: the
// old layout was quadratic). The time it takes is measured by `npm run bench -- report`.

import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { out } from '../../src/ui/color.js'
import { displayWidth, renderTable, type Column } from '../../src/ui/table.js'

const columns: Column[] = [
  { header: 'VM' },
  { header: 'COUNT', align: 'right' },
  { header: 'NOTE' },
]
const rows = [
  ['demo', 1, 'héllo'],
  ['longer-name', 12345, ''],
  ['日本', '\u001b[31mred\u001b[39m', 'z'],
]

let wasTty: boolean | undefined
let level: ReturnType<typeof out>['level']
beforeEach(() => {
  wasTty = process.stdout.isTTY
  level = out().level
  out().level = 0
})
afterEach(() => {
  process.stdout.isTTY = wasTty as true
  out().level = level
})
const on = (tty: boolean) => (process.stdout.isTTY = tty as true)

describe('renderTable', () => {
  it('on a terminal: a box, numbers right-aligned, wide characters and colour measured', () => {
    on(true)
    expect(renderTable(columns, rows)).toBe(
      [
        '┌─────────────┬───────┬───────┐',
        '│ VM          │ COUNT │ NOTE  │',
        '├─────────────┼───────┼───────┤',
        '│ demo        │     1 │ héllo │',
        '│ longer-name │ 12345 │       │',
        '│ 日本        │   \u001b[31mred\u001b[39m │ z     │',
        '└─────────────┴───────┴───────┘',
      ].join('\n'),
    )
    expect(renderTable(columns, [])).toBe(
      ['┌────┬───────┬──────┐', '│ VM │ COUNT │ NOTE │', '└────┴───────┴──────┘'].join('\n'),
    )
  })

  it('off a terminal: columns two spaces apart, no trailing blanks', () => {
    on(false)
    expect(renderTable(columns, rows)).toBe(
      [
        'VM           COUNT  NOTE',
        'demo             1  héllo',
        'longer-name  12345',
        '日本           \u001b[31mred\u001b[39m  z',
      ].join('\n'),
    )
    expect(renderTable(columns, [])).toBe('VM  COUNT  NOTE')
  })

  it('the header is bold on a terminal with colour', () => {
    on(true)
    out().level = 1
    expect(renderTable([{ header: 'VM' }], [['a']]).split('\n')[1]).toBe(
      '│ \u001b[1mVM\u001b[22m │',
    )
  })

  it.each([100, 10_000])('reads each of %i rows’ cells once (work linear in the cells)', (n) => {
    on(false)
    let reads = 0
    const counted = (row: (string | number)[]) =>
      new Proxy(row, {
        get(target, key, receiver) {
          if (typeof key === 'string' && /^\d+$/.test(key)) reads++
          return Reflect.get(target, key, receiver)
        },
      })
    const many = Array.from({ length: n }, (_, i) => counted([`vm${i % 7}`, i, 'x'.repeat(i % 5)]))
    const text = renderTable(columns, many)
    expect(reads).toBe(n * columns.length)
    const lines = text.split('\n')
    expect(lines).toHaveLength(n + 1)
    // every row aligned under its header: COUNT ends where the header's COUNT ends
    const countEnd = lines[0]!.indexOf('COUNT') + 'COUNT'.length
    expect(lines[n]!.slice(0, countEnd).trimEnd()).toMatch(new RegExp(`${n - 1}$`))
  })
})

describe('displayWidth', () => {
  it.each([
    ['', 0],
    ['demo', 4],
    ['héllo', 5],
    ['e\u0301', 1], // e + combining acute
    ['日本', 4],
    ['\u001b[1mVM\u001b[22m', 2],
    ['👍', 2],
  ])('%j takes %i columns', (text, width) => {
    expect(displayWidth(text)).toBe(width)
  })
})
