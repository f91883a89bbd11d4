// TraceStats against a brute-force reference: per-row counts exact, latency min/max exact,
// average to float precision, p99 exact to its histogram bucket (at most 25% above the
// true value, never below it, never above the max), with and without vCPUs merged.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  latencySince,
  TraceStats,
  type LatencySample,
  type TraceRow,
} from '../../../src/core/trace/stats.js'
import { arbEvent, CLIENT, dirOf, event, pack, TYPE, type TestEvent } from './records.js'

interface Expected {
  count: number
  min: number
  max: number
  avg: number
  p99: number
}

/** The rows as a slow, obvious computation over the events. */
function reference(events: TestEvent[], byVcpu: boolean): Map<string, Expected> {
  const groups = new Map<string, number[]>()
  for (const e of events) {
    const id = keyOf({
      vmid: e.vmid,
      vcpu: byVcpu ? e.vcpu : -1,
      type: TYPE[e.type]!,
      dir: dirOf(e),
      client: CLIENT[e.client]!,
      addr: e.addr,
    })
    groups.set(id, [...(groups.get(id) ?? []), e.latencyNs])
  }
  const out = new Map<string, Expected>()
  for (const [id, lat] of groups) {
    const sorted = [...lat].sort((a, b) => a - b)
    out.set(id, {
      count: lat.length,
      min: sorted[0]!,
      max: sorted.at(-1)!,
      avg: lat.reduce((a, b) => a + b, 0) / lat.length,
      p99: sorted[Math.ceil(lat.length * 0.99) - 1]!,
    })
  }
  return out
}

const keyOf = (r: Pick<TraceRow, 'vmid' | 'vcpu' | 'type' | 'dir' | 'client' | 'addr'>) =>
  `${r.vmid}/${r.vcpu}/${r.type}/${r.dir}/${r.client}/${r.addr}`

function expectMatches(rows: TraceRow[], expected: Map<string, Expected>) {
  expect(rows.length).toBe(expected.size)
  for (const row of rows) {
    const want = expected.get(keyOf(row))
    expect(want, keyOf(row)).toBeDefined()
    expect(row.count).toBe(want!.count)
    expect(row.latMin).toBe(want!.min)
    expect(row.latMax).toBe(want!.max)
    expect(row.latAvg).toBeCloseTo(want!.avg, 3)
    expect(row.latP99).toBeGreaterThanOrEqual(want!.p99)
    expect(row.latP99).toBeLessThanOrEqual(Math.min(want!.max, Math.floor(want!.p99 * 1.25) + 1))
  }
}

describe('TraceStats: rows keyed by VM, vCPU, type, direction, client and address', () => {
  it('counts, min/avg/max and p99 match a brute-force reference (per vCPU and merged)', () => {
    fc.assert(
      fc.property(fc.array(arbEvent, { maxLength: 400 }), fc.boolean(), (events, byVcpu) => {
        // a tiny table, so that it grows several times on the way
        const stats = new TraceStats(4)
        stats.ingest(pack(events))
        expect(stats.total).toBe(events.length)
        expectMatches(stats.rows(undefined, byVcpu), reference(events, byVcpu))
      }),
      { numRuns: 150 },
    )
  })

  it('p99 is exact for many samples of one row, with outliers', () => {
    // 1000 requests of 1..1000 ns plus 10 of 10 ms: the 99th percentile is 1000 ns
    const events = [
      ...Array.from({ length: 1000 }, (_, i) => event({ latencyNs: i + 1 })),
      ...Array.from({ length: 10 }, () => event({ latencyNs: 10_000_000 })),
    ]
    const stats = new TraceStats()
    stats.ingest(pack(events))
    const [row] = stats.rows()
    expect(row!.count).toBe(1010)
    // ceil(0.99 * 1010) = 1000th smallest = 1000 ns; its bucket tops out at 1023
    expect(row!.latP99).toBeGreaterThanOrEqual(1000)
    expect(row!.latP99).toBeLessThanOrEqual(1023)
    expect(row!.latMax).toBe(10_000_000)
  })

  it('the access size is not part of the key; the row keeps the last size', () => {
    const stats = new TraceStats()
    stats.ingest(pack([event({ size: 1 }), event({ size: 4 })]))
    const rows = stats.rows()
    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatchObject({ count: 2, size: 4 })
  })

  it('ingest reads records at any byte offset, and ignores a partial last record', () => {
    const bytes = pack([event(), event({ addr: 0x70n })])
    const shifted = new Uint8Array(bytes.byteLength + 3 + 5)
    shifted.set(bytes, 3)
    const stats = new TraceStats()
    stats.ingest(shifted.subarray(3, 3 + bytes.byteLength + 5))
    expect(stats.total).toBe(2)
    expect(new Set(stats.rows().map((r) => r.addr))).toEqual(new Set([0x70n, 0x3f8n]))
  })

  it('add() and ingest() agree', () => {
    const events = [
      event(),
      event({ vcpu: 1, latencyNs: 7 }),
      event({ type: 1, addr: 0xfed00000n }),
    ]
    const bytes = pack(events)
    const words = new Uint32Array(bytes.buffer)
    const a = new TraceStats()
    for (let i = 0; i < events.length; i++)
      a.add(words[i * 8 + 2]!, words[i * 8 + 3]!, words[i * 8 + 7]!, words[i * 8 + 6]!)
    const b = new TraceStats()
    b.ingest(bytes)
    expect(a.rows(undefined, true)).toEqual(b.rows(undefined, true))
  })

  it('the filter applies before vCPUs are merged', () => {
    const stats = new TraceStats()
    stats.ingest(pack([event({ vcpu: 0 }), event({ vcpu: 1 }), event({ vcpu: 1 })]))
    const [row] = stats.rows((k) => k.vcpu === 1)
    expect(row).toMatchObject({ vcpu: -1, count: 2 })
  })

  it('forgetVm drops one VM’s rows and keeps the others', () => {
    const stats = new TraceStats(4)
    const events = Array.from({ length: 60 }, (_, i) =>
      event({ vmid: 1 + (i % 3), addr: BigInt(i % 7), latencyNs: i }),
    )
    stats.ingest(pack(events))
    expect(stats.forgetVm(2)).toBe(20)
    expect(stats.forgetVm(9)).toBe(0)
    expectMatches(
      stats.rows(),
      reference(
        events.filter((e) => e.vmid !== 2),
        false,
      ),
    )
    // and the table still takes new rows for the forgotten vmid, from zero
    stats.ingest(pack([event({ vmid: 2, addr: 0n })]))
    expect(stats.rows((k) => k.vmid === 2)).toEqual([expect.objectContaining({ count: 1 })])
  })
})

