// The data side of the watch view, with the daemon client injected: samples of the top
// table (`trace.stats`) and the request log (`trace.read` with a cursor), the filter with
// VMs kept as names and bound to vmids at every sample ("VM gone", re-attach when a VM of
// the same name returns), and the frame the layout draws. No terminal I/O here.

import { performance } from 'node:perf_hooks'
import { describeFilter, filterToWire } from '../../core/trace/filter.js'
import { eventText } from '../../core/trace/format.js'
import type { ReadReply, StatsReply, TraceVm } from '../../core/trace/methods.js'
import { records } from '../../core/trace/record.js'
import { TopModel, type SortKey } from '../../core/trace/view.js'
import type { Wire } from '../../core/daemon/protocol.js'
import {
  filterLineText,
  resolveFilter,
  type FilterSpec,
  type ResolvedFilter,
} from './filter-line.js'
import type { WatchFrame } from './layout.js'
import type { WatchUiState, WatchViewName } from './state.js'

export interface WatchCaller {
  call<T = unknown>(method: string, params?: unknown): Promise<T>
}

export interface WatchSessionOptions {
  client: WatchCaller
  spec: FilterSpec
  sort?: SortKey
  byVcpu?: boolean
  /** Leave out rows without requests since the last sample. */
  skipZero?: boolean
  /** Log lines kept for the log view. */
  logLines?: number
  now?: () => number
}

/** A log line standing for requests that were not shown. */
export const gapLine = (n: number, why: string) =>
  `  ··· ${n.toLocaleString('en-US')} ${n === 1 ? 'request' : 'requests'} ${why} ···`

export class WatchSession {
  readonly model: TopModel
  spec: FilterSpec
  readonly byVcpu: boolean
  /** The daemon's VMs as of the last reply. */
  vms: TraceVm[] = []
  resolved: ResolvedFilter
  /** Requests the log lost to ring overruns while it followed the stream. */
  dropped = 0
  /** Requests the daemon has published (as of the last reply). */
  published = 0
  log: string[] = []
  logRate = 0
  /** Messages for the status line (re-attach), taken by the caller. */
  readonly notices: string[] = []
  private readonly logLines: number
  private readonly now: () => number
  private readonly started: number
  private bound = new Map<string, number | undefined>()
  private logCursor: number | undefined
  private logT: number | undefined

  constructor(private readonly o: WatchSessionOptions) {
    this.spec = o.spec
    this.byVcpu = o.byVcpu === true
    this.now = o.now ?? (() => performance.now())
    this.started = this.now()
    this.logLines = o.logLines ?? 1000
    this.resolved = resolveFilter(this.spec, [])
    this.model = new TopModel({ filter: this.resolved.filter, sort: o.sort ?? 'count' })
  }

  private vmName = (vmid: number) => this.vms.find((v) => v.vmid === vmid)?.name ?? String(vmid)

  /**
   * Bind the filter's VMs to the new VM table. A VM that appears under a watched name (it
   * came back, or was not there yet) has its rows counted from zero as of this moment.
   */
  private bindVms(vms: TraceVm[]): void {
    this.vms = vms
    const resolved = resolveFilter(this.spec, vms)
    for (const b of resolved.bound) {
      // only a name watched already can come back; one just added to the filter cannot
      if (!this.bound.has(b.vm)) continue
      const before = this.bound.get(b.vm)
      if (b.vmid !== undefined && b.vmid !== before) {
        this.model.rebaseVm(b.vmid)
        this.notices.push(`VM ${b.name} is here (vmid ${b.vmid}); watching it`)
      }
      if (b.vmid === undefined && before !== undefined) this.notices.push(`VM gone: ${b.vm}`)
    }
    this.bound = new Map(resolved.bound.map((b) => [b.vm, b.vmid]))
    this.resolved = resolved
    this.model.setFilter(resolved.filter)
  }

