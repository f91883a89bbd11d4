// The event stream on the daemon socket: `events.read` answers the events after a cursor
// at once, or, with `wait`, holds the answer until one comes (a long poll over the same
// request/response connection every command uses, so it goes wherever they go). The
// reader loops on `cursor`, as ioreq tail does on trace.read.

import type { Socket } from 'node:net'
import { UsageError } from '../errors.js'
import {
  EVENT_TYPES,
  eventMatches,
  type EventBus,
  type EventFilter,
  type EventType,
  type HsmEvent,
} from './events.js'
import type { Handler } from './server.js'

export interface EventsReply {
  events: HsmEvent[]
  /** Pass it back as `after`: the seq of the last event considered (matched or not). */
  cursor: number
  /** Events after `after` the ring no longer held. */
  dropped: number
  /** The daemon is stopping (its VMs are being destroyed). */
  stopping: boolean
  /** The daemon has stopped: these are the last events, the connection closes next. */
  stopped: boolean
}

/** Longest a read waits for an event; the reader asks again after it. */
export const MAX_WAIT_MS = 30_000

function list(value: unknown, param: string, check?: (s: string) => boolean): string[] {
  if (value === undefined) return []
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && (!check || check(v))))
    throw new UsageError(`param '${param}': expected a list of names`)
  return value as string[]
}

function number(value: unknown, param: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max)
    throw new UsageError(`param '${param}': expected a whole number 0..${max}`)
  return value
}

/** Longest hsmd waits, stopping, for its followers to read `daemon stopped` (a hang guard). */
export const DRAIN_MS = 5_000

/**
 * `events.read {after?, since?, wait?, vms?, types?}`: `after` a cursor (seq), or `since`
 * a time (epoch ms) to replay kept events from; neither: only the current cursor. A
 * connection that has read with `wait` is a follower: a stopping hsmd keeps its socket
 * open until each follower has been sent every event (`drained`).
 */
export class EventReaders {
  /** Followers and the seq they have been sent up to. */
  private readonly followers = new Map<Socket, number>()
  private readonly progress = new Set<() => void>()

  constructor(
    private readonly bus: EventBus,
    private readonly state: () => { stopping: boolean; stopped: boolean },
  ) {}

  methods(): Record<string, Handler> {
    return { 'events.read': (params, context) => this.read(params, context.connection) }
  }

  /** Resolves once every follower has been sent the last event or has gone, or after `ms`. */
  drained(ms = DRAIN_MS): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if ([...this.followers.values()].some((sent) => sent < this.bus.cursor)) return
        done()
      }
      const done = () => {
        clearTimeout(timer)
        this.progress.delete(check)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.progress.add(check)
      check()
    })
  }

  private async read(params: unknown, connection: Socket): Promise<EventsReply> {
    const p = (params ?? {}) as Record<string, unknown>
    const after = number(p.after, 'after')
    const since = number(p.since, 'since')
    const wait = number(p.wait, 'wait', MAX_WAIT_MS) ?? 0
    const filter: EventFilter = {
      vms: list(p.vms, 'vms'),
      types: list(p.types, 'types', (t) =>
        (EVENT_TYPES as readonly string[]).includes(t),
      ) as EventType[],
    }
    const { bus } = this
    const from = after ?? (since !== undefined ? bus.cursorAt(since) : undefined)
    if (from === undefined) return { events: [], cursor: bus.cursor, dropped: 0, ...this.state() }
    if (wait > 0) this.follow(connection, from)
    if (bus.cursor <= from && wait > 0) await nextEvent(bus, wait, connection)
    const { events, dropped } = bus.after(from)
    const reply: EventsReply = {
      events: events.filter((e) => eventMatches(e, filter)),
      cursor: events.at(-1)?.seq ?? Math.max(from, bus.cursor),
      dropped,
      ...this.state(),
    }
    if (this.followers.has(connection)) this.sent(connection, reply.cursor)
    return reply
  }

  private follow(connection: Socket, from: number): void {
    if (this.followers.has(connection)) return
    this.followers.set(connection, from)
    connection.once('close', () => {
      this.followers.delete(connection)
      this.tell()
    })
  }

  private sent(connection: Socket, cursor: number): void {
    this.followers.set(connection, cursor)
    this.tell()
  }

  private tell(): void {
    for (const check of [...this.progress]) check()
  }
}
/** Resolves at the next event, after `ms`, or when the reader's connection closes. */
function nextEvent(bus: EventBus, ms: number, connection: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      off()
      connection.off('close', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    const off = bus.on(done)
    connection.once('close', done)
  })
}
