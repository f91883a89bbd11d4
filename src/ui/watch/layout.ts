// The watch screen as lines of text for a given width and height, with no terminal I/O:
// the header (VMs, elapsed time, dropped events, filter), the top table or the request
// log, the status line or the filter editor, and the help overlay. Every line is exactly
// `width` characters so the terminal side can redraw a changed line without clearing.

import { latencyText } from '../../core/trace/format.js'
import type { ViewRow, ViewTotals } from '../../core/trace/view.js'
import type { WatchUiState } from './state.js'

export type LineStyle = 'bar' | 'heading' | 'total' | 'error' | 'dim' | undefined

export interface ScreenLine {
  text: string
  style?: LineStyle
}

export interface WatchFrame {
  ui: WatchUiState
  /** VMs in the header: the watched ones (gone ones flagged), or every VM when none is named. */
  vms: { name: string; vmid: number | undefined; gone: boolean }[]
  elapsedMs: number
  /** Requests the log view lost because the daemon's ring overran it. */
  dropped: number
  /** The active filter in words (describeFilter), 'none' when there is none. */
  filter: string
  byVcpu: boolean
  rows: ViewRow[]
  totals: ViewTotals
  /** Log lines, oldest first. */
  log: string[]
  /** Requests per second passing the filter, as the log view last saw them. */
  logRate: number
  /** Set when the daemon could not be reached for the last sample. */
  error?: string
}

export interface Screen {
  lines: ScreenLine[]
  /** Where the caret goes (the filter editor); hidden otherwise. */
  cursor?: { row: number; col: number }
}

const KEYS_HINT = 'q quit  h help  f filter  s sort  r reset  o view  space pause'

/** Fit text to `width`: cut with an ellipsis, or pad with spaces. */
export function fit(text: string, width: number): string {
  if (width <= 0) return ''
  if (text.length > width) return width === 1 ? '…' : text.slice(0, width - 1) + '…'
  return text.padEnd(width)
}

/** Left and right parts on one line, the right one kept when space is short. */
function spread(left: string, right: string, width: number): string {
  const room = width - right.length - 1
  if (room < 8) return fit(left, width)
  return fit(left, room) + ' ' + right.padStart(width - room - 1)
}

export function elapsedText(ms: number): string {
  const s = Math.floor(ms / 1000)
  const two = (n: number) => String(n).padStart(2, '0')
  return `${two(Math.floor(s / 3600))}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}`
}

const thousands = (n: number) => Math.round(n).toLocaleString('en-US')

interface Column {
  id: string
  header: string
  right?: boolean
  width: number
  cell: (r: ViewRow) => string
  /** Dropped first when the screen is narrow (higher: dropped earlier). */
  drop?: number
}

function tableColumns(frame: WatchFrame, width: number): Column[] {
  const vmWidth = Math.min(16, Math.max(2, ...frame.rows.map((r) => r.vm.length)))
  const keyWidth = Math.max(7, ...frame.rows.map((r) => r.key.length))
  const countWidth = Math.max(5, thousands(frame.totals.count).length)
  const all: Column[] = [
    ...(frame.byVcpu
      ? [
          {
            id: 'vcpu',
            header: 'VCPU',
            right: true,
            width: 4,
            cell: (r: ViewRow) => String(r.vcpu),
          },
        ]
      : []),
    { id: 'vm', header: 'VM', width: vmWidth, cell: (r) => r.vm, drop: 3 },
    { id: 'key', header: 'REQUEST', width: keyWidth, cell: (r) => r.key },
    {
      id: 'count',
      header: 'COUNT',
      right: true,
      width: countWidth,
      cell: (r) => thousands(r.count),
    },
    { id: 'pct', header: '%', right: true, width: 5, cell: (r) => r.pct.toFixed(1), drop: 5 },
    { id: 'rate', header: 'RATE/s', right: true, width: 9, cell: (r) => thousands(r.rate) },
    {
      id: 'min',
      header: 'MIN',
      right: true,
      width: 6,
      cell: (r) => latencyText(r.latMin),
      drop: 9,
    },
    {
      id: 'avg',
      header: 'AVG',
      right: true,
      width: 6,
      cell: (r) => latencyText(r.latAvg),
      drop: 7,
    },
    {
      id: 'p99',
      header: 'P99',
      right: true,
      width: 6,
      cell: (r) => latencyText(r.latP99),
      drop: 6,
    },
    {
      id: 'max',
      header: 'MAX',
      right: true,
      width: 6,
      cell: (r) => latencyText(r.latMax),
      drop: 8,
    },
    { id: 'client', header: 'CLIENT', width: 9, cell: (r) => r.client, drop: 4 },
  ]
  const total = (cols: Column[]) => cols.reduce((n, c) => n + c.width + 2, 0)
  let cols = all
  while (total(cols) > width) {
    const victim = cols.reduce<Column | undefined>(
      (v, c) => (c.drop !== undefined && (v === undefined || c.drop > v.drop!) ? c : v),
      undefined,
    )
    if (!victim) break
    cols = cols.filter((c) => c !== victim)
  }
  return cols
}

