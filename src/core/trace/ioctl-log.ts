// The daemon's HSM ioctl log: every ioctl a traced process made (the tap, helper/TAP.md)
// or a shimmed process asked the simulation for (SimServer), as raw bytes, in one ring of
// variable-size entries. Writers never block or allocate beyond the ring; decoding (the ABI
// tables) happens when a reader asks (`ioctl log`). A reader that falls behind loses the
// oldest entries and is told how many.
//
// Entry layout (little-endian, 8-byte aligned):
//    0 u32 length      the whole entry; a filler at the ring's end has source 0xff
//    4 u8  source      IoctlSource
//    5 u8  flags       the tap's IOCTL flags (argument unreadable)
//    6 u16 errno
//    8 f64 t           daemon clock (performance.now() ms) when the call started
//   16 u32 duration   ns
//   20 u32 pid
//   24 u32 tid
//   28 i32 fd         in the process
//   32 u32 request
//   36 i32 result
//   40 u64 value      the argument as passed (a pointer or a value)
//   48 u16 arg bytes, then 6 bytes of padding
//   56 the argument bytes, padded to 8

export const IoctlSource = { TAP: 0, SIM: 1 } as const
export type IoctlSourceName = 'tap' | 'sim'
export const SOURCE_NAMES: readonly IoctlSourceName[] = ['tap', 'sim']

const FIXED = 56
const FILLER = 0xff

export interface IoctlEntry {
  seq: number
  source: number
  flags: number
  errno: number
  t: number
  durationNs: number
  pid: number
  tid: number
  fd: number
  request: number
  result: number
  value: bigint
  bytes: Uint8Array
}

export type IoctlEntryInput = Omit<IoctlEntry, 'seq'>

export interface IoctlLogRead {
  entries: IoctlEntry[]
  /** Pass back as `cursor` to read on. */
  cursor: number
  /** Entries between the asked cursor and the oldest one still held. */
  dropped: number
}

export class IoctlLog {
  private readonly bytes: Uint8Array
  private readonly view: DataView
  /** Byte positions (ever written) of the entries still held, by entry number. */
  private readonly starts: Float64Array
  private headByte = 0
  private oldestByte = 0
  /** Entries ever appended (the number of the next one). */
  head = 0
  /** The number of the oldest entry still held. */
  oldest = 0

  constructor(readonly capacity = 1 << 23) {
    if (capacity % 8 !== 0 || capacity < 4096)
      throw new RangeError('ioctl log capacity: a multiple of 8, at least 4096')
    this.bytes = new Uint8Array(capacity)
    this.view = new DataView(this.bytes.buffer)
    // an entry is at least FIXED bytes: this many starts can be held at once
    this.starts = new Float64Array(Math.ceil(capacity / FIXED) + 1)
  }

  /** Make room for `n` more bytes at the head, letting the oldest entries go. */
  private room(n: number): void {
    while (this.headByte + n - this.oldestByte > this.capacity) {
      const at = this.oldestByte % this.capacity
      const length = this.view.getUint32(at, true)
      if (this.view.getUint8(at + 4) !== FILLER) this.oldest++
      this.oldestByte += length
    }
  }

  append(e: IoctlEntryInput): number {
    const argLength = Math.min(e.bytes.byteLength, 0xffff)
    const length = (FIXED + argLength + 7) & ~7
    if (length > this.capacity / 2) throw new RangeError('ioctl log entry too large')
    let at = this.headByte % this.capacity
    if (this.capacity - at < length) {
      // a filler up to the end: entries never wrap
      const filler = this.capacity - at
      this.room(filler)
      this.view.setUint32(at, filler, true)
      this.view.setUint8(at + 4, FILLER)
      this.headByte += filler
      at = 0
    }
    this.room(length)
    const v = this.view
    v.setUint32(at, length, true)
    v.setUint8(at + 4, e.source)
    v.setUint8(at + 5, e.flags)
    v.setUint16(at + 6, e.errno, true)
    v.setFloat64(at + 8, e.t, true)
    v.setUint32(at + 16, Math.max(0, Math.min(0xffff_ffff, Math.round(e.durationNs))), true)
    v.setUint32(at + 20, e.pid >>> 0, true)
    v.setUint32(at + 24, e.tid >>> 0, true)
    v.setInt32(at + 28, e.fd, true)
    v.setUint32(at + 32, e.request >>> 0, true)
    v.setInt32(at + 36, e.result, true)
    v.setBigUint64(at + 40, BigInt.asUintN(64, e.value), true)
    v.setUint16(at + 48, argLength, true)
    this.bytes.set(e.bytes.subarray(0, argLength), at + FIXED)
    this.bytes.fill(0, at + FIXED + argLength, at + length)
    this.starts[this.head % this.starts.length] = this.headByte
    this.headByte += length
    return this.head++
  }

  private entryAt(seq: number): IoctlEntry {
    const at = this.starts[seq % this.starts.length]! % this.capacity
    const v = this.view
    const n = v.getUint16(at + 48, true)
    return {
      seq,
      source: v.getUint8(at + 4),
      flags: v.getUint8(at + 5),
      errno: v.getUint16(at + 6, true),
      t: v.getFloat64(at + 8, true),
      durationNs: v.getUint32(at + 16, true),
      pid: v.getUint32(at + 20, true),
      tid: v.getUint32(at + 24, true),
      fd: v.getInt32(at + 28, true),
      request: v.getUint32(at + 32, true),
      result: v.getInt32(at + 36, true),
      value: v.getBigUint64(at + 40, true),
      bytes: this.bytes.slice(at + FIXED, at + FIXED + n),
    }
  }

  /**
   * Up to `max` entries from `cursor` on that pass `keep`. A cursor past the head (a
   * reader that outlived a daemon restart) starts at the head.
   */
  read(cursor: number, max: number, keep?: (e: IoctlEntry) => boolean): IoctlLogRead {
    const at = Math.min(Math.max(0, Math.floor(cursor)), this.head)
    let next = Math.max(at, this.oldest)
    const dropped = next - at
    const entries: IoctlEntry[] = []
    for (; next < this.head && entries.length < max; next++) {
      const e = this.entryAt(next)
      if (!keep || keep(e)) entries.push(e)
    }
    return { entries, cursor: next, dropped }
  }
}
