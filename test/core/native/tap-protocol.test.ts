// The tap's record stream (helper/TAP.md): the TypeScript decoder and encoders, a stream
// cut anywhere, streams that make no sense, and the constants of the C twin
// (helper/hsm-tap.h), which must stay equal.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  encodeTapHello,
  encodeTapIoctl,
  encodeTapIoreq,
  encodeTapTotals,
  TAP_MAGIC,
  TAP_VERSION,
  TapDecoder,
  TapFlag,
  TapRecord,
  TapSize,
  TapStreamError,
  type TapHello,
  type TapIoctl,
  type TapIoreq,
  type TapTotals,
} from '../../../src/core/native/tap-protocol.js'
import { ROOT } from './support.js'

const hello: TapHello = {
  pid: 4242,
  ringBytes: 1 << 20,
  clock: 123_456_789n,
  droppedBefore: 0n,
  program: 'acrn-dm',
}

function collect() {
  const seen: { hello: TapHello[]; ioctl: TapIoctl[]; ioreq: TapIoreq[]; totals: TapTotals[] } = {
    hello: [],
    ioctl: [],
    ioreq: [],
    totals: [],
  }
  // records are views into the pushed bytes: keep copies
  const decoder = new TapDecoder({
    hello: (h) => seen.hello.push(h),
    ioctl: (r) => seen.ioctl.push({ ...r, bytes: new Uint8Array(r.bytes) }),
    ioreq: (r) => seen.ioreq.push({ ...r, slot: new Uint8Array(r.slot) }),
    totals: (t) => seen.totals.push(t),
  })
  return { seen, decoder }
}

const ioctlRecord = fc.record({
  tid: fc.nat(0xffff_ffff),
  start: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  durationNs: fc.nat(0xffff_ffff),
  fd: fc.integer({ min: -1, max: 65535 }),
  request: fc.nat(0xffff_ffff),
  result: fc.integer({ min: -1, max: 0x7fff_ffff }),
  errno: fc.nat(133),
  flags: fc.constantFrom(0, TapFlag.ARG_UNREADABLE),
  value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  bytes: fc.uint8Array({ maxLength: 2 * TapSize.MAX_ARG }),
})

const ioreqRecord = fc.record({
  tid: fc.nat(0xffff_ffff),
  seen: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  notifyStart: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  notifyNs: fc.nat(0xffff_ffff),
  fd: fc.nat(65535),
  vmid: fc.nat(0xffff),
  vcpu: fc.nat(0xffff),
  flags: fc.constantFrom(0, TapFlag.SEEN_AT_ATTACH),
  value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  slot: fc.uint8Array({ minLength: TapSize.SLOT_BYTES, maxLength: TapSize.SLOT_BYTES }),
})

