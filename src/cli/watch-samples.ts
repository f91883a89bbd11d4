// `ioreq watch` off the full-screen view: samples of the top table every interval. The
// first sample is a baseline for the rates; each later one is printed (--once: one).
import type { DaemonClient } from '../core/daemon/client.js'
import type { StatsReply } from '../core/trace/methods.js'
import { TopModel, type SortKey, type ViewRow, type ViewTotals } from '../core/trace/view.js'
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

/** Resolves after `ms`, or at once when the signal aborts (for the fleet's loop too). */
export const pauseFor = pause

type SampleFlags = SampleOptions['flags']

/**
 * One daemon's samples: start() takes the baseline, each next() the rows since the last
 * (rates over that interval; counts are totals since the daemon started).
 */
export class Sampler {
  private constructor(
    private readonly client: DaemonClient,
    private readonly flags: SampleFlags,
    private readonly model: TopModel,
    private readonly filter: ReturnType<typeof filterFromFlags>,
    private readonly names: Map<number, string>,
  ) {}

  static async start(client: DaemonClient, names: string[], flags: SampleFlags): Promise<Sampler> {
    const byVcpu = flags['by-vcpu'] === true
    const first = await client.call<Wire<StatsReply>>('trace.stats', { byVcpu })
    const filter = filterFromFlags(flags, names, first.vms)
    const model = new TopModel({ filter, sort: (flags.sort ?? 'count') as SortKey })
    const sampler = new Sampler(
      client,
      flags,
      model,
      filter,
      new Map(first.vms.map((v) => [v.vmid, v.name])),
    )
    await sampler.next()
    return sampler
  }

  async next(): Promise<{ rows: ViewRow[]; totals: ViewTotals }> {
    // the daemon filters before it merges vCPUs, so a vCPU filter holds on merged rows too
    const reply = await this.client.call<Wire<StatsReply>>('trace.stats', {
      byVcpu: this.flags['by-vcpu'] === true,
      filter: filterToWire(this.filter),
    })
    for (const v of reply.vms) this.names.set(v.vmid, v.name)
    this.model.update(reply.rows, reply.t, (vmid) => this.names.get(vmid) ?? String(vmid))
    const rows = this.model.rows({ skipZero: this.flags['skip-zero'] === true })
    return { rows, totals: this.model.totalsOf(rows) }
  }
}

export async function watchSamples(
  o: SampleOptions,
): Promise<{ samples: { time: string; rows: TopRecord[] }[] }> {
  const sampler = await Sampler.start(o.client, o.names, o.flags)
  const out: { time: string; rows: TopRecord[] }[] = []
  for (let n = 0; o.samples === undefined || n < o.samples; n++) {
    await pause(o.intervalMs, o.signal)
    if (o.signal?.aborted) break
    const { rows, totals } = await sampler.next()
    const time = new Date().toISOString()
    if (o.json) {
      out.push({ time, rows: rows.map(topRecord) })
      continue
    }
    const text = renderTop(rows, totals, o.format, time, n === 0)
    // a jsonl sample with no rows prints nothing (not an empty line)
    if (text !== '') o.write(text + (o.format === 'table' ? '\n' : ''))
  }
  return { samples: out }
}
