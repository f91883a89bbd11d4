// The tap's record stream (helper/TAP.md), the TypeScript twin of helper/hsm-tap.h: what
// libhsm-tap.so sends hsmd. Records are 8-byte aligned and little-endian, each starting
// with u16 type, u16 length (the whole record), u32 tid; the stream starts with a HELLO.

export const TapRecord = { HELLO: 1, IOCTL: 2, IOREQ: 3, TOTALS: 4 } as const

export const TAP_MAGIC = 0x5041_5448 // "HTAP"
export const TAP_VERSION = 1

export const TapSize = {
  HEADER: 8,
  HELLO: 56,
  IOCTL_FIXED: 48,
  IOREQ: 176,
  TOTALS: 32,
  SLOT_BYTES: 128,
  VALUE_OFFSET: 88,
  MAX_ARG: 512,
  PROGRAM: 16,
} as const

export const TapFlag = { ARG_UNREADABLE: 1, SEEN_AT_ATTACH: 1 } as const

/** The longest record: an IOCTL with a read-back argument before and after (2 x MAX_ARG). */
export const TAP_MAX_RECORD = TapSize.IOCTL_FIXED + 2 * TapSize.MAX_ARG

export interface TapHello {
  pid: number
  ringBytes: number
  /** CLOCK_MONOTONIC ns when the tap sent it. */
  clock: bigint
  droppedBefore: bigint
  program: string
}

export interface TapIoctl {
  tid: number
  /** CLOCK_MONOTONIC ns when the call started. */
  start: bigint
  durationNs: number
  fd: number
  request: number
  result: number
  errno: number
  flags: number
  /** The argument as the program passed it: a pointer or a value. */
  value: bigint
  /** The argument's bytes (a view into the record). */
  bytes: Uint8Array
}

export interface TapIoreq {
  tid: number
  /** When ATTACH returned the slot (ns), 0n if it did not (the program polled). */
  seen: bigint
  notifyStart: bigint
  notifyNs: number
  fd: number
  vmid: number
  vcpu: number
  flags: number
  /** The 8 bytes at the request's value offset when NOTIFY was called. */
  value: bigint
  /** The slot's first 128 bytes as ATTACH returned it (a view into the record). */
  slot: Uint8Array
}

export interface TapTotals {
  ioctls: bigint
  ioreqs: bigint
  dropped: bigint
}

export class TapStreamError extends Error {}

export interface TapSink {
  hello(h: TapHello): void
  ioctl(r: TapIoctl): void
  ioreq(r: TapIoreq): void
  totals(t: TapTotals): void
}

const latin1 = new TextDecoder('latin1')

/**
 * Cuts a byte stream into records and hands each to the sink. Bytes may arrive in any
 * chunks; a record whose header makes no sense (bad length, unknown type, no HELLO first)
 * throws TapStreamError: the stream cannot be resynchronised, the connection ends.
 */
export class TapDecoder {
  private pending: Uint8Array = new Uint8Array(0)
  private greeted = false

  constructor(private readonly sink: TapSink) {}

  push(chunk: Uint8Array): void {
    let data = chunk
    if (this.pending.byteLength) {
      const joined = new Uint8Array(this.pending.byteLength + chunk.byteLength)
      joined.set(this.pending)
      joined.set(chunk, this.pending.byteLength)
      data = joined
    }
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
    let at = 0
    while (data.byteLength - at >= TapSize.HEADER) {
      const type = view.getUint16(at, true)
      const length = view.getUint16(at + 2, true)
      if (length < TapSize.HEADER || length % 8 !== 0 || length > TAP_MAX_RECORD)
        throw new TapStreamError(`record of type ${type} has a bad length ${length}`)
      if (data.byteLength - at < length) break
      this.record(view, data, at, type, length)
      at += length
    }
    this.pending = data.slice(at)
  }

