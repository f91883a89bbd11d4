// `ioreq watch` off the full-screen view: samples of the top table every interval.
import type { DaemonClient } from '../core/daemon/client.js'
import type { StatsReply } from '../core/trace/methods.js'
import { TopModel, type SortKey, type ViewRow } from '../core/trace/view.js'
import type { Wire } from '../core/daemon/protocol.js'
import { renderTop, type TopFormat } from '../ui/trace.js'
import { filterFromFlags, type TraceFilterFlagValues } from './trace-flags.js'

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

export async function watchSamples(
  o: SampleOptions,
): Promise<{ samples: { time: string; rows: ViewRow[] }[] }> {
  const stats = () =>
    o.client.call<Wire<StatsReply>>('trace.stats', { byVcpu: o.flags['by-vcpu'] === true })
  let reply = await stats()
  const filter = filterFromFlags(o.flags, o.names, reply.vms)
  const model = new TopModel({ filter, sort: (o.flags.sort ?? 'count') as SortKey })
  const names = new Map(reply.vms.map((v) => [v.vmid, v.name]))
  const vmName = (vmid: number) => names.get(vmid) ?? String(vmid)
  model.update(reply.rows, reply.t, vmName)
  const out: { time: string; rows: ViewRow[] }[] = []
  let stop = false
  const onSigint = () => (stop = true)
  process.once('SIGINT', onSigint)
  try {
    for (let n = 0; o.samples === undefined || n < o.samples; n++) {
      await new Promise((r) => setTimeout(r, o.intervalMs))
      if (stop || o.signal?.aborted) break
      reply = await stats()
      for (const v of reply.vms) names.set(v.vmid, v.name)
      model.update(reply.rows, reply.t, vmName)
      const rows = model.rows({ skipZero: o.flags['skip-zero'] === true })
      const time = new Date().toISOString()
      if (o.json) out.push({ time, rows })
      else
        o.write(
          renderTop(rows, model.totals, o.format, time, n === 0) +
            (o.format === 'table' ? '\n' : ''),
        )
    }
  } finally {
    process.off('SIGINT', onSigint)
  }
  return { samples: out }
}
