// hsmd's event bus: every change of state the daemon makes or sees (a VM created,
// started, paused, reset or destroyed, a device or eventfd added or removed, an acrn-dm
// appearing or going, the daemon itself starting and stopping) is one event, numbered in
// order. Listeners (`events.read` on the socket, metrics) subscribe; the last events are
// kept in a bounded ring so that `hsmctl events --since` can replay them. A plain typed
// emitter: no I/O here, so anything in the daemon may emit and anything may listen.

/** What an event is about. */
export const EVENT_TYPES = [
  'daemon',
  'vm',
  'ioreq-client',
  'vdev',
  'mmiodev',
  'ptdev',
  'ioeventfd',
  'irqfd',
  'acrn-dm',
] as const
export type EventType = (typeof EVENT_TYPES)[number]

/** Names `--type` also takes, each standing for several types. */
export const EVENT_TYPE_GROUPS: Readonly<Record<string, readonly EventType[]>> = {
  device: ['ioreq-client', 'vdev', 'mmiodev', 'ptdev'],
  eventfd: ['ioeventfd', 'irqfd'],
}

/** The actions of each type, for the documentation and the command's help. */
export const EVENT_ACTIONS: Readonly<Record<EventType, readonly string[]>> = {
  daemon: ['started', 'stopping', 'stopped'],
  vm: ['created', 'started', 'paused', 'reset', 'destroyed'],
  'ioreq-client': ['created', 'destroyed'],
  vdev: ['created', 'destroyed'],
  mmiodev: ['assigned', 'deassigned'],
  ptdev: ['assigned', 'deassigned'],
  ioeventfd: ['added', 'removed'],
  irqfd: ['added', 'removed'],
  'acrn-dm': ['appeared', 'gone'],
}

export type EventAttributes = Record<string, string | number | boolean>

/** One event as it travels (the `--json` line): a stable schema, version 1. */
export interface HsmEvent {
  /** 1, 2, 3...: in the order the daemon made the changes; goes on across restarts. */
  seq: number
  /** ISO 8601, UTC, milliseconds. */
  time: string
  type: EventType
  action: string
  /** The VM's name, or null for the daemon's own events. */
  vm: string | null
  /** The VM's id in the hypervisor, or null when it has none (or not yet). */
  vmid: number | null
  /** What else identifies the change: a device's slot, an eventfd's id and address... */
  attributes: EventAttributes
}

export type EventInput = Omit<HsmEvent, 'seq' | 'time' | 'vm' | 'vmid' | 'attributes'> & {
  vm?: string | null
  vmid?: number | null
  attributes?: EventAttributes
}

export type EventListener = (event: HsmEvent) => void

/** Events the ring keeps for `--since`; the oldest go first. */
export const EVENT_RING = 4096

export class EventBus {
  private readonly ring: HsmEvent[] = []
  private readonly listeners = new Set<EventListener>()
  private last: number

  constructor(options: { firstSeq?: number; capacity?: number } = {}) {
    this.last = (options.firstSeq ?? 1) - 1
    this.capacity = options.capacity ?? EVENT_RING
  }

  private readonly capacity: number

  /** The seq of the newest event (0: none yet). */
  get cursor(): number {
    return this.last
  }

  /** The seq of the oldest event still kept. */
  get oldest(): number {
    return this.ring[0]?.seq ?? this.last + 1
  }

  emit(input: EventInput, time = new Date()): HsmEvent {
    const event: HsmEvent = {
      seq: ++this.last,
      time: time.toISOString(),
      type: input.type,
      action: input.action,
      vm: input.vm ?? null,
      vmid: input.vmid ?? null,
      attributes: input.attributes ?? {},
    }
    this.keep(event)
    for (const listener of [...this.listeners]) {
      try {
        listener(event)
      } catch {
        // one listener's failure must not stop the change that emitted, nor the others
      }
    }
    return event
  }

  /** An event from before this daemon (the last one's stop), kept for `--since`. */
  remember(event: HsmEvent): void {
    if (event.seq > this.last) this.last = event.seq
    this.keep(event)
  }

  private keep(event: HsmEvent): void {
    this.ring.push(event)
    if (this.ring.length > this.capacity) this.ring.splice(0, this.ring.length - this.capacity)
  }

  on(listener: EventListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Kept events with seq > `after` (all kept, if `after` is older than the ring). */
  after(after: number): { events: HsmEvent[]; dropped: number } {
    const first = this.oldest
    const dropped = Math.max(0, first - after - 1)
    const start = this.ring.findIndex((e) => e.seq > after)
    return { events: start < 0 ? [] : this.ring.slice(start), dropped }
  }

  /** The seq just before the first kept event at or after `ms` (epoch ms). */
  cursorAt(ms: number): number {
    const first = this.ring.find((e) => Date.parse(e.time) >= ms)
    return first ? first.seq - 1 : this.last
  }
}

/** Which events a reader wants: by VM name and by type (groups already expanded). */
export interface EventFilter {
  vms?: readonly string[]
  types?: readonly EventType[]
}

export function eventMatches(event: HsmEvent, filter: EventFilter): boolean {
  if (filter.types?.length && !filter.types.includes(event.type)) return false
  // the daemon's own events concern every VM: a reader following one VM sees them too
  if (filter.vms?.length && event.vm !== null && !filter.vms.includes(event.vm)) return false
  if (filter.vms?.length && event.vm === null && event.type !== 'daemon') return false
  return true
}

/** A `--type` word: one type or a group, or undefined if it is neither. */
export function expandEventType(word: string): readonly EventType[] | undefined {
  if ((EVENT_TYPES as readonly string[]).includes(word)) return [word as EventType]
  return EVENT_TYPE_GROUPS[word]
}
