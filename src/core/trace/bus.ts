// The trace bus: every I/O request the daemon's default client handles is published here
// for the watch views (issue: live ioreq tracing). Subscribers run synchronously; a
// subscriber that throws is dropped rather than stalling the ioreq loop.

export type TraceType = 'pio' | 'mmio' | 'pcicfg'
export type TraceClient = 'default' | 'ioeventfd' | 'kernel'

export interface TraceEvent {
  /** Milliseconds since the daemon started (performance.now()). */
  t: number
  vm: string
  vmid: number
  vcpu: number
  type: TraceType
  dir: 'read' | 'write'
  /** Port or guest physical address; for PCICFG, bus<<16 | dev<<11 | func<<8 | reg. */
  addr: bigint
  size: number
  value: bigint
  client: TraceClient
  /** Time from the client seeing the request to its completion, in microseconds. */
  latencyUs: number
}

export type TraceSubscriber = (event: TraceEvent) => void

export class TraceBus {
  private readonly subscribers = new Set<TraceSubscriber>()
  /** Events published since the daemon started. */
  published = 0

  subscribe(fn: TraceSubscriber): () => void {
    this.subscribers.add(fn)
    return () => this.subscribers.delete(fn)
  }

  get subscriberCount(): number {
    return this.subscribers.size
  }

  publish(event: TraceEvent): void {
    this.published++
    for (const fn of this.subscribers) {
      try {
        fn(event)
      } catch {
        this.subscribers.delete(fn)
      }
    }
  }
}
