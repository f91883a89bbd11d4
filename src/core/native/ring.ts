// The server side of the shim's shared-memory ring (helper/hsm-ring.h, SHIM.md "The
// ring"). A shimmed process offers a ring (a sealed memfd) right after its HELLO; then its
// frames and ours cross in shared memory, and the unix socket carries only doorbell
// bytes. While calls keep coming the server polls the rings (a bounded spin in C between
// event-loop turns), so a call costs it no wake-up; when they stop it says so in each
// ring and sleeps until a doorbell.
//
// Node.js cannot map a shared file or poll memory, so the rings go through a Node-API
// addon, helper/build/hsm_ring.node (hsm-ring-addon.c), built with the helper. Without
// it the server refuses the offer (ENOSYS) and the shim keeps to its socket.

import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { ringAddonPath } from './preflight.js'
import { LearnedSpin, spinAllowed } from './spin.js'

/** An opaque handle of the addon (a Node-API external). */
export type RingHandle = { readonly __ring: unique symbol }

export interface RingAddon {
  open(path: string, size: number): RingHandle
  close(ring: RingHandle): void
  readInto(ring: RingHandle, into: Uint8Array): number
  write(ring: RingHandle, bytes: Uint8Array, offset: number): number
  peerIdle(ring: RingHandle): boolean
  /** After frames went in: 0 the shim polls, 1 a caller asleep on the ring was woken, 2 ring the socket. */
  wake(ring: RingHandle): number
  goIdle(ring: RingHandle): boolean
  busy(ring: RingHandle): void
  wait(rings: readonly RingHandle[], ns: number): number
  /** A ring file as the shim makes it (a sealed memfd): an fd of this process. */
  createRingFile(size: number): number
  readonly defaultSize: number
}

let addon: RingAddon | null | undefined
let addonError = 'disabled by HSMCTL_RING=0'

/** The addon, or undefined when it was not built or does not load (ringAddonError: why). */
export function ringAddon(): RingAddon | undefined {
  if (addon === undefined) {
    const path = ringAddonPath()
    addon = null
    if (process.env.HSMCTL_RING === '0') return undefined
    if (existsSync(path)) {
      try {
        addon = createRequire(import.meta.url)(path) as RingAddon
      } catch (e) {
        addonError = `${path} does not load: ${(e as Error).message}`
      }
    } else {
      addonError = `${path} is not built (make -C helper needs Node.js's node_api.h)`
    }
  }
  return addon ?? undefined
}

/** Why ringAddon() gave nothing. */
export function ringAddonError(): string {
  return addonError
}

/** What a server says at start-up about how shimmed programs will reach it. */
export function ringStatus(): string {
  return ringAddon()
    ? 'shimmed programs talk to it through a shared-memory ring'
    : `no shared-memory ring (${ringAddonError()}): shimmed programs use the socket alone`
}

/**
 * The longest the server polls after the last frame before it sleeps (HSMCTL_RING_SPIN_US);
 * within it, as long as frames have been coming (spin.ts).
 */
const SPIN_WINDOW_NS = (() => {
  const us = Number(process.env.HSMCTL_RING_SPIN_US ?? 50)
  return Number.isFinite(us) && us >= 0 ? us * 1000 : 50_000
})()

/** The longest single spin in C; the event loop gets a turn after one that found nothing. */
const WAIT_SLICE_NS = 10_000
/** While frames keep coming, the event loop still gets a turn this often. */
const TURN_NS = 100_000
/** Microtask turns given to the handlers of the frames just taken before polling again. */
const MICROTASK_HOPS = 8

/** RingAddon.wake(): the process needs its socket doorbell. */
const WAKE_DOORBELL = 2

/** Where input is copied out of the rings: reused, so the peer copies what it keeps. */
const inbox = new Uint8Array(1 << 20)

export interface RingPeer {
  /** Bytes the shimmed process sent: frames, possibly split; only valid during the call. */
  input(bytes: Uint8Array): void
  /** Wake the process's reader: one byte on the socket. */
  doorbell(): void
  /** The ring holds what the process could not have written: it is dropped. */
  broken(error: Error): void
  /** Every frame sent has gone into the ring: the backlog is empty again. */
  drained(): void
}

