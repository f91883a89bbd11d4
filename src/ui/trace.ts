// The top view as text: an aligned table (terminal), CSV or JSON Lines (scripts).
import { latencyText, pciConfigText } from '../core/trace/format.js'
import type { ViewRow, ViewTotals } from '../core/trace/view.js'
import { renderTable } from './table.js'

export type TopFormat = 'table' | 'csv' | 'jsonl'

export const CSV_COLUMNS = [
  'time',
  'vm',
  'vmid',
  'vcpu',
  'key',
  'type',
  'addr',
  'bdf',
  'reg',
  'dir',
  'count',
  'pct',
  'rate',
  'lat_min_ns',
  'lat_avg_ns',
  'lat_p99_ns',
  'lat_max_ns',
  'client',
] as const

/**
 * One row of the top table as data: the one schema of `ioreq watch` and `ioreq report`,
 * in --json (rows) and in jsonl and csv (with the sample's `time` first). README,
 * "Live ioreq tracing", documents it.
 */
export function topRecord(row: ViewRow) {
  // PCI config rows: the function and register as text, so scripts need not unpack addr
  const pci = row.type === 'pcicfg' ? pciConfigText(row.addr) : undefined
  return {
    vm: row.vm,
    vmid: row.vmid,
    // null (an empty CSV cell) when the row merges every vCPU
    vcpu: row.vcpu < 0 ? null : row.vcpu,
    key: row.key,
    type: row.type,
    addr: `0x${row.addr.toString(16)}`,
    bdf: pci?.bdf ?? null,
    reg: pci?.reg ?? null,
    dir: row.dir,
    count: row.count,
    pct: Number(row.pct.toFixed(2)),
    rate: Number(row.rate.toFixed(1)),
    lat_min_ns: row.latMin,
    lat_avg_ns: Math.round(row.latAvg),
    lat_p99_ns: row.latP99,
    lat_max_ns: row.latMax,
    client: row.client,
  }
}

export type TopRecord = ReturnType<typeof topRecord>

const record = (row: ViewRow, time: string) => ({ time, ...topRecord(row) })

export function renderTop(
  rows: ViewRow[],
  totals: ViewTotals,
  format: TopFormat,
  time: string,
  header = true,
): string {
  if (format === 'jsonl') return rows.map((r) => JSON.stringify(record(r, time))).join('\n')
  if (format === 'csv') {
    const lines = rows.map((r) => {
      const rec = record(r, time)
      return CSV_COLUMNS.map((c) => String(rec[c] ?? '')).join(',')
    })
    return (header ? [CSV_COLUMNS.join(','), ...lines] : lines).join('\n')
  }
  const byVcpu = rows.some((r) => r.vcpu >= 0)
  return renderTable(topColumns(byVcpu), topCells(rows, totals, byVcpu))
}

/** The top table's columns (a fleet's table puts HOST before them: ui/fleet-top.ts). */
export function topColumns(byVcpu: boolean) {
  return [
    { header: 'VM' },
    ...(byVcpu ? [{ header: 'VCPU', align: 'right' as const }] : []),
    { header: 'REQUEST' },
    { header: 'COUNT', align: 'right' as const },
    { header: '%', align: 'right' as const },
    { header: 'RATE/s', align: 'right' as const },
    { header: 'MIN', align: 'right' as const },
    { header: 'AVG', align: 'right' as const },
    { header: 'P99', align: 'right' as const },
    { header: 'MAX', align: 'right' as const },
    { header: 'CLIENT' },
  ]
}

/** The top table's rows and its Total row, as cells. */
export function topCells(
  rows: ViewRow[],
  totals: ViewTotals,
  byVcpu: boolean,
): (string | number)[][] {
  return [
    ...rows.map((r) => [
      r.vm,
      ...(byVcpu ? [r.vcpu] : []),
      r.key,
      r.count,
      r.pct.toFixed(1),
      r.rate.toFixed(0),
      latencyText(r.latMin),
      latencyText(r.latAvg),
      latencyText(r.latP99),
      latencyText(r.latMax),
      r.client,
    ]),
    [
      '',
      ...(byVcpu ? [''] : []),
      'Total',
      totals.count,
      totals.pct.toFixed(1),
      totals.rate.toFixed(0),
      '',
      '',
      '',
      '',
      '',
    ],
  ]
}