function tableLine(cols: Column[], cells: string[]): string {
  return cols
    .map((c, i) => {
      const cell = cells[i] ?? ''
      const text = cell.length > c.width ? cell.slice(0, c.width - 1) + '…' : cell
      return c.right ? text.padStart(c.width) : text.padEnd(c.width)
    })
    .join('  ')
}

/** The column heading of the log, aligned with eventText's fields. */
export const LOG_HEADING = [
  'TIME (s)'.padStart(12),
  'VM'.padEnd(10),
  'VCPU'.padEnd(6),
  'TYPE'.padEnd(6),
  'DIR',
  'ADDRESS'.padEnd(18),
  'LEN',
  'VALUE'.padEnd(18),
  'CLIENT'.padEnd(9),
  'LATENCY',
].join(' ')

function headerLines(frame: WatchFrame, width: number): ScreenLine[] {
  const vms = frame.vms.length
    ? frame.vms.map((v) => (v.gone ? `${v.name} (gone)` : `${v.name} (vmid ${v.vmid})`)).join(', ')
    : 'no VMs'
  const right = `${elapsedText(frame.elapsedMs)}  dropped ${thousands(frame.dropped)}`
  const state = [
    `view ${frame.ui.view === 'top' ? 'table' : 'log'}`,
    `sort ${frame.ui.sort}`,
    ...(frame.ui.paused ? ['PAUSED'] : []),
  ].join('  ')
  return [
    { text: spread(` hsmctl ioreq watch  ${vms}`, right + ' ', width), style: 'bar' },
    { text: spread(` filter: ${frame.filter}`, state + ' ', width) },
  ]
}

/** What the body says when there is nothing to show. */
function emptyBody(frame: WatchFrame): string[] {
  if (frame.error) return [`No answer from the daemon: ${frame.error}`]
  const gone = frame.vms.filter((v) => v.gone)
  if (gone.length && gone.length === frame.vms.length) {
    return [
      `VM gone: ${gone.map((v) => v.name).join(', ')}`,
      `Waiting for a VM of that name to come back…`,
    ]
  }
  return ['Waiting for traffic…']
}

function topBody(frame: WatchFrame, width: number, rows: number): ScreenLine[] {
  const cols = tableColumns(frame, width)
  const out: ScreenLine[] = [
    {
      text: fit(
        tableLine(
          cols,
          cols.map((c) => c.header),
        ),
        width,
      ),
      style: 'heading',
    },
  ]
  if (frame.rows.length === 0) {
    out.push({ text: fit('', width) })
    for (const line of emptyBody(frame)) out.push({ text: fit(`  ${line}`, width), style: 'dim' })
    return out
  }
  // heading + rows + total must fit; a last line tells how many rows did not
  const room = Math.max(1, rows - 2)
  const shown = frame.rows.length > room ? frame.rows.slice(0, room - 1) : frame.rows
  for (const r of shown)
    out.push({
      text: fit(
        tableLine(
          cols,
          cols.map((c) => c.cell(r)),
        ),
        width,
      ),
    })
  if (shown.length < frame.rows.length) {
    out.push({
      text: fit(`  … ${frame.rows.length - shown.length} more rows (f narrows, s sorts)`, width),
      style: 'dim',
    })
  }
  const totals = cols.map((c) => {
    if (c.id === 'key') return 'Total'
    if (c.id === 'count') return thousands(frame.totals.count)
    if (c.id === 'pct') return frame.totals.pct.toFixed(1)
    if (c.id === 'rate') return thousands(frame.totals.rate)
    return ''
  })
  out.push({ text: fit(tableLine(cols, totals), width), style: 'total' })
  return out
}

