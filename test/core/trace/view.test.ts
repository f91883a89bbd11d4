// TopModel, the top table's model: rates from the change between samples, shares of the
// total, sort keys, reset to zero, skip-zero, live filter changes and re-attach.
import { describe, expect, it } from 'vitest'
import { TraceStats, type TraceRow } from '../../../src/core/trace/stats.js'
import { TopModel } from '../../../src/core/trace/view.js'
import { event, pack } from './records.js'

function row(addr: number, count: number, more: Partial<TraceRow> = {}): TraceRow {
  return {
    vmid: 1,
    vcpu: -1,
    type: 'pio',
    dir: 'write',
    client: 'default',
    addr: BigInt(addr),
    count,
    latMin: 100,
    latAvg: 200 + addr,
    latP99: 300,
    latMax: 400,
    size: 1,
    ...more,
  }
}

const summary = (m: TopModel, options = {}) =>
  m.rows(options).map((r) => [r.key, r.count, Math.round(r.rate), Number(r.pct.toFixed(1))])

describe('TopModel', () => {
  it('the first sample has counts and shares but no rates; later ones have rates', () => {
    const m = new TopModel()
    m.update([row(0x70, 30), row(0x71, 10)], 1000)
    expect(summary(m)).toEqual([
      ['PIO 0x70 OUT', 30, 0, 75],
      ['PIO 0x71 OUT', 10, 0, 25],
    ])
    m.update([row(0x70, 30), row(0x71, 60), row(0x3f8, 5)], 1500)
    expect(summary(m)).toEqual([
      ['PIO 0x71 OUT', 60, 100, 63.2],
      ['PIO 0x70 OUT', 30, 0, 31.6],
      ['PIO 0x3f8 OUT', 5, 10, 5.3],
    ])
    expect(m.totals).toEqual({ count: 95, rate: 110, pct: 100 })
  })

  it.each([
    ['count', ['PIO 0x71 OUT', 'PIO 0x3f8 OUT', 'PIO 0x70 OUT']],
    ['rate', ['PIO 0x3f8 OUT', 'PIO 0x71 OUT', 'PIO 0x70 OUT']],
    ['latency', ['PIO 0x3f8 OUT', 'PIO 0x71 OUT', 'PIO 0x70 OUT']],
    ['address', ['PIO 0x70 OUT', 'PIO 0x71 OUT', 'PIO 0x3f8 OUT']],
  ] as const)('sorts by %s', (sort, keys) => {
    const m = new TopModel({ sort })
    m.update([row(0x70, 10), row(0x71, 50), row(0x3f8, 20)], 0)
    m.update([row(0x70, 10), row(0x71, 60), row(0x3f8, 40)], 1000)
    expect(m.rows().map((r) => r.key)).toEqual(keys)
  })

  it('ties sort by request, then VM', () => {
    const m = new TopModel()
    m.update([row(0x70, 1, { vmid: 2 }), row(0x70, 1, { vmid: 1 }), row(0x3f8, 1)], 0)
    expect(m.rows().map((r) => `${r.vmid} ${r.key}`)).toEqual([
      '1 PIO 0x3f8 OUT',
      '1 PIO 0x70 OUT',
      '2 PIO 0x70 OUT',
    ])
  })

  it('reset counts from zero from the last sample on; rates are unaffected', () => {
    const m = new TopModel()
    m.update([row(0x70, 100)], 0)
    m.reset()
    expect(m.rows()[0]!.count).toBe(0)
    expect(m.totals.count).toBe(0)
    m.update([row(0x70, 130), row(0x71, 4)], 1000)
    expect(summary(m)).toEqual([
      ['PIO 0x70 OUT', 30, 30, 88.2],
      ['PIO 0x71 OUT', 4, 4, 11.8],
    ])
  })

  it('reset clears the latencies too: after it, min/avg/p99/max are of new requests only', () => {
    const stats = new TraceStats()
    const rows = () => stats.rows(undefined, false, { histograms: true })
    const m = new TopModel()
    stats.ingest(pack(Array.from({ length: 50 }, () => event({ latencyNs: 4_000_000 }))))
    m.update(rows(), 0)
    expect(m.rows()[0]).toMatchObject({ latMin: 4_000_000, latMax: 4_000_000 })
    m.reset()
    expect(m.rows()[0]).toMatchObject({ count: 0, latMin: 0, latAvg: 0, latP99: 0, latMax: 0 })
    // nothing new: still zero, not the old figures
    m.update(rows(), 1000)
    expect(m.rows()[0]).toMatchObject({ count: 0, latMin: 0, latAvg: 0, latP99: 0, latMax: 0 })
    stats.ingest(pack([event({ latencyNs: 1000 }), event({ latencyNs: 3000 })]))
    m.update(rows(), 2000)
    const [r] = m.rows()
    expect(r).toMatchObject({ count: 2, latMin: 1000, latAvg: 2000 })
    // the row's max (4 ms) did not move: 3000 ns to its histogram bucket (2560..3071)
    expect(r!.latMax).toBeGreaterThanOrEqual(3000)
    expect(r!.latMax).toBeLessThanOrEqual(3071)
    expect(r!.latP99).toBeGreaterThanOrEqual(3000)
    expect(r!.latP99).toBeLessThanOrEqual(r!.latMax)
  })

  it('a re-attached VM’s latencies start over with its counts', () => {
    const stats = new TraceStats()
    const rows = () => stats.rows(undefined, false, { histograms: true })
    const m = new TopModel()
    stats.ingest(pack(Array.from({ length: 5 }, () => event({ latencyNs: 900_000 }))))
    m.update(rows(), 0)
    m.rebaseVm(1)
    stats.ingest(pack([event({ latencyNs: 500 })]))
    m.update(rows(), 1000)
    expect(m.rows()[0]).toMatchObject({ count: 1, latMin: 500, latAvg: 500 })
    expect(m.rows()[0]!.latMax).toBeLessThan(1000)
  })

  it('rows without histograms (a report, an older daemon) keep the daemon’s figures', () => {
    const m = new TopModel()
    m.update([row(0x70, 100)], 0)
    m.reset()
    m.update([row(0x70, 130)], 1000)
    expect(m.rows()[0]).toMatchObject({ count: 30, latMin: 100, latMax: 400 })
  })

  it('skip-zero leaves out rows with no requests since the last sample', () => {
    const m = new TopModel()
    m.update([row(0x70, 10), row(0x71, 10)], 0)
    m.update([row(0x70, 10), row(0x71, 11)], 1000)
    expect(summary(m, { skipZero: true })).toEqual([['PIO 0x71 OUT', 11, 1, 52.4]])
    // the Total of what is shown: the hidden row counts in neither count nor % (issue 13 item 21)
    expect(m.totalsOf(m.rows({ skipZero: true }))).toEqual({ count: 11, rate: 1, pct: 11 / 0.21 })
    expect(m.totalsOf(m.rows())).toEqual({ count: 21, rate: 1, pct: 100 })
  })

  it('filters rows by the model’s filter, and a new filter applies at once', () => {
    const m = new TopModel({ filter: { types: ['mmio'] } })
    const rows = [row(0x70, 10), row(0xfed00000, 5, { type: 'mmio', dir: 'read' })]
    m.update(rows, 0)
    expect(m.rows().map((r) => r.key)).toEqual(['MMIO 0xfed00000 R'])
    m.setFilter({ types: ['pio'] })
    m.update(
      rows.map((r) => ({ ...r, count: r.count + 1 })),
      1000,
    )
    // rates continue: the rows were sampled all along
    expect(summary(m)).toEqual([['PIO 0x70 OUT', 11, 1, 100]])
  })

  it('a vCPU filter change starts the rates over, and counts restart after a reset', () => {
    const m = new TopModel()
    m.update([row(0x70, 100)], 0)
    m.reset()
    m.setFilter({ vcpus: [1] })
    // the daemon now merges only vCPU 1: a smaller count, which is no drop in traffic
    m.update([row(0x70, 40)], 1000)
    expect(summary(m)).toEqual([['PIO 0x70 OUT', 0, 0, 0]])
    m.update([row(0x70, 45)], 2000)
    expect(summary(m)).toEqual([['PIO 0x70 OUT', 5, 5, 100]])
  })

  it('re-attach: a VM back under a reused vmid counts from zero, its old rows hidden', () => {
    const m = new TopModel()
    m.update([row(0x70, 50), row(0x71, 50)], 0)
    m.rebaseVm(1)
    m.update([row(0x70, 53), row(0x71, 50)], 1000)
    expect(summary(m)).toEqual([['PIO 0x70 OUT', 3, 3, 100]])
  })

  it('a row the daemon forgot (its VM destroyed) loses its baseline', () => {
    const m = new TopModel()
    m.update([row(0x70, 50)], 0)
    m.reset()
    m.update([], 1000)
    m.update([row(0x70, 2)], 2000)
    expect(summary(m)).toEqual([['PIO 0x70 OUT', 2, 2, 100]])
  })

  it('accepts addresses as hex strings (rows from the socket)', () => {
    const m = new TopModel()
    m.update([{ ...row(0, 1), addr: '0xfed00000', type: 'mmio' }], 0)
    expect(m.rows()[0]).toMatchObject({ key: 'MMIO 0xfed00000 W', addr: 0xfed00000n })
  })
})