describe('latencySince: the latencies of the requests between two samples of a row', () => {
  const sample = (row: TraceRow | undefined): LatencySample =>
    row
      ? {
          count: row.count,
          latMin: row.latMin,
          latMax: row.latMax,
          latSum: row.latSum!,
          latHist: row.latHist!,
        }
      : { count: 0, latMin: 0, latMax: 0, latSum: 0, latHist: [] }

  it('matches a brute-force reference over the later requests only', () => {
    fc.assert(
      fc.property(
        fc.array(arbEvent, { maxLength: 200 }),
        fc.array(arbEvent, { minLength: 1, maxLength: 200 }),
        fc.boolean(),
        (before, after, byVcpu) => {
          const stats = new TraceStats(4)
          stats.ingest(pack(before))
          const rows = () =>
            new Map(stats.rows(undefined, byVcpu, { histograms: true }).map((r) => [keyOf(r), r]))
          const base = rows()
          stats.ingest(pack(after))
          const expected = reference(after, byVcpu)
          for (const [key, row] of rows()) {
            const want = expected.get(key)
            const got = latencySince(sample(row), sample(base.get(key)))
            if (!want) {
              expect(row.count).toBe(base.get(key)!.count)
              expect(got).toEqual({ latMin: 0, latAvg: 0, latP99: 0, latMax: 0 })
              continue
            }
            expect(got.latAvg).toBeCloseTo(want.avg, 3)
            // exact, or to the bucket: never past the true extremes' bucket
            expect(got.latMin).toBeLessThanOrEqual(want.min)
            expect(got.latMin).toBeGreaterThanOrEqual(Math.floor(want.min * 0.8))
            expect(got.latMax).toBeGreaterThanOrEqual(want.max)
            expect(got.latMax).toBeLessThanOrEqual(Math.floor(want.max * 1.25) + 1)
            expect(got.latP99).toBeGreaterThanOrEqual(want.p99)
            expect(got.latP99).toBeLessThanOrEqual(got.latMax)
          }
        },
      ),
      { numRuns: 150 },
    )
  })

  it('slow requests before the sample do not show after it', () => {
    const stats = new TraceStats()
    stats.ingest(pack(Array.from({ length: 100 }, () => event({ latencyNs: 5_000_000 }))))
    const [base] = stats.rows(undefined, false, { histograms: true })
    stats.ingest(
      pack([event({ latencyNs: 90 }), event({ latencyNs: 100 }), event({ latencyNs: 110 })]),
    )
    const [now] = stats.rows(undefined, false, { histograms: true })
    const got = latencySince(sample(now), sample(base))
    expect(got.latAvg).toBe(100)
    // the row's min moved (90 came after the sample): exact; its max did not: 110 to its
    // bucket, 96..111
    expect(got.latMin).toBe(90)
    expect(got.latMax).toBe(111)
    expect(got.latP99).toBeLessThanOrEqual(got.latMax)
  })

  it('rows carry their histogram only when asked (it is most of a reply)', () => {
    const stats = new TraceStats()
    stats.ingest(pack([event({ latencyNs: 3 }), event({ latencyNs: 1000 })]))
    expect(stats.rows()[0]).not.toHaveProperty('latHist')
    expect(stats.rows(undefined, false, { histograms: true })[0]).toMatchObject({
      latSum: 1003,
      latHist: [3, 1, 39, 1], // 1000 ns: bucket 9 × 4 + 3 (2^9, sub-bucket 3)
    })
  })
})
