// The top view's model, shared by `ioreq watch` (live and non-interactive) and
// `ioreq report`: rows with their share of the total, current rate (from the change
// since the previous sample), latencies, sorted, with a total row. A reset keeps a
// baseline so counts start again from zero without touching the daemon.

import { compileFilter, type TraceFilter } from './filter.js'
import { rowKeyText } from './format.js'
import type { TraceClient, TraceDir, TraceType } from './record.js'
import type { TraceRow } from './stats.js'

/** A row as it arrives over the socket (64-bit values as hex strings) or in-process. */
export type RowLike = Omit<TraceRow, 'addr'> & { addr: bigint | string }

export interface ViewRow {
  id: string
  key: string
  vm: string
  vmid: number
  vcpu: number
  type: TraceType
  dir: TraceDir
  client: TraceClient
  addr: bigint
  count: number
  pct: number
  /** Requests per second since the previous sample. */
  rate: number
  latMin: number
  latAvg: number
  latP99: number
  latMax: number
}

export type SortKey = 'count' | 'rate' | 'latency' | 'address'
export const SORT_KEYS: readonly SortKey[] = ['count', 'rate', 'latency', 'address']

export interface ViewTotals {
  count: number
  rate: number
}

const rowId = (r: {
  vmid: number
  vcpu: number
  type: string
  dir: string
  client: string
  addr: bigint
}) => `${r.vmid}:${r.vcpu}:${r.type}:${r.dir}:${r.client}:${r.addr}`

export class TopModel {
  filter: TraceFilter
  sort: SortKey
  private previous = new Map<string, number>()
  private previousT: number | undefined
  private baseline = new Map<string, number>()
  private current: ViewRow[] = []
  totals: ViewTotals = { count: 0, rate: 0 }
  /** Samples taken. */
  samples = 0

  constructor(options: { filter?: TraceFilter; sort?: SortKey } = {}) {
    this.filter = options.filter ?? {}
    this.sort = options.sort ?? 'count'
  }

  /** Take a sample: rows (all of them; the model filters) at daemon time `t` (ms). */
  update(rows: RowLike[], t: number, vmName: (vmid: number) => string = String): void {
    const keep = compileFilter(this.filter)
    const dt = this.previousT === undefined ? 0 : (t - this.previousT) / 1000
    const next = new Map<string, number>()
    const out: ViewRow[] = []
    for (const raw of rows) {
      const addr = typeof raw.addr === 'bigint' ? raw.addr : BigInt(raw.addr)
      const key = { ...raw, addr }
      const id = rowId(key)
      next.set(id, raw.count)
      if (!keep(key)) continue
      const count = raw.count - (this.baseline.get(id) ?? 0)
      const before = this.previous.get(id) ?? (this.previousT === undefined ? raw.count : 0)
      out.push({
        id,
        key: rowKeyText(key),
        vm: vmName(raw.vmid),
        vmid: raw.vmid,
        vcpu: raw.vcpu,
        type: raw.type,
        dir: raw.dir,
        client: raw.client,
        addr,
        count,
        pct: 0,
        rate: dt > 0 ? (raw.count - before) / dt : 0,
        latMin: raw.latMin,
        latAvg: raw.latAvg,
        latP99: raw.latP99,
        latMax: raw.latMax,
      })
    }
    const total = out.reduce((n, r) => n + r.count, 0)
    for (const r of out) r.pct = total > 0 ? (100 * r.count) / total : 0
    this.totals = { count: total, rate: out.reduce((n, r) => n + r.rate, 0) }
    this.current = out
    this.previous = next
    this.previousT = t
    this.samples++
  }

  /** Counts start from zero again (the `r` key). */
  reset(): void {
    this.baseline = new Map(this.previous)
    for (const r of this.current) {
      r.count = 0
      r.pct = 0
    }
    this.totals = { count: 0, rate: this.totals.rate }
  }

  rows(options: { skipZero?: boolean } = {}): ViewRow[] {
    const rows = options.skipZero ? this.current.filter((r) => r.rate > 0) : [...this.current]
    const by: Record<SortKey, (a: ViewRow, b: ViewRow) => number> = {
      count: (a, b) => b.count - a.count,
      rate: (a, b) => b.rate - a.rate,
      latency: (a, b) => b.latAvg - a.latAvg,
      address: (a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0),
    }
    return rows.sort((a, b) => by[this.sort](a, b) || a.key.localeCompare(b.key))
  }
}
