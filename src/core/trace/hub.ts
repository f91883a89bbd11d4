// The daemon's trace: every I/O request it sees goes into the ring (for the log view and
// recorders) and the live statistics (for the top view), both from the same 32-byte
// record, written in place with no allocation.

import { performance } from 'node:perf_hooks'
import { RECORD_SIZE, packFlags } from './record.js'
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

  constructor(capacity = 1 << 18) {
    this.ring = new TraceRing(capacity)
  }

  get published(): number {
    return this.ring.head
  }

  publish(r: PublishedRequest): void {
    const view = this.ring.view
    const at = this.ring.reserve()
    const ns = Math.min(0xffff_ffff, Math.max(0, Math.round(r.latencyNs)))
    const flags = packFlags(r.type, r.write, r.client, r.size)
    view.setFloat64(at, r.t ?? performance.now(), true)
    view.setBigUint64(at + 8, r.addr, true)
    view.setBigUint64(at + 16, r.value, true)
    view.setUint32(at + 24, ns, true)
    view.setUint16(at + 28, r.vmid, true)
    view.setUint8(at + 30, r.vcpu)
    view.setUint8(at + 31, flags)
    this.ring.commit()
    this.stats.add(
      view.getUint32(at + 8, true),
      view.getUint32(at + 12, true),
      view.getUint32(at + 28, true),
      ns,
    )
  }

  /** Raw records from a cursor (see TraceRing.read). */
  read(cursor: number, max?: number) {
    return this.ring.read(cursor, max)
  }
}

export { RECORD_SIZE }
