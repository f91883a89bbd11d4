// Tables: aligned boxes on a terminal, plain whitespace-separated columns off it so that
// scripts can cut and awk them. Linear in the cells: each is measured once (`ioreq
// report` prints tables of tens of thousands of rows; cli-table3's layout was quadratic).

import { stripVTControlCharacters } from 'node:util'
import { out } from './color.js'

export interface Column {
  header: string
  align?: 'left' | 'right'
}

const PLAIN = /^[\x20-\x7e]*$/
/** Combining marks, zero-width joiners and format characters take no column. */
const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}]$/u
/** East Asian wide and fullwidth characters, and emoji, take two. */
const WIDE =
  /^[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{1f300}-\u{1f64f}\u{1f900}-\u{1f9ff}\u{20000}-\u{3fffd}]$/u

/** Columns a text takes on a terminal: escape sequences none, wide characters two. */
export function displayWidth(text: string): number {
  if (PLAIN.test(text)) return text.length
  let width = 0
  for (const ch of stripVTControlCharacters(text))
    width += ZERO_WIDTH.test(ch) ? 0 : WIDE.test(ch) ? 2 : 1
  return width
}

export function renderTable(columns: Column[], rows: (string | number)[][]): string {
  const tty = process.stdout.isTTY === true
  const head = columns.map((c) => (tty ? out().bold(c.header) : c.header))
  const lines = [head, ...rows.map((row) => columns.map((_, i) => String(row[i] ?? '')))]
  const widths = lines.map((line) => line.map(displayWidth))
  const columnWidth = columns.map(() => 0)
  for (const w of widths)
    for (let i = 0; i < w.length; i++) columnWidth[i] = Math.max(columnWidth[i]!, w[i]!)
  const text = lines.map((line, r) =>
    line.map((cell, i) => {
      const room = ' '.repeat(columnWidth[i]! - widths[r]![i]!)
      return columns[i]!.align === 'right' ? room + cell : cell + room
    }),
  )
  if (!tty) return text.map((cells) => cells.join('  ').trimEnd()).join('\n')
  const rule = (left: string, mid: string, right: string) =>
    left + columnWidth.map((w) => '─'.repeat(w + 2)).join(mid) + right
  const row = (cells: string[]) => `│ ${cells.join(' │ ')} │`
  return [
    rule('┌', '┬', '┐'),
    row(text[0]!),
    ...(rows.length > 0 ? [rule('├', '┼', '┤'), ...text.slice(1).map(row)] : []),
    rule('└', '┴', '┘'),
  ].join('\n')
}
