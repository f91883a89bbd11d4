// The daemon's ioctl log: entries of every size kept in order, the oldest let go when the
// ring is full (and counted for a reader that was behind), fillers at the ring's end never
// read as entries, and a filter that keeps a reader's cursor moving.

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { IoctlLog, IoctlSource, type IoctlEntryInput } from '../../../src/core/trace/ioctl-log.js'

function entry(i: number, argLength: number): IoctlEntryInput {
  return {
    source: i % 2 ? IoctlSource.SIM : IoctlSource.TAP,
    flags: i % 3 === 0 ? 1 : 0,
    errno: i % 5,
    t: i * 1.5,
    durationNs: i * 7,
    pid: 100 + (i % 4),
    tid: 200 + i,
    fd: i % 9,
    request: (0xc030a210 + i) >>> 0,
    result: i % 5 ? -1 : 0,
    value: BigInt(i) * 0x1_0000_0001n,
    bytes: Uint8Array.from({ length: argLength }, (_, k) => (i + k) & 0xff),
  }
}

describe('IoctlLog', () => {
  it('gives back every entry it still holds, in order, byte for byte', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(600), { minLength: 1, maxLength: 400 }), (sizes) => {
        const log = new IoctlLog(16_384)
        const inputs = sizes.map((n, i) => entry(i, n))
        for (const e of inputs) log.append(e)
        expect(log.head).toBe(inputs.length)
        const read = log.read(0, Infinity)
        // whatever was let go was the oldest, and the reader at 0 is told how many
        expect(read.dropped).toBe(log.oldest)
        expect(read.cursor).toBe(inputs.length)
        expect(read.entries.map((e) => e.seq)).toEqual(inputs.map((_, i) => i).slice(log.oldest))
        for (const e of read.entries) {
          const { seq, ...rest } = e
          expect(rest).toEqual(inputs[seq])
        }
        // the ring holds at most its capacity
        const held = read.entries.reduce((n, e) => n + 56 + ((e.bytes.byteLength + 7) & ~7), 0)
        expect(held).toBeLessThanOrEqual(16_384)
      }),
    )
  })

  it('reads from a cursor, a bounded number at a time, and filters', () => {
    const log = new IoctlLog()
    for (let i = 0; i < 50; i++) log.append(entry(i, 8))
    const first = log.read(10, 5)
    expect(first.entries.map((e) => e.seq)).toEqual([10, 11, 12, 13, 14])
    expect(first.cursor).toBe(15)
    expect(first.dropped).toBe(0)
    const mine = log.read(0, 3, (e) => e.pid === 101)
    expect(mine.entries.map((e) => e.seq)).toEqual([1, 5, 9])
    expect(mine.cursor).toBe(10) // right after the last one taken
    // a cursor past the head (a reader that outlived a restart) starts at the head
    expect(log.read(1000, 5)).toEqual({ entries: [], cursor: 50, dropped: 0 })
  })

  it('counts what a slow reader lost', () => {
    const log = new IoctlLog(4096)
    for (let i = 0; i < 200; i++) log.append(entry(i, 40))
    const read = log.read(3, 1)
    expect(log.oldest).toBeGreaterThan(3)
    expect(read.dropped).toBe(log.oldest - 3)
    expect(read.entries[0]!.seq).toBe(log.oldest)
  })
})
