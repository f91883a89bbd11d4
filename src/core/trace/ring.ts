// The daemon's trace ring: the last N requests as 32-byte records. Writers never block
// or allocate; a reader that falls more than N behind loses the oldest records and is
// told how many (the log view's "dropped" counter, the recorder's loss report).

import { RECORD_SIZE } from './record.js'

export interface RingRead {
  /** Records from the cursor on, oldest first (a copy). */
  bytes: Uint8Array
  /** Pass back as `cursor` for the next read. */
  cursor: number
  /** Records between the asked cursor and the oldest one still in the ring. */
  dropped: number
}

export class TraceRing {
  readonly capacity: number
  private readonly bytes: Uint8Array
  readonly view: DataView
  /** Records ever appended (the cursor of the next one). */
  head = 0

  constructor(capacity = 1 << 18) {
    if (capacity & (capacity - 1)) throw new RangeError('ring capacity must be a power of two')
    this.capacity = capacity
    this.bytes = new Uint8Array(capacity * RECORD_SIZE)
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

  read(cursor: number, max = this.capacity): RingRead {
    const oldest = Math.max(0, this.head - this.capacity)
    const from = Math.max(cursor, oldest)
    const dropped = from - Math.max(0, Math.min(cursor, this.head))
    const count = Math.max(0, Math.min(max, this.head - from))
    const out = new Uint8Array(count * RECORD_SIZE)
    for (let i = 0; i < count;) {
      const slot = (from + i) & (this.capacity - 1)
      const run = Math.min(count - i, this.capacity - slot)
      out.set(this.bytes.subarray(slot * RECORD_SIZE, (slot + run) * RECORD_SIZE), i * RECORD_SIZE)
      i += run
    }
    return { bytes: out, cursor: from + count, dropped: Math.max(0, dropped) }
  }
}
