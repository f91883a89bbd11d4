// A point in the past as `--since` takes it (as docker events and journalctl do): a
// duration back from now (30s, 10m, 2h, 1d, 1h30m), a date and time (ISO 8601, with or
// without a zone: without one it is local time), a time of day today (14:05, 14:05:30), or
// Unix seconds (1765100000).

import { UsageError } from '../errors.js'

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
}

const HINT =
  'give a duration back from now (30s, 10m, 2h, 1d, 1h30m), a time today (14:05), a date and time (2026-12-07T14:05:00Z) or Unix seconds'

/** Epoch ms of `text`, relative to `now`; refused with a hint when it is none of those forms. */
export function parseSince(text: string, options: { flag?: string; now?: number } = {}): number {
  const now = options.now ?? Date.now()
  const input = text.trim()
  const bad = (why: string) =>
    new UsageError(`'${text}' ${why}`, { flag: options.flag, hint: HINT })
  let at: number | undefined
  if (/^(\d+(ms|s|m|h|d))+$/i.test(input)) {
    let ms = 0
    for (const [, n, unit] of input.toLowerCase().matchAll(/(\d+)(ms|s|m|h|d)/g))
      ms += Number(n) * UNIT_MS[unit!]!
    at = now - ms
  } else if (/^\d{9,11}(\.\d+)?$/.test(input)) {
    at = Math.round(Number(input) * 1000)
  } else if (/^\d{1,2}:\d{2}(:\d{2})?$/.test(input)) {
    const [h, m, s] = input.split(':').map(Number) as [number, number, number | undefined]
    if (h > 23 || m > 59 || (s ?? 0) > 59) throw bad('is not a time of day')
    const day = new Date(now)
    day.setHours(h, m, s ?? 0, 0)
    at = day.getTime()
  } else if (
    /^\d{4}-\d{2}-\d{2}([T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/i.test(input)
  ) {
    // a date alone is its midnight, local (Date.parse would take it as UTC)
    at = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(input) ? `${input}T00:00` : input.replace(' ', 'T'))
    if (Number.isNaN(at)) throw bad('is not a valid date')
  } else {
    throw bad('is not a duration or a time')
  }
  if (!Number.isSafeInteger(at) || at < 0) throw bad('is before 1970')
  if (at > now) throw bad('is in the future')
  return at
}