  /** One sample of the top table. */
  async sampleTop(): Promise<void> {
    // histograms: a reset (`r`) takes latencies since then from their difference
    const params: Record<string, unknown> = { byVcpu: this.byVcpu, histograms: true }
    // only the vCPUs are filtered by the daemon (before it merges them); the rest of the
    // filter selects whole rows here, so a live change needs no new baseline
    if (this.spec.vcpus?.length) params.filter = { vcpus: this.spec.vcpus }
    const reply = await this.o.client.call<Wire<StatsReply>>('trace.stats', params)
    this.bindVms(reply.vms)
    this.published = reply.published
    this.model.update(reply.rows, reply.t, this.vmName)
  }

  /**
   * One read of the log: the newest `lines` requests since the last read. The first read
   * (and the first after a pause or a filter change) fetches recent history instead, and
   * what it skipped is not counted as dropped.
   */
  async sampleLog(lines: number): Promise<void> {
    const fresh = this.logCursor === undefined
    // the filter as bound now; with every watched VM gone there is nothing to show, but
    // the cursor still moves on
    const filter = this.resolved.filter
    const gone = filter.vmids?.[0] === -1
    const reply = await this.o.client.call<Wire<ReadReply>>('trace.read', {
      cursor: this.logCursor ?? 0,
      max: Math.max(1, Math.min(lines, this.logLines)),
      tail: true,
      ...(gone ? {} : { filter: filterToWire(filter) }),
    })
    this.bindVms(reply.vms)
    this.published = reply.published
    const t = this.now()
    if (!fresh) {
      this.dropped += reply.dropped
      if (this.logT !== undefined && t > this.logT)
        this.logRate = gone ? 0 : (reply.matched * 1000) / (t - this.logT)
    }
    this.logT = t
    this.logCursor = reply.cursor
    if (gone) return
    const skipped = reply.matched - reply.count
    if (skipped > 0 && !fresh) this.pushLog([gapLine(skipped, 'went by between refreshes')])
    const bytes = new Uint8Array(Buffer.from(reply.records, 'base64'))
    const text: string[] = []
    for (const e of records(bytes)) text.push(eventText(e, this.vmName))
    this.pushLog(text)
  }

  private pushLog(lines: string[]): void {
    this.log.push(...lines)
    if (this.log.length > this.logLines) this.log.splice(0, this.log.length - this.logLines)
  }

  /** Start the log over (view switched to it, resumed, or a new filter). */
  restartLog(): void {
    this.logCursor = undefined
    this.logT = undefined
    this.logRate = 0
    this.log = []
  }

  async sample(view: WatchViewName, logLines: number): Promise<void> {
    if (view === 'top') await this.sampleTop()
    else await this.sampleLog(logLines)
  }

  setFilter(spec: FilterSpec): void {
    this.spec = spec
    this.bindVms(this.vms)
    this.restartLog()
  }

  reset(): void {
    this.model.reset()
  }

  get filterText(): string {
    return filterLineText(this.spec)
  }

  frame(ui: WatchUiState, error?: string): WatchFrame {
    // VMs as the user named them (they may be gone), the rest as the daemon applies it
    const { vms: _vms, ...rest } = this.spec
    const parts = [
      ...(this.spec.vms?.length ? [`vm ${this.spec.vms.join(',')}`] : []),
      ...(Object.keys(rest).length ? [describeFilter(rest)] : []),
    ].filter((p) => p !== 'none')
    const vms = this.resolved.bound.length
      ? this.resolved.bound.map((b) => ({
          name: b.name ?? b.vm,
          vmid: b.vmid,
          gone: b.vmid === undefined,
        }))
      : this.vms.map((v) => ({ name: v.name, vmid: v.vmid, gone: false }))
    const none = this.resolved.filter.vmids?.[0] === -1
    // the sort key is the UI's (the `s` key); the model sorts as it hands out rows
    this.model.sort = ui.sort
    const rows = none ? [] : this.model.rows({ skipZero: this.o.skipZero === true })
    return {
      ui,
      vms,
      elapsedMs: this.now() - this.started,
      dropped: this.dropped,
      filter: parts.join(' ') || 'none',
      byVcpu: this.byVcpu,
      rows,
      totals: none ? { count: 0, rate: 0, pct: 0 } : this.model.totalsOf(rows),
      log: this.log,
      logRate: this.logRate,
      ...(error ? { error } : {}),
    }
  }
}
