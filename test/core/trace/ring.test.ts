// TraceRing: cursors, the records a reader gets back, and what it is told it lost when
// the writer laps it; filtered reads and tail reads (the log view) against a model.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { compileRecordFilter } from '../../../src/core/trace/filter.js'
import { RECORD_SIZE, records, TYPE_MMIO } from '../../../src/core/trace/record.js'
import { TraceRing } from '../../../src/core/trace/ring.js'
import { event, pack } from './records.js'

/** Append records whose time is their sequence number. */
function fill(ring: TraceRing, from: number, n: number, type = (_i: number) => 0) {
  for (let i = from; i < from + n; i++) {
    const at = ring.reserve()
    const bytes = pack([event({ t: i, type: type(i) as 0 })])
    new Uint8Array(ring.view.buffer).set(bytes, at)
    ring.commit()
  }
}

const times = (bytes: Uint8Array) => [...records(bytes)].map((e) => e.t)
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i)

describe('TraceRing', () => {
  it('refuses a capacity that is not a power of two', () => {
    expect(() => new TraceRing(12)).toThrow(/power of two/)
    expect(() => new TraceRing(0)).toThrow(/power of two/)
  })

  it('a reader that keeps up gets every record once, in order', () => {
    const ring = new TraceRing(8)
    let cursor = 0
    const seen: number[] = []
    for (let round = 0; round < 5; round++) {
      fill(ring, round * 5, 5)
      const r = ring.read(cursor)
      expect(r.dropped).toBe(0)
      seen.push(...times(r.bytes))
      cursor = r.cursor
    }
    expect(seen).toEqual(range(0, 25))
    expect(cursor).toBe(25)
  })

  it('a reader lapped by the writer is told how many it lost and resumes at the oldest', () => {
    const ring = new TraceRing(8)
    fill(ring, 0, 20)
    const r = ring.read(3)
    expect(r.dropped).toBe(9) // 3..11 were overwritten
    expect(times(r.bytes)).toEqual(range(12, 20))
    expect(r.cursor).toBe(20)
  })

  it('max limits a read; the cursor continues from there', () => {
    const ring = new TraceRing(16)
    fill(ring, 0, 10)
    const a = ring.read(0, 4)
    expect(times(a.bytes)).toEqual([0, 1, 2, 3])
    const b = ring.read(a.cursor, 100)
    expect(times(b.bytes)).toEqual(range(4, 10))
  })

  it('a cursor past the head (a daemon restarted under the reader) starts at the head', () => {
    const ring = new TraceRing(8)
    fill(ring, 0, 3)
    const r = ring.read(1000)
    expect(r).toMatchObject({ cursor: 3, dropped: 0, matched: 0 })
    expect(r.bytes.byteLength).toBe(0)
    fill(ring, 3, 2)
    expect(times(ring.read(r.cursor).bytes)).toEqual([3, 4])
  })

  it('a filtered read returns only passing records and stops after the last one taken', () => {
    const ring = new TraceRing(32)
    fill(ring, 0, 20, (i) => (i % 4 === 0 ? TYPE_MMIO : 0))
    const mmio = compileRecordFilter({ types: ['mmio'] })
    const a = ring.read(0, 2, mmio)
    expect(times(a.bytes)).toEqual([0, 4])
    expect(a.cursor).toBe(5)
    const b = ring.read(a.cursor, 100, mmio)
    expect(times(b.bytes)).toEqual([8, 12, 16])
    expect(b.cursor).toBe(20)
  })

  it('a tail read scans to the head and returns the newest matches', () => {
    const ring = new TraceRing(16)
    fill(ring, 0, 40, (i) => (i % 2 ? TYPE_MMIO : 0))
    const r = ring.readTail(30, 3, compileRecordFilter({ types: ['mmio'] }))
    expect(r).toMatchObject({ cursor: 40, dropped: 0, matched: 5 })
    expect(times(r.bytes)).toEqual([35, 37, 39])
    const lapped = ring.readTail(0, 2)
    expect(lapped).toMatchObject({ cursor: 40, dropped: 24, matched: 16 })
    expect(times(lapped.bytes)).toEqual([38, 39])
  })

  it('matches a model of every record ever written, for any interleaving', () => {
    const op = fc.oneof(
      fc.record({ write: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ read: fc.integer({ min: 0, max: 50 }), tail: fc.boolean() }),
    )
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const ring = new TraceRing(16)
        let written = 0
        let cursor = 0
        for (const o of ops) {
          if ('write' in o) {
            fill(ring, written, o.write)
            written += o.write
            continue
          }
          const oldest = Math.max(0, written - 16)
          const from = Math.max(cursor, oldest)
          const r = o.tail ? ring.readTail(cursor, o.read) : ring.read(cursor, o.read)
          expect(r.dropped).toBe(from - cursor)
          const want = o.tail
            ? range(Math.max(from, written - o.read), written)
            : range(from, Math.min(written, from + o.read))
          expect(times(r.bytes)).toEqual(want)
          expect(r.bytes.byteLength).toBe(want.length * RECORD_SIZE)
          cursor = r.cursor
        }
      }),
      { numRuns: 200 },
    )
  })
})