  private record(v: DataView, data: Uint8Array, at: number, type: number, length: number): void {
    const need = (size: number) => {
      if (length < size)
        throw new TapStreamError(`record of type ${type} is ${length} bytes, needs ${size}`)
    }
    if (!this.greeted && type !== TapRecord.HELLO)
      throw new TapStreamError(`the stream starts with a record of type ${type}, not HELLO`)
    const tid = v.getUint32(at + 4, true)
    switch (type) {
      case TapRecord.HELLO: {
        need(TapSize.HELLO)
        if (this.greeted) throw new TapStreamError('a second HELLO')
        if (v.getUint32(at + 8, true) !== TAP_MAGIC) throw new TapStreamError('bad magic')
        const version = v.getUint32(at + 12, true)
        if (version !== TAP_VERSION)
          throw new TapStreamError(`tap version ${version}; hsmd speaks ${TAP_VERSION}`)
        const name = data.subarray(at + 40, at + 40 + TapSize.PROGRAM)
        const end = name.indexOf(0)
        this.greeted = true
        this.sink.hello({
          pid: v.getUint32(at + 16, true),
          ringBytes: v.getUint32(at + 20, true),
          clock: v.getBigUint64(at + 24, true),
          droppedBefore: v.getBigUint64(at + 32, true),
          program: latin1.decode(name.subarray(0, end < 0 ? name.length : end)),
        })
        return
      }
      case TapRecord.IOCTL: {
        need(TapSize.IOCTL_FIXED)
        const n = v.getUint16(at + 36, true)
        if (TapSize.IOCTL_FIXED + n > length)
          throw new TapStreamError(`ioctl record of ${length} bytes says ${n} argument bytes`)
        this.sink.ioctl({
          tid,
          start: v.getBigUint64(at + 8, true),
          durationNs: v.getUint32(at + 16, true),
          fd: v.getInt32(at + 20, true),
          request: v.getUint32(at + 24, true),
          result: v.getInt32(at + 28, true),
          errno: v.getInt32(at + 32, true),
          flags: v.getUint8(at + 38),
          value: v.getBigUint64(at + 40, true),
          bytes: data.subarray(at + TapSize.IOCTL_FIXED, at + TapSize.IOCTL_FIXED + n),
        })
        return
      }
      case TapRecord.IOREQ:
        need(TapSize.IOREQ)
        this.sink.ioreq({
          tid,
          seen: v.getBigUint64(at + 8, true),
          notifyStart: v.getBigUint64(at + 16, true),
          notifyNs: v.getUint32(at + 24, true),
          fd: v.getInt32(at + 28, true),
          vmid: v.getUint16(at + 32, true),
          vcpu: v.getUint16(at + 34, true),
          flags: v.getUint32(at + 36, true),
          value: v.getBigUint64(at + 40, true),
          slot: data.subarray(at + 48, at + 48 + TapSize.SLOT_BYTES),
        })
        return
      case TapRecord.TOTALS:
        need(TapSize.TOTALS)
        this.sink.totals({
          ioctls: v.getBigUint64(at + 8, true),
          ioreqs: v.getBigUint64(at + 16, true),
          dropped: v.getBigUint64(at + 24, true),
        })
        return
      default:
        throw new TapStreamError(`unknown record type ${type}`)
    }
  }
}

// --- encoders, for tests and tools that play a tap --------------------------------------

function record(type: number, size: number, tid: number): { bytes: Uint8Array; v: DataView } {
  const bytes = new Uint8Array(size)
  const v = new DataView(bytes.buffer)
  v.setUint16(0, type, true)
  v.setUint16(2, size, true)
  v.setUint32(4, tid, true)
  return { bytes, v }
}

export function encodeTapHello(h: TapHello): Uint8Array {
  const { bytes, v } = record(TapRecord.HELLO, TapSize.HELLO, 0)
  v.setUint32(8, TAP_MAGIC, true)
  v.setUint32(12, TAP_VERSION, true)
  v.setUint32(16, h.pid, true)
  v.setUint32(20, h.ringBytes, true)
  v.setBigUint64(24, h.clock, true)
  v.setBigUint64(32, h.droppedBefore, true)
  bytes.set(new TextEncoder().encode(h.program).subarray(0, TapSize.PROGRAM), 40)
  return bytes
}

export function encodeTapIoctl(r: TapIoctl): Uint8Array {
  const size = (TapSize.IOCTL_FIXED + r.bytes.byteLength + 7) & ~7
  const { bytes, v } = record(TapRecord.IOCTL, size, r.tid)
  v.setBigUint64(8, r.start, true)
  v.setUint32(16, r.durationNs, true)
  v.setInt32(20, r.fd, true)
  v.setUint32(24, r.request >>> 0, true)
  v.setInt32(28, r.result, true)
  v.setInt32(32, r.errno, true)
  v.setUint16(36, r.bytes.byteLength, true)
  v.setUint8(38, r.flags)
  v.setBigUint64(40, r.value, true)
  bytes.set(r.bytes, TapSize.IOCTL_FIXED)
  return bytes
}

export function encodeTapIoreq(r: TapIoreq): Uint8Array {
  const { bytes, v } = record(TapRecord.IOREQ, TapSize.IOREQ, r.tid)
  v.setBigUint64(8, r.seen, true)
  v.setBigUint64(16, r.notifyStart, true)
  v.setUint32(24, r.notifyNs, true)
  v.setInt32(28, r.fd, true)
  v.setUint16(32, r.vmid, true)
  v.setUint16(34, r.vcpu, true)
  v.setUint32(36, r.flags, true)
  v.setBigUint64(40, r.value, true)
  bytes.set(r.slot.subarray(0, TapSize.SLOT_BYTES), 48)
  return bytes
}

export function encodeTapTotals(t: TapTotals): Uint8Array {
  const { bytes, v } = record(TapRecord.TOTALS, TapSize.TOTALS, 0)
  v.setBigUint64(8, t.ioctls, true)
  v.setBigUint64(16, t.ioreqs, true)
  v.setBigUint64(24, t.dropped, true)
  return bytes
}
