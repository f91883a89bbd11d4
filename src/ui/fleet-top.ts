// `ioreq watch --once`/`--interval` over a fleet: each sample's rows of every host with a
// HOST column first (csv and jsonl: a `host` field), and a host that did not answer as one
// row with its error (csv: an `error` column; jsonl: an `error` field).
import type { ViewRow, ViewTotals } from '../core/trace/view.js'
import { out } from './color.js'
import { renderTable } from './table.js'
import {
  CSV_COLUMNS,
  topCells,
  topColumns,
  topRecord,
  type TopFormat,
  type TopRecord,
} from './trace.js'

export type HostSample =
  { host: string; rows: ViewRow[]; totals: ViewTotals } | { host: string; error: string }

export type FleetRecord = ({ host: string } & TopRecord) | { host: string; error: string }

/** A sample's rows as data (--json): records with their host, or a host's error. */
export function fleetRecords(samples: HostSample[]): FleetRecord[] {
  return samples.flatMap((s): FleetRecord[] =>
    'error' in s
      ? [{ host: s.host, error: s.error }]
      : s.rows.map((r) => ({ host: s.host, ...topRecord(r) })),
  )
}

const csvCell = (v: unknown) => {
  const text = v === null || v === undefined ? '' : String(v)
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

export function renderFleetTop(
  samples: HostSample[],
  format: TopFormat,
  time: string,
  header = true,
): string {
  if (format === 'jsonl')
    return fleetRecords(samples)
      .map((r) => JSON.stringify({ time, ...r }))
      .join('\n')
  if (format === 'csv') {
    const columns = ['time', 'host', ...CSV_COLUMNS.slice(1), 'error'] as const
    const lines = fleetRecords(samples).map((r) => {
      const rec: Record<string, unknown> = { time, ...r }
      return columns.map((c) => csvCell(rec[c])).join(',')
    })
    return (header ? [columns.join(','), ...lines] : lines).join('\n')
  }
  const byVcpu = samples.some((s) => 'rows' in s && s.rows.some((r) => r.vcpu >= 0))
  const columns = topColumns(byVcpu)
  const blank = columns.map(() => '')
  const cells = samples.flatMap((s) =>
    'error' in s
      ? [
          [
            s.host,
            '',
            ...(byVcpu ? [''] : []),
            out().red('no answer'),
            ...blank.slice(byVcpu ? 3 : 2),
          ],
        ]
      : topCells(s.rows, s.totals, byVcpu).map((row) => [s.host, ...row]),
  )
  const table = renderTable([{ header: 'HOST' }, ...columns], cells)
  const errors = samples.flatMap((s) => ('error' in s ? [`  ${s.error}`] : []))
  return errors.length ? [table, '', ...errors].join('\n') : table
}