/** One shimmed process's ring, seen from the server. */
export class RingLink {
  private pending: Uint8Array[] = []
  private pendingAt = 0
  /** Bytes in `pending` not yet in the ring: replies the process has not made room for. */
  pendingBytes = 0
  /** Set by the session while it takes no more input (backpressure): the ring is not read. */
  holdInput = false
  closed = false

  constructor(
    private readonly addon: RingAddon,
    readonly handle: RingHandle,
    private readonly peer: RingPeer,
  ) {}

  /** Frames out, in order: what does not fit waits for the process to take some. */
  send(bytes: Uint8Array): void {
    if (this.closed) return
    if (this.pending.length) {
      this.pending.push(bytes)
      this.pendingBytes += bytes.byteLength
      poller.kick()
      return
    }
    let n: number
    try {
      n = this.addon.write(this.handle, bytes, 0)
    } catch (e) {
      this.fail(e instanceof Error ? e : new Error(String(e)))
      return
    }
    if (n > 0) this.ringLater()
    if (n < bytes.byteLength) {
      this.pending.push(bytes)
      this.pendingAt = n
      this.pendingBytes += bytes.byteLength - n
      poller.kick()
    }
  }

  /**
   * Ring the process's doorbell if it sleeps, once the frames being sent now are all in
   * (flushBells): a reply and the DIFF frames before it wake it once, and a socket write
   * costs the event loop more than a frame.
   */
  private ringLater(): void {
    bells.add(this)
    if (bellsScheduled) return
    bellsScheduled = true
    queueMicrotask(flushBells)
  }

  /**
   * flushBells: wake the process if it sleeps: a caller asleep for its reply on the ring's
   * bell word (a futex, in the addon), else its reader thread (the socket doorbell).
   */
  ringNow(): void {
    if (!this.closed && this.addon.wake(this.handle) === WAKE_DOORBELL) this.peer.doorbell()
  }

  get backlog(): boolean {
    return this.pending.length > 0
  }

  /** Take input and push out what waited. Whether anything moved. */
  service(): boolean {
    if (this.closed) return false
    let moved = false
    // held: the process has not taken its replies; its requests wait in the ring
    const n = this.holdInput ? 0 : this.addon.readInto(this.handle, inbox)
    if (n > 0) {
      moved = true
      this.peer.input(inbox.subarray(0, n))
    }
    let wrote = false
    while (this.pending.length && !this.closed) {
      const bytes = this.pending[0]!
      const n = this.addon.write(this.handle, bytes, this.pendingAt)
      if (n === 0) break
      wrote = true
      this.pendingAt += n
      this.pendingBytes -= n
      if (this.pendingAt < bytes.byteLength) break
      this.pending.shift()
      this.pendingAt = 0
    }
    if (wrote) {
      moved = true
      this.ringNow()
      if (this.pending.length === 0) this.peer.drained()
    }
    return moved
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.pending = []
    this.pendingBytes = 0
    poller.remove(this)
    this.addon.close(this.handle)
  }

  /** The ring is broken: close it and tell the session. */
  fail(error: Error): void {
    this.close()
    this.peer.broken(error)
  }
}

/** Links that were sent frames since the last flushBells. */
const bells = new Set<RingLink>()
let bellsScheduled = false

/** Ring the doorbells of the links sent frames since: after a batch, or before a spin. */
function flushBells(): void {
  bellsScheduled = false
  if (bells.size === 0) return
  for (const link of bells) link.ringNow()
  bells.clear()
}

/**
 * Polls every link of this process while frames keep coming: a turn takes what is there,
 * lets the event loop run the handlers (their replies go straight into the rings), and
 * comes back with setImmediate; with nothing there it spins in C for a slice. After the
 * spin window with nothing, every ring is told the server sleeps, and a doorbell wakes it.
 */
class RingPoller {
  private readonly links = new Set<RingLink>()
  private handles: RingHandle[] = []
  private polling = false
  private lastActive = 0
  /** How long after the last frame this thread spins for the next (spin.ts). */
  private readonly window = new LearnedSpin(SPIN_WINDOW_NS)
  private addon: RingAddon | undefined

