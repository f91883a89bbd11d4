// RPC methods for guest traffic (simulation): guest.run, guest.stop, guest.status, guest.replay.
import type { Handler } from '../daemon/server.js'
import { UsageError } from '../errors.js'
import type { GuestTraffic } from './guest-traffic.js'
import { Params } from './methods.js'

export function guestMethods(traffic: GuestTraffic): Record<string, Handler> {
  const with_ =
    (fn: (p: Params) => unknown): Handler =>
    (params) =>
      fn(new Params(params))
  const vcpuList = (p: Params) => {
    const v = p.value('vcpus')
    if (v === undefined || v === null) return undefined
    if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x)))
      throw new UsageError("param 'vcpus': expected a list of integers")
    return v as number[]
  }
  return {
    'guest.run': with_((p) =>
      traffic.run(p.str('name'), {
        workload: p.str('workload'),
        ...(p.has('rate') ? { rate: p.int('rate', 0, 100_000_000) } : {}),
        ...(vcpuList(p) ? { vcpus: vcpuList(p)! } : {}),
        ...(p.has('count') ? { count: p.int('count', 1, Number.MAX_SAFE_INTEGER) } : {}),
        ...(p.has('durationMs') ? { durationMs: p.int('durationMs', 1, 86_400_000) } : {}),
      }),
    ),
    'guest.stop': with_((p) => traffic.stop(p.str('name'))),
    'guest.wait': with_((p) => traffic.wait(p.str('name'))),
    'guest.status': with_((p) => traffic.status(p.optStr('name'))),
    'guest.replay': with_((p) => {
      const time = (key: string) => {
        const v = p.value(key)
        if (v === undefined || v === null) return undefined
        if (typeof v !== 'number' || !Number.isFinite(v))
          throw new UsageError(`param '${key}': expected a time in milliseconds`)
        return v
      }
      const origin = time('origin')
      const startedAt = time('startedAt')
      return traffic.replay(p.str('name'), p.bytes('records') ?? new Uint8Array(0), {
        fast: p.bool('fast'),
        ...(origin !== undefined ? { origin } : {}),
        ...(startedAt !== undefined ? { startedAt } : {}),
      })
    }),
  }
}
