// Tables: aligned boxes on a terminal, plain whitespace-separated columns off it so that
// scripts can cut and awk them.

import Table from 'cli-table3'
import { out } from './color.js'

export interface Column {
  header: string
  align?: 'left' | 'right'
}

export function renderTable(columns: Column[], rows: (string | number)[][]): string {
  const tty = process.stdout.isTTY === true
  const table = new Table({
    head: columns.map((c) => (tty ? out().bold(c.header) : c.header)),
    colAligns: columns.map((c) => c.align ?? 'left'),
    style: {
      head: [],
      border: [],
      compact: true,
      'padding-left': tty ? 1 : 0,
      'padding-right': tty ? 1 : 2,
    },
    chars: tty
      ? {}
      : {
          top: '',
          'top-mid': '',
          'top-left': '',
          'top-right': '',
          bottom: '',
          'bottom-mid': '',
          'bottom-left': '',
          'bottom-right': '',
          left: '',
          'left-mid': '',
          mid: '',
          'mid-mid': '',
          right: '',
          'right-mid': '',
          middle: '',
        },
  })
  for (const row of rows) table.push(row.map(String))
  return tty
    ? table.toString()
    : table
        .toString()
        .split('\n')
        .map((line) => line.trimEnd())
        .join('\n')
}
