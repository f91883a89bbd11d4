// The daemon's trace ring: the last N requests as 32-byte records. Writers never block
// or allocate; a reader that falls more than N behind loses the oldest records and is
// told how many (the log view's "dropped" counter, the recorder's loss report).

import { RECORD_SIZE, RECORD_WORDS, type RecordFilter } from './record.js'

export interface RingRead {
  /** Records from the cursor on, oldest first (a copy). */
  bytes: Uint8Array
  /** Pass back as `cursor` for the next read. */
  cursor: number
  /** Records between the asked cursor and the oldest one still in the ring. */
  dropped: number
  /** Records that passed the filter (with `tail`, more than `bytes` may hold). */
  matched: number
}

export class TraceRing {
  readonly capacity: number
  private readonly bytes: Uint8Array
  private readonly words: Uint32Array
  readonly view: DataView
  /** Records ever appended (the cursor of the next one). */
  head = 0

  constructor(capacity = 1 << 18) {
    if (capacity <= 0 || capacity & (capacity - 1))
      throw new RangeError('ring capacity must be a power of two')
    this.capacity = capacity
    this.bytes = new Uint8Array(capacity * RECORD_SIZE)
    this.words = new Uint32Array(this.bytes.buffer)
    this.view = new DataView(this.bytes.buffer)
  }

  /** Byte offset of the slot for the next record; call `commit()` after writing it. */
  reserve(): number {
    return (this.head & (this.capacity - 1)) * RECORD_SIZE
  }

  commit(): void {
    this.head++
  }

  /** The bytes of one committed record (no copy), for listeners. */
  last(): Uint8Array {
    const at = ((this.head - 1) & (this.capacity - 1)) * RECORD_SIZE
    return this.bytes.subarray(at, at + RECORD_SIZE)
  }

  /** The cursor of the oldest record still held. */
  get oldest(): number {
    return Math.max(0, this.head - this.capacity)
  }

  /**
   * Where a read from `cursor` starts. A cursor past the head (a reader that outlived a
   * daemon restart) starts again at the head; one older than the ring starts at the
   * oldest record and the gap is reported as dropped.
   */
  private start(cursor: number): { from: number; dropped: number } {
    const at = Math.min(Math.max(0, Math.floor(cursor)), this.head)
    const from = Math.max(at, this.oldest)
    return { from, dropped: from - at }
  }

  /** Up to `max` records from `cursor` on that pass `keep` (all of them without one). */
  read(cursor: number, max = this.capacity, keep?: RecordFilter): RingRead {
    const { from, dropped } = this.start(cursor)
    const available = this.head - from
    const mask = this.capacity - 1
    if (!keep) {
      const count = Math.max(0, Math.min(max, available))
      const out = new Uint8Array(count * RECORD_SIZE)
      for (let i = 0; i < count;) {
        const slot = (from + i) & mask
        const run = Math.min(count - i, this.capacity - slot)
        out.set(
          this.bytes.subarray(slot * RECORD_SIZE, (slot + run) * RECORD_SIZE),
          i * RECORD_SIZE,
        )
        i += run
      }
      return { bytes: out, cursor: from + count, dropped, matched: count }
    }
    const out = new Uint8Array(Math.max(0, Math.min(max, available)) * RECORD_SIZE)
    let n = 0
    let next = from
    // scan until `max` records passed; the cursor stops right after the last one taken
    for (; next < this.head && n < max; next++) {
      const slot = next & mask
      if (!keep(this.words, slot * RECORD_WORDS)) continue
      out.set(this.bytes.subarray(slot * RECORD_SIZE, (slot + 1) * RECORD_SIZE), n * RECORD_SIZE)
      n++
    }
    return { bytes: out.subarray(0, n * RECORD_SIZE), cursor: next, dropped, matched: n }
  }

  /**
   * Every record from `cursor` to the head is scanned, and the newest `max` that pass
   * `keep` are returned: what a scrolling log needs, at the cost of one pass and no copy
   * of the rest. The cursor moves to the head.
   */
  readTail(cursor: number, max: number, keep?: RecordFilter): RingRead {
    const { from, dropped } = this.start(cursor)
    const mask = this.capacity - 1
    if (!keep) {
      const matched = this.head - from
      const read = this.read(Math.max(from, this.head - max), max)
      return { ...read, dropped, matched }
    }
    // positions of the newest `max` matches, as a small ring of their own
    const taken = new Float64Array(Math.max(1, max))
    let matched = 0
    for (let next = from; next < this.head; next++) {
      if (!keep(this.words, (next & mask) * RECORD_WORDS)) continue
      if (max > 0) taken[matched % max] = next
      matched++
    }
    const n = Math.min(matched, max)
    const out = new Uint8Array(n * RECORD_SIZE)
    for (let i = 0; i < n; i++) {
      const slot = taken[(matched - n + i) % max]! & mask
      out.set(this.bytes.subarray(slot * RECORD_SIZE, (slot + 1) * RECORD_SIZE), i * RECORD_SIZE)
    }
    return { bytes: out, cursor: this.head, dropped, matched }
  }
}
