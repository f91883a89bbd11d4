// The daemon's trace: every I/O request it sees goes into the ring (for the log view and
// recorders) and the live statistics (for the top view), both from the same 32-byte
// record, written in place with no allocation.

import { performance } from 'node:perf_hooks'
import { RECORD_SIZE, packFlags, writeRecord } from './record.js'
import { TraceRing } from './ring.js'
import { TraceStats } from './stats.js'

export interface PublishedRequest {
  vmid: number
  vcpu: number
  /** TYPE_PIO, TYPE_MMIO or TYPE_PCICFG. */
  type: number
  write: boolean
  /** CLIENT_DEFAULT, CLIENT_IOEVENTFD or CLIENT_KERNEL. */
  client: number
  size: number
  addr: bigint
  value: bigint
  latencyNs: number
  /** When the request was made (performance.now() ms); now if omitted. */
  t?: number
}

export class TraceHub {
  readonly ring: TraceRing
  readonly stats = new TraceStats()
  readonly startedAt = performance.now()
  /** The requests outstanding now, where the platform can say (the simulation). */
  outstanding?: () => PublishedRequest[]
  /** Records readers lost because the ring overran them (summed over `trace.read`s). */
  dropped = 0
  // views of the ring's bytes: one typed store per field instead of DataView calls (the
  // trace layout is little-endian, as every platform ACRN runs on)
  private readonly f64: Float64Array
  private readonly u64: BigUint64Array
  private readonly u32: Uint32Array

  constructor(capacity = 1 << 18) {
    this.ring = new TraceRing(capacity)
    const buffer = this.ring.view.buffer
    this.f64 = new Float64Array(buffer)
    this.u64 = new BigUint64Array(buffer)
    this.u32 = new Uint32Array(buffer)
  }

  get published(): number {
    return this.ring.head
  }

  publish(r: PublishedRequest): void {
    const q = this.ring.reserve() >> 3 // in 8-byte units
    const w = q * 2
    let ns = Math.round(r.latencyNs)
    ns = ns > 0xffff_ffff ? 0xffff_ffff : ns > 0 ? ns : 0
    const word7 =
      ((r.vmid & 0xffff) |
        ((r.vcpu & 0xff) << 16) |
        (packFlags(r.type, r.write, r.client, r.size) << 24)) >>>
      0
    this.f64[q] = r.t ?? performance.now()
    this.u64[q + 1] = r.addr
    this.u64[q + 2] = r.value
    this.u32[w + 6] = ns
    this.u32[w + 7] = word7
    this.ring.commit()
    this.stats.add(this.u32[w + 2]!, this.u32[w + 3]!, word7, ns)
  }

  /**
   * A VM was destroyed: forget its rows in the live statistics, so that a VM given the
   * same vmid later starts from zero (the ring and recordings keep its records).
   */
  forgetVm(vmid: number): void {
    this.stats.forgetVm(vmid)
  }

  /**
   * The requests outstanding now as records (latency 0), or undefined where the platform
   * cannot say; `now` is the trace clock when they were taken.
   */
  outstandingRecords(): { records: Uint8Array; now: number } | undefined {
    if (!this.outstanding) return undefined
    const list = this.outstanding()
    const records = new Uint8Array(list.length * RECORD_SIZE)
    const view = new DataView(records.buffer)
    list.forEach((r, i) =>
      writeRecord(view, i * RECORD_SIZE, {
        ...r,
        t: r.t ?? performance.now(),
        latencyNs: 0,
        flags: packFlags(r.type, r.write, r.client, r.size),
      }),
    )
    return { records, now: performance.now() }
  }

  /** Raw records from a cursor (see TraceRing.read). */
  read(cursor: number, max?: number) {
    return this.ring.read(cursor, max)
  }
}

export { RECORD_SIZE }