  add(link: RingLink, addon: RingAddon): void {
    this.addon = addon
    this.links.add(link)
    this.handles = [...this.links].map((l) => l.handle)
    // Already polling: this ring's process need not ring either.
    if (this.polling) addon.busy(link.handle)
    this.kick()
  }

  remove(link: RingLink): void {
    if (!this.links.delete(link)) return
    this.handles = [...this.links].map((l) => l.handle)
  }

  /** Input may be waiting (a doorbell, or output backed up): poll. */
  kick(): void {
    const t = now()
    // Woken: how long the rings stayed quiet tells whether a longer spin would have paid.
    if (!this.polling) this.window.learn(t - this.lastActive)
    this.lastActive = t
    if (this.polling || this.links.size === 0) return
    this.polling = true
    for (const l of this.links) this.addon!.busy(l.handle)
    setImmediate(() => void this.poll())
  }

  private async poll(): Promise<void> {
    let turnStarted = now()
    for (;;) {
      if (this.links.size === 0) {
        this.polling = false
        return
      }
      let moved = false
      let backlog = false
      for (const l of this.links) {
        try {
          if (l.service()) moved = true
          if (l.backlog) backlog = true
        } catch (e) {
          // One process's broken ring ends its session, not the server.
          l.fail(e instanceof Error ? e : new Error(String(e)))
        }
      }
      // The replies just sent wake their processes before this thread spins or yields.
      flushBells()
      let t = now()
      if (backlog && !moved) {
        // The process has not made room yet (its doorbell was rung): wait a slice, or a
        // millisecond once it is slow (stopped, say), rather than spin on it.
        if (t - this.lastActive < this.window.maxNs) this.addon!.wait(this.handles, WAIT_SLICE_NS)
        else await new Promise<void>((resolve) => setTimeout(resolve, 1))
        t = now()
        turnStarted = -Infinity
      } else if (moved) {
        this.lastActive = t
        // Frames queued behind others are handled by promise chains: a few microtask
        // turns send their replies (an ioctl on its own was answered in service()).
        if (asyncWork > 0) {
          for (let hop = 0; hop < MICROTASK_HOPS && asyncWork > 0; hop++) await undefined
          t = now()
        }
      } else if (t - this.lastActive < this.window.ns && spinAllowed(t)) {
        const slice = Math.min(WAIT_SLICE_NS, this.lastActive + this.window.ns - t)
        const found = this.addon!.wait(this.handles, slice) >= 0
        t = now()
        if (found) {
          this.window.learn(t - this.lastActive)
          this.lastActive = t
        }
        // Quiet rings: the event loop may have other work (the helper's replies, say).
        else turnStarted = -Infinity
      } else if (this.sleep()) {
        return
      }
      if (t - turnStarted >= TURN_NS) {
        // Let the event loop run (sockets, timers) at least this often.
        await new Promise<void>((resolve) => setImmediate(resolve))
        turnStarted = now()
      }
    }
  }

  /** Tell every ring the server stops polling; false if input came meanwhile. */
  private sleep(): boolean {
    const addon = this.addon!
    for (const l of this.links) {
      if (!addon.goIdle(l.handle)) {
        for (const k of this.links) addon.busy(k.handle)
        this.lastActive = now()
        return false
      }
    }
    this.polling = false
    return true
  }
}

const poller = new RingPoller()

/** Frames being handled asynchronously by the sessions (noteAsync). */
let asyncWork = 0

/** A session starts (+1) or finishes (-1) handling queued frames. */
export function noteAsync(delta: number): void {
  asyncWork += delta
}

/** A doorbell rang: some process put frames in its ring. */
export function kickRings(): void {
  poller.kick()
}

/** Nanoseconds, as a double (no BigInt per turn). */
function now(): number {
  return performance.now() * 1e6
}

/** Map the ring file a shimmed process offered and start polling it. */
export function openRing(addon: RingAddon, path: string, size: number, peer: RingPeer): RingLink {
  const link = new RingLink(addon, addon.open(path, size), peer)
  poller.add(link, addon)
  return link
}