describe('the tap stream', () => {
  it('decodes what was encoded, however the bytes are cut into chunks', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            ioctlRecord.map((r) => ({ r })),
            ioreqRecord.map((q) => ({ q })),
          ),
          {
            maxLength: 12,
          },
        ),
        fc.array(fc.nat(400), { maxLength: 20 }),
        (records, cuts) => {
          const totals = { ioctls: 7n, ioreqs: 3n, dropped: 1n }
          const parts = [
            encodeTapHello(hello),
            ...records.map((x) => ('r' in x ? encodeTapIoctl(x.r) : encodeTapIoreq(x.q))),
            encodeTapTotals(totals),
          ]
          for (const p of parts) expect(p.byteLength % 8).toBe(0)
          const stream = Buffer.concat(parts)
          const { seen, decoder } = collect()
          let at = 0
          for (const cut of cuts) {
            const end = Math.min(stream.byteLength, at + cut)
            decoder.push(stream.subarray(at, end))
            at = end
          }
          decoder.push(stream.subarray(at))
          expect(seen.hello).toEqual([hello])
          expect(seen.ioctl).toEqual(records.flatMap((x) => ('r' in x ? [x.r] : [])))
          expect(seen.ioreq).toEqual(records.flatMap((x) => ('q' in x ? [x.q] : [])))
          expect(seen.totals).toEqual([totals])
        },
      ),
    )
  })

  it('refuses a stream that does not start with HELLO, a bad magic or version, a second HELLO', () => {
    const first = collect()
    expect(() =>
      first.decoder.push(encodeTapTotals({ ioctls: 0n, ioreqs: 0n, dropped: 0n })),
    ).toThrow(/starts with a record of type 4, not HELLO/)
    const magic = encodeTapHello(hello)
    magic[8] = magic[8]! ^ 1
    expect(() => collect().decoder.push(magic)).toThrow(/bad magic/)
    const version = encodeTapHello(hello)
    new DataView(version.buffer).setUint32(12, TAP_VERSION + 1, true)
    expect(() => collect().decoder.push(version)).toThrow(/tap version 2; hsmd speaks 1/)
    const twice = collect()
    twice.decoder.push(encodeTapHello(hello))
    expect(() => twice.decoder.push(encodeTapHello(hello))).toThrow(/a second HELLO/)
  })

  it('refuses lengths that are not whole records, and unknown types', () => {
    const bad = (mutate: (v: DataView) => void, message: RegExp) => {
      const { decoder } = collect()
      decoder.push(encodeTapHello(hello))
      const r = encodeTapIoctl({
        tid: 1,
        start: 0n,
        durationNs: 0,
        fd: 3,
        request: 0,
        result: 0,
        errno: 0,
        flags: 0,
        value: 0n,
        bytes: new Uint8Array(8),
      })
      mutate(new DataView(r.buffer))
      expect(() => decoder.push(r)).toThrow(TapStreamError)
      expect(() => {
        const again = collect()
        again.decoder.push(encodeTapHello(hello))
        again.decoder.push(r)
      }).toThrow(message)
    }
    bad((v) => v.setUint16(2, 12, true), /bad length 12/)
    bad((v) => v.setUint16(2, 0, true), /bad length 0/)
    bad((v) => v.setUint16(2, 8, true), /is 8 bytes, needs 48/)
    bad((v) => v.setUint16(36, 64, true), /says 64 argument bytes/)
    bad((v) => v.setUint16(0, 9, true), /unknown record type 9/)
  })
})

describe('the C twin (helper/hsm-tap.h)', () => {
  const header = readFileSync(join(ROOT, 'helper', 'hsm-tap.h'), 'utf8')
  const cValue = (name: string): number => {
    const define = header.match(new RegExp(`#define\\s+${name}\\s+([0-9a-fx]+)u?\\b`))
    const enumerator = header.match(new RegExp(`\\b${name}\\s*=\\s*([0-9a-fx]+),`))
    const text = define?.[1] ?? enumerator?.[1]
    if (text === undefined) throw new Error(`${name} not found in hsm-tap.h`)
    return Number(text)
  }

  it('has the same constants', () => {
    for (const [name, code] of Object.entries(TapRecord))
      expect(cValue(`HSM_TAP_${name}`), name).toBe(code)
    expect(cValue('HSM_TAP_MAGIC')).toBe(TAP_MAGIC)
    expect(cValue('HSM_TAP_VERSION')).toBe(TAP_VERSION)
    const names: Record<string, string> = {
      HEADER: 'HSM_TAP_HEADER_SIZE',
      HELLO: 'HSM_TAP_HELLO_SIZE',
      IOCTL_FIXED: 'HSM_TAP_IOCTL_FIXED_SIZE',
      IOREQ: 'HSM_TAP_IOREQ_SIZE',
      TOTALS: 'HSM_TAP_TOTALS_SIZE',
      SLOT_BYTES: 'HSM_TAP_SLOT_BYTES',
      VALUE_OFFSET: 'HSM_TAP_VALUE_OFFSET',
      MAX_ARG: 'HSM_TAP_MAX_ARG',
      PROGRAM: 'HSM_TAP_PROGRAM_SIZE',
    }
    for (const [name, size] of Object.entries(TapSize))
      expect(cValue(names[name]!), name).toBe(size)
    expect(cValue('HSM_TAP_ARG_UNREADABLE')).toBe(TapFlag.ARG_UNREADABLE)
    expect(cValue('HSM_TAP_SEEN_AT_ATTACH')).toBe(TapFlag.SEEN_AT_ATTACH)
  })
})
