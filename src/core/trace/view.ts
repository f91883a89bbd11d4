// The top view's model, shared by `ioreq watch` (live and non-interactive) and
// `ioreq report`: rows with their share of the total, current rate (from the change
// since the previous sample), latencies, sorted, with a total row. A reset keeps a
// baseline so counts and latencies start again from zero without touching the daemon
// (other watchers share its statistics).

import { compileFilter, type TraceFilter } from './filter.js'
import { rowKeyText } from './format.js'
import type { TraceClient, TraceDir, TraceType } from './record.js'
import { latencySince, type LatencySample, type TraceRow } from './stats.js'

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
  /** The rows' share of every request that passed the filter (100 when none is left out). */
  pct: number
}

/** A row as of one sample: what a baseline keeps. */
type RowSample = Pick<TraceRow, 'count' | 'latMin' | 'latMax' | 'latSum' | 'latHist'>

const hasHistogram = (r: RowSample): r is LatencySample =>
  r.latSum !== undefined && r.latHist !== undefined

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
  totals: ViewTotals = { count: 0, rate: 0, pct: 0 }
  /** Samples taken. */
  samples = 0
  /** Each row (all rows, filtered or not) at the last sample. */
  private previous = new Map<string, RowSample>()
  private previousT: number | undefined
  /** Samples subtracted from the daemon's cumulative rows: set by reset and re-attach. */
  private baseline = new Map<string, RowSample>()
  /** Rows an earlier VM left under a reused vmid: hidden until the new VM makes them count. */
  private readonly stale = new Set<string>()
  /** Take the next sample as the baseline of every row (see setFilter). */
  private rebaseAll = false
  private current: ViewRow[] = []

  constructor(options: { filter?: TraceFilter; sort?: SortKey } = {}) {
    this.filter = options.filter ?? {}
    this.sort = options.sort ?? 'count'
  }

  /** Take a sample: rows (all of them; the model filters) at daemon time `t` (ms). */
  update(rows: RowLike[], t: number, vmName: (vmid: number) => string = String): void {
    const keep = compileFilter(this.filter)
    const dt = this.previousT === undefined ? 0 : (t - this.previousT) / 1000
    const next = new Map<string, RowSample>()
    const out: ViewRow[] = []
    const rebase = this.rebaseAll
    this.rebaseAll = false
    for (const raw of rows) {
      const addr = typeof raw.addr === 'bigint' ? raw.addr : BigInt(raw.addr)
      const key = { ...raw, addr }
      const id = rowId(key)
      const sample: RowSample = {
        count: raw.count,
        latMin: raw.latMin,
        latMax: raw.latMax,
        ...(raw.latSum !== undefined ? { latSum: raw.latSum } : {}),
        ...(raw.latHist !== undefined ? { latHist: raw.latHist } : {}),
      }
      next.set(id, sample)
      if (rebase) this.baseline.set(id, sample)
      if (!keep(key)) continue
      const base = this.baseline.get(id)
      const count = Math.max(0, raw.count - (base?.count ?? 0))
      if (this.stale.has(id)) {
        if (count === 0) continue
        this.stale.delete(id)
      }
      const before = this.previous.get(id)?.count ?? (this.previousT === undefined ? raw.count : 0)
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
        rate: dt > 0 ? Math.max(0, raw.count - before) / dt : 0,
        ...this.latency(raw, sample, base),
      })
    }
    // a row the daemon no longer has was forgotten with its VM; if it comes back, it
    // counts from zero, so its baseline goes
    for (const id of this.baseline.keys()) if (!next.has(id)) this.baseline.delete(id)
    for (const id of this.stale) if (!next.has(id)) this.stale.delete(id)
    const total = out.reduce((n, r) => n + r.count, 0)
    for (const r of out) r.pct = total > 0 ? (100 * r.count) / total : 0
    this.totals = this.totalsOf(out)
    this.current = out
    this.previous = next
    this.previousT = t
    this.samples++
  }

  /**
   * A row's latencies since its baseline. Without histograms (rows not asked for them)
   * only the daemon's cumulative figures are known, and those are what is shown.
   */
  private latency(
    raw: RowLike,
    sample: RowSample,
    base: RowSample | undefined,
  ): Pick<ViewRow, 'latMin' | 'latAvg' | 'latP99' | 'latMax'> {
    if (base && hasHistogram(sample) && hasHistogram(base)) return latencySince(sample, base)
    return { latMin: raw.latMin, latAvg: raw.latAvg, latP99: raw.latP99, latMax: raw.latMax }
  }

  /**
   * A new filter, live. Rows come and go at once; a change of vCPUs changes what the
   * daemon merged into each row, so rates start over, and after a reset counts restart
   * from the next sample (the old baseline no longer fits the rows).
   */
  setFilter(filter: TraceFilter): void {
    const vcpus = (f: TraceFilter) => [...(f.vcpus ?? [])].sort((a, b) => a - b).join(',')
    if (vcpus(filter) !== vcpus(this.filter)) {
      this.previous = new Map()
      this.previousT = undefined
      if (this.baseline.size > 0) this.rebaseAll = true
    }
    this.filter = filter
  }

  /**
   * Count a VM's rows from zero again, as of the last sample: a VM with the same name came
   * back (re-attach) and may have been given a vmid whose rows hold an earlier VM's counts.
   */
  rebaseVm(vmid: number): void {
    for (const [id, sample] of this.previous) {
      if (!id.startsWith(`${vmid}:`)) continue
      this.baseline.set(id, sample)
      this.stale.add(id)
    }
  }

  /**
   * Counts and latencies start from zero again (the `r` key): every column describes the
   * requests after the last sample.
   */
  reset(): void {
    this.baseline = new Map(this.previous)
    for (const r of this.current) {
      r.count = 0
      r.pct = 0
      r.latMin = 0
      r.latAvg = 0
      r.latP99 = 0
      r.latMax = 0
    }
    this.totals = { count: 0, rate: this.totals.rate, pct: 0 }
  }

  /**
   * The Total row of the rows shown: with --skip-zero, the idle rows left out count in
   * neither its count, its rate nor its share.
   */
  totalsOf(rows: readonly ViewRow[]): ViewTotals {
    let count = 0
    let rate = 0
    let pct = 0
    for (const r of rows) {
      count += r.count
      rate += r.rate
      pct += r.pct
    }
    // all of them: exactly 100, not a sum of rounded shares
    return { count, rate, pct: rows.length === this.current.length && count > 0 ? 100 : pct }
  }

  rows(options: { skipZero?: boolean } = {}): ViewRow[] {
    const rows = options.skipZero ? this.current.filter((r) => r.rate > 0) : [...this.current]
    const by: Record<SortKey, (a: ViewRow, b: ViewRow) => number> = {
      count: (a, b) => b.count - a.count,
      rate: (a, b) => b.rate - a.rate,
      latency: (a, b) => b.latAvg - a.latAvg,
      address: (a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0),
    }
    // ties in a stable order: request, then VM, vCPU and client
    return rows.sort(
      (a, b) =>
        by[this.sort](a, b) ||
        a.key.localeCompare(b.key) ||
        a.vmid - b.vmid ||
        a.vcpu - b.vcpu ||
        a.client.localeCompare(b.client),
    )
  }
}