function logBody(frame: WatchFrame, width: number, rows: number): ScreenLine[] {
  const out: ScreenLine[] = [{ text: fit(LOG_HEADING, width), style: 'heading' }]
  if (frame.log.length === 0) {
    out.push({ text: fit('', width) })
    for (const line of emptyBody(frame)) out.push({ text: fit(`  ${line}`, width), style: 'dim' })
    return out
  }
  const room = Math.max(1, rows - 1)
  for (const line of frame.log.slice(-room)) {
    out.push({ text: fit(line, width), style: line.startsWith('  ···') ? 'dim' : undefined })
  }
  return out
}

const HELP = [
  'Keys',
  '',
  'q  Ctrl-C   quit',
  'h  ?        this help (any key closes it)',
  'f  /        edit the filter; Enter applies, Esc cancels, empty clears:',
  '              vm NAME  vcpu N  type pio|mmio|pcicfg  dir read|write',
  '              addr FROM-TO|FROM+LEN  client default|ioeventfd|kernel',
  '              lists with commas: type pio,mmio',
  's           sort by count, rate, latency, address',
  'r           reset counts and latencies to zero',
  'o           switch between the table and the request log',
  'space       pause / resume',
]

/** Draw the help box over the body lines. */
function overlayHelp(lines: ScreenLine[], width: number, top: number, bottom: number): void {
  const inner = Math.min(width - 4, Math.max(...HELP.map((l) => l.length)) + 2)
  if (inner < 10) return
  const box = [
    `┌${'─'.repeat(inner)}┐`,
    ...HELP.map((l) => `│${fit(` ${l}`, inner)}│`),
    `└${'─'.repeat(inner)}┘`,
  ]
  const left = Math.max(0, Math.floor((width - inner - 2) / 2))
  const first = Math.max(top, top + Math.floor((bottom - top - box.length) / 2))
  box.forEach((b, i) => {
    const row = first + i
    if (row >= bottom) return
    const base = lines[row]!.text
    lines[row] = { text: fit(base.slice(0, left) + b + base.slice(left + b.length), width) }
  })
}

export function layoutWatch(frame: WatchFrame, width: number, height: number): Screen {
  const w = Math.max(20, width)
  const h = Math.max(6, height)
  const lines: ScreenLine[] = headerLines(frame, w)
  lines.push({ text: fit('', w) })
  // the body gets everything between the header (3 lines) and the status line(s)
  const editing = frame.ui.editor !== undefined
  const message = frame.ui.message
  const statusLines = editing && message?.error ? 2 : 1
  const bodyRows = h - lines.length - statusLines
  const body = frame.ui.view === 'top' ? topBody(frame, w, bodyRows) : logBody(frame, w, bodyRows)
  const bodyTop = lines.length
  for (const l of body.slice(0, bodyRows)) lines.push(l)
  while (lines.length < h - statusLines) lines.push({ text: fit('', w) })
  if (frame.ui.help) overlayHelp(lines, w, bodyTop, h - statusLines)
  let cursor: Screen['cursor']
  if (editing) {
    if (message?.error) lines.push({ text: fit(` ${message.text}`, w), style: 'error' })
    const { text, cursor: at } = frame.ui.editor!
    const prompt = ' filter> '
    const room = w - prompt.length - 1
    // scroll the text so that the caret stays visible
    const start = Math.max(0, at - room)
    lines.push({ text: fit(prompt + text.slice(start, start + room), w) })
    cursor = { row: h - 1, col: prompt.length + at - start }
  } else if (frame.error) {
    lines.push({ text: fit(` ${frame.error} (q quits)`, w), style: 'error' })
  } else if (message) {
    lines.push({ text: fit(` ${message.text}`, w), style: message.error ? 'error' : 'bar' })
  } else {
    const rate = frame.ui.view === 'log' ? `log ${thousands(frame.logRate)} requests/s ` : ''
    lines.push({ text: spread(` ${KEYS_HINT}`, rate, w), style: 'bar' })
  }
  return cursor ? { lines, cursor } : { lines }
}
