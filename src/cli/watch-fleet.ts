// `ioreq watch --once`/`--interval` over several hosts: every host's sampler in parallel,
// one sample of all of them each interval. A host that fails (at the start or later) is
// an error row from then on; the others go on.
import type { FleetMember } from '../core/daemon/ssh/fleet.js'
import { type FleetRecord, type HostSample, fleetRecords, renderFleetTop } from '../ui/fleet-top.js'
import type { TopFormat } from '../ui/trace.js'
import { Sampler, pauseFor, type SampleOptions } from './watch-samples.js'

export interface FleetSampleOptions extends Omit<SampleOptions, 'client'> {
  members: FleetMember[]
}

export async function watchFleetSamples(o: FleetSampleOptions): Promise<{
  samples: { time: string; rows: FleetRecord[] }[]
  failed: boolean
}> {
  const started = await Promise.allSettled(
    o.members.map((m) => Sampler.start(m.client, o.names, o.flags)),
  )
  const state = o.members.map((m, i) => {
    const s = started[i]!
    return s.status === 'fulfilled'
      ? {
          host: m.host.label,
          sampler: s.value as Sampler | undefined,
          error: undefined as string | undefined,
        }
      : { host: m.host.label, sampler: undefined, error: (s.reason as Error).message }
  })
  const out: { time: string; rows: FleetRecord[] }[] = []
  for (let n = 0; o.samples === undefined || n < o.samples; n++) {
    await pauseFor(o.intervalMs, o.signal)
    if (o.signal?.aborted) break
    const samples: HostSample[] = await Promise.all(
      state.map(async (h): Promise<HostSample> => {
        if (!h.sampler) return { host: h.host, error: h.error ?? 'no answer' }
        try {
          return { host: h.host, ...(await h.sampler.next()) }
        } catch (e) {
          h.sampler = undefined
          h.error = (e as Error).message
          return { host: h.host, error: h.error }
        }
      }),
    )
    const time = new Date().toISOString()
    if (o.json) {
      out.push({ time, rows: fleetRecords(samples) })
      continue
    }
    const text = renderFleetTop(samples, o.format as TopFormat, time, n === 0)
    if (text !== '') o.write(text + (o.format === 'table' ? '\n' : ''))
  }
  return { samples: out, failed: state.some((h) => h.error !== undefined) }
}
