// `ioreq watch` off the full-screen view: samples of the top table every interval. The
// first sample is a baseline for the rates; each later one is printed (--once: one).
import type { DaemonClient } from '../core/daemon/client.js'
import type { StatsReply } from '../core/trace/methods.js'
import { TopModel, type SortKey } from '../core/trace/view.js'
import type { Wire } from '../core/daemon/protocol.js'
import { renderTop, topRecord, type TopFormat, type TopRecord } from '../ui/trace.js'
import { filterFromFlags, filterToWire, type TraceFilterFlagValues } from './trace-flags.js'

export interface SampleOptions {
  client: DaemonClient
  names: string[]
  flags: TraceFilterFlagValues & { 'skip-zero'?: boolean; sort?: string; 'by-vcpu'?: boolean }
  intervalMs: number
  /** Samples to print; undefined for until Ctrl-C. */
  samples: number | undefined
  format: TopFormat
  json: boolean
  write: (text: string) => void
  signal?: AbortSignal
}

/** Resolves after `ms`, or at once when the signal aborts. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done)
  })
}

export async function watchSamples(
  o: SampleOptions,
): Promise<{ samples: { time: string; rows: TopRecord[] }[] }> {
  const byVcpu = o.flags['by-vcpu'] === true
  const first = await o.client.call<Wire<StatsReply>>('trace.stats', { byVcpu })
  const filter = filterFromFlags(o.flags, o.names, first.vms)
  // the daemon filters before it merges vCPUs, so a vCPU filter holds on merged rows too
  const stats = () =>
    o.client.call<Wire<StatsReply>>('trace.stats', { byVcpu, filter: filterToWire(filter) })
  const model = new TopModel({ filter, sort: (o.flags.sort ?? 'count') as SortKey })
  const names = new Map(first.vms.map((v) => [v.vmid, v.name]))
  const vmName = (vmid: number) => names.get(vmid) ?? String(vmid)
  let reply = await stats()
  model.update(reply.rows, reply.t, vmName)
  const out: { time: string; rows: TopRecord[] }[] = []
  for (let n = 0; o.samples === undefined || n < o.samples; n++) {
    await pause(o.intervalMs, o.signal)
    if (o.signal?.aborted) break
    reply = await stats()
    for (const v of reply.vms) names.set(v.vmid, v.name)
    model.update(reply.rows, reply.t, vmName)
    const rows = model.rows({ skipZero: o.flags['skip-zero'] === true })
    const time = new Date().toISOString()
    if (o.json) {
      out.push({ time, rows: rows.map(topRecord) })
      continue
    }
    const text = renderTop(rows, model.totalsOf(rows), o.format, time, n === 0)
    // a jsonl sample with no rows prints nothing (not an empty line)
    if (text !== '') o.write(text + (o.format === 'table' ? '\n' : ''))
  }
  return { samples: out }
}
