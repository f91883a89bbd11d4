// A simulated platform served on a unix socket with the helper's frames (PROTOCOL.md),
// for the device shim (helper/SHIM.md): `hsmctl sim serve --socket PATH`, and hsmd with
// `daemon run --serve-sim PATH`. One connection is one Service-VM process (a SimProcess):
// closing it closes that process's fds, which releases their VMs (§1.5).
//
// A connection that starts with the helper's HELLO is a plain client: every op acts on
// its SimProcess as the helper's ops act on the helper (addresses are the SimProcess's).
// One that starts with the shim's HELLO stands for a real process under libhsm-shim.so:
// the addresses and fds inside its ioctl arguments are the real process's, so they are
// translated here: its RAM to the same file mapped into the SimProcess (SHARE: no copy),
// its ioreq and monitor pages to server-side mirrors, its eventfds to server-side twins.

import { unlink } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { Errno } from '../abi/errno.js'
import { Ioctl } from '../abi/ioctls.js'
import { HsmError } from '../errors.js'
import { checkSocketPath, userFileError } from '../user-file.js'
import type { IoctlArg } from '../hsm-process.js'
import { HSM_DEVICE } from '../sim/hsm/hsm.js'
import { EPOLLIN, type EventfdCtx, type EventfdWaiter } from '../sim/kernel/eventfd.js'
import { EventfdFile } from '../sim/kernel/file.js'
import type { SimProcess } from '../sim/kernel/process.js'
import { mapSharedFile } from '../sim/kernel/shared-memory.js'
import { type IoreqLane, LANE_SIZE } from '../sim/lane.js'
import type { SimPlatform } from '../sim/platform.js'
import {
  ArgKind,
  decodeEventfd,
  decodeEventfdWrite,
  decodeFd,
  decodeIoctl,
  decodeMmap,
  decodeMunmap,
  decodeOpen,
  decodeRead,
  decodeWrite,
  encodeFrame,
  encodeHello,
  encodeMessage,
  encodeU64,
  FLAG_REFUSED,
  type Frame,
  FrameDecoder,
  FrameError,
  HEADER_SIZE,
  MAX_PAYLOAD,
  Op,
  opName,
  VERSION,
} from './protocol.js'
import {
  decodeDiff,
  decodeFdDeclaration,
  decodeId,
  decodeIdValue,
  decodeMirror,
  decodeRingOffer,
  decodeLane,
  decodeShare,
  decodeShimHello,
  type DiffRange,
  encodeDiff,
  encodeIdValue,
  encodeSync,
  type FdDeclaration,
  ShimFdKind,
  ShimOp,
  ShimRole,
  ShimSize,
  SyncMode,
} from './shim-protocol.js'
import { listenPrivate } from './listen.js'
import { kickRings, noteAsync, openRing, type RingLink, ringAddon, ringAddonError } from './ring.js'

// Linux errno values the ABI table does not list (the helper protocol's own refusals).
const E2BIG = 7
const ENOSYS = 38
const EPROTO = 71
/** What the server writes on a shimmed process's socket to wake its reader (ring.ts). */
const DOORBELL = Buffer.of(1)
const PAGE = 4096n
const PAGE_MASK = 0xfffn
/** A mirrored region (an ioreq or monitor page) may be at most this large. */
const MAX_REGION = 1 << 30
/** How often the call logs of lanes are read for the ioctl log while calls keep coming. */
const LANE_CALLS_MS = 5
/** How long sync() waits for a shimmed process that does not answer (stopped, say). */
const SYNC_TIMEOUT_MS = 5000

/**
 * Reply bytes not yet taken by a process past which its requests wait, and it is not read
 * (issue 13 item 4): a client that sends READs and never reads the replies must not make
 * the server hold them all. Frames read and not yet handled are bounded the same way.
 */
export const MAX_UNSENT = 1 << 20
/** Replies of requests that carry the argument back (direction includes _IOC_READ). */
const readsBack = (request: number) => ((request >>> 30) & 2) !== 0

/** Ops that get no reply (SHIM.md): a shimmed process sends them and goes on. */
const NO_REPLY = new Set<number>([
  ShimOp.MIRROR,
  ShimOp.DIFF,
  ShimOp.FD,
  ShimOp.EFD_READ,
  ShimOp.EFD_RELEASE,
  ShimOp.INTERRUPT,
])

export interface SimServerOptions {
  /** The platform served; every connection spawns a process of it. */
  readonly platform: SimPlatform
  /** The device path HELLO reports (the shim's HSM_SHIM_DEVICE default). */
  readonly device?: string
  /** Told about bad input and lost clients, one line each. */
  readonly log?: (line: string) => void
  /** The flag that named the socket path (`--socket`, `--serve-sim`), for its errors. */
  readonly flag?: string
  /** Told about every ioctl a shimmed process made, once answered (`ioctl log`). */
  readonly onIoctl?: (call: ServedIoctl) => void
}

/** An ioctl a shimmed process made, as the simulation served it. */
export interface ServedIoctl {
  pid: number
  /** The server-side fd. */
  fd: number
  request: number
  /** ArgKind of the frame. */
  kind: number
  value: bigint
  /** The argument's bytes as the process passed them (what the shim could read). */
  before: Uint8Array | undefined
  /** For the read-back requests: the bytes after the call, in the process's terms. */
  after: Uint8Array | undefined
  result: number
  errno: number
  /** performance.now() when the frame was taken. */
  t: number
  durationNs: number
}

export interface SimSessionInfo {
  /** The client's pid (a shimmed process says it; plain clients: 0). */
  readonly pid: number
  /** Its program name (/proc/self/comm), '' for plain clients. */
  readonly program: string
  readonly shim: boolean
  /** VMs its HSM fds hold now. */
  readonly vmids: readonly number[]
  /** Reply bytes the process has not taken yet (on the socket, or in its ring's backlog). */
  readonly unsentBytes: number
  /** Bytes of frames read from it and not handled yet. */
  readonly queuedBytes: number
  /** False while the server has stopped reading it (backpressure). */
  readonly reading: boolean
  /** Requests handled so far. */
  readonly handled: number
}

interface Region {
  readonly id: number
  readonly role: number
  /** In the shimmed process. */
  readonly address: bigint
  readonly length: number
  /** Where the SimProcess has it: a mirror, or (RAM) the process's own file mapped. */
  readonly simAddress: bigint
  /** A mirror's live view, and the bytes both sides agreed on at the last exchange. */
  readonly mirror?: { readonly live: Uint8Array; readonly shadow: Uint8Array }
}

interface ServerEventfd {
  readonly simFd: number
  readonly ctx: EventfdCtx
  readonly waiter: EventfdWaiter
}

/** Byte ranges where `live` differs from `shadow`; the shadow is updated to match. */
export function diffRanges(live: Uint8Array, shadow: Uint8Array): DiffRange[] {
  const ranges: DiffRange[] = []
  const n = live.byteLength
  // Mostly nothing changed: one native compare (memcmp) says so before any loop.
  if (n === shadow.byteLength && Buffer.compare(live, shadow) === 0) return ranges
  const aligned = live.byteOffset % 4 === 0 && shadow.byteOffset % 4 === 0 && n % 4 === 0
  const a = aligned ? new Uint32Array(live.buffer, live.byteOffset, n >> 2) : undefined
  const b = aligned ? new Uint32Array(shadow.buffer, shadow.byteOffset, n >> 2) : undefined
  let i = 0
  while (i < n) {
    if (a && b && i % 4 === 0) {
      let w = i >> 2
      while (w < a.length && a[w] === b[w]) w++
      i = w << 2
      if (i >= n) break
    }
    if (live[i] === shadow[i]) {
      i++
      continue
    }
    let j = i + 1
    while (j < n && live[j] !== shadow[j]) j++
    const bytes = live.slice(i, j)
    shadow.set(bytes, i)
    ranges.push({ offset: i, bytes })
    i = j
  }
  return ranges
}

/** DIFF payloads for `ranges`, each within a frame. */
function diffPayloads(region: number, ranges: DiffRange[]): Uint8Array[] {
  const limit = MAX_PAYLOAD - ShimSize.DIFF_FIXED
  const out: Uint8Array[] = []
  let batch: DiffRange[] = []
  let size = 0
  const maxRange = limit - ShimSize.RANGE_HEADER
  const pieces: DiffRange[] = []
  for (const r of ranges) {
    for (let at = 0; at < r.bytes.byteLength; at += maxRange) {
      pieces.push({ offset: r.offset + at, bytes: r.bytes.subarray(at, at + maxRange) })
    }
  }
  for (const r of pieces) {
    const need = ShimSize.RANGE_HEADER + r.bytes.byteLength
    if (size + need > limit && batch.length) {
      out.push(encodeDiff(region, batch))
      batch = []
      size = 0
    }
    batch.push(r)
    size += need
  }
  if (batch.length) out.push(encodeDiff(region, batch))
  return out
}

class Session {
  readonly proc: SimProcess
  shim = false
  pid = 0
  program = ''
  closed = false
  private readonly regions = new Map<number, Region>()
  private readonly declared = new Map<number, FdDeclaration>()
  private readonly eventfds = new Map<bigint, ServerEventfd>()
  private readonly hsmFds = new Set<number>()
  private nullFd: number | undefined
  /** While the process's own eventfd write is applied: its wake-up is not echoed back. */
  private echo = 0
  private readonly queue: Frame[] = []
  private queuedBytes = 0
  private handled = 0
  private pumping = false
  private out: Uint8Array[] = []
  private outBytes = 0
  /** Resolved once the replies flow again (see MAX_UNSENT). */
  private drainWaiters: (() => void)[] = []
  private flushing = false
  private nextRequest = 1
  private readonly pendingSyncs = new Map<number, () => void>()
  private readonly decoder: FrameDecoder
  /** The shared-memory ring the process offered (ring.ts); the socket then only rings. */
  private link: RingLink | undefined
  /** Past HELLO (and the ring offer): a SYNC may go out from now on. */
  private settled = false
  /** Its lanes, by the fd they serve: told when the session ends, their calls read for onIoctl. */
  private readonly lanes: { fd: number; lane: IoreqLane }[] = []
  /** Reads the lanes' calls for onIoctl while calls keep coming. */
  private laneTimer: NodeJS.Timeout | undefined

  constructor(
    private readonly server: SimServer,
    private readonly socket: Socket,
  ) {
    this.proc = server.platform.spawn()
    this.decoder = new FrameDecoder({
      frame: (frame) => {
        // An ioctl with nothing before it runs at once: its reply goes out in this turn.
        if (
          frame.op === Op.IOCTL &&
          !this.pumping &&
          this.queue.length === 0 &&
          !this.congested()
        ) {
          this.ioctlNow(frame)
          return
        }
        this.queue.push(frame)
        this.queuedBytes += HEADER_SIZE + frame.payload.byteLength
        this.regulate()
        void this.pump()
      },
      garbage: (status) => {
        this.server.log(`client ${this.who()}: ${status}: bytes that are not a frame, skipped`)
        this.send({
          op: Op.PROTOCOL_ERROR,
          id: 0,
          flags: FLAG_REFUSED,
          result: -1n,
          errno: EPROTO,
          payload: encodeMessage(
            `${status === 'bad-magic' ? 'bad magic: not a frame header' : 'bad header check: corrupt frame header'}; skipping input to the next valid header`,
          ),
        })
      },
      oversize: (h) =>
        this.refuse(
          h.id,
          h.op,
          E2BIG,
          `frame payload of ${h.length} bytes is over the ${MAX_PAYLOAD}-byte limit`,
        ),
    })
    // With a ring, bytes on the socket are doorbells: the process put frames in it.
    socket.on('data', (chunk: Buffer) => (this.link ? kickRings() : this.decoder.push(chunk)))
    socket.on('drain', () => this.regulate())
    socket.on('error', () => {})
    socket.on('close', () => this.end())
  }

  who(): string {
    return this.shim ? `pid ${this.pid} (${this.program})` : 'plain'
  }

  info(): SimSessionInfo {
    const vmids: number[] = []
    for (const fd of this.hsmFds) {
      let vmid: number | null | undefined
      try {
        vmid = this.proc.hsmState(fd)?.vmid
      } catch {
        continue // an inspection that fails says nothing about who holds what
      }
      if (vmid !== null && vmid !== undefined) vmids.push(vmid)
    }
    return {
      pid: this.pid,
      program: this.program,
      shim: this.shim,
      vmids,
      unsentBytes: this.unsentBytes(),
      queuedBytes: this.queuedBytes,
      reading: this.link ? !this.link.holdInput : !this.socket.isPaused(),
      handled: this.handled,
    }
  }

  // --- backpressure (MAX_UNSENT) ------------------------------------------------------

  private unsentBytes(): number {
    return this.link ? this.link.pendingBytes : this.socket.writableLength + this.outBytes
  }

  private congested(): boolean {
    return this.unsentBytes() > MAX_UNSENT
  }

  /** Read the process while its replies flow and little waits; wake the pump when they flow. */
  private regulate(): void {
    if (this.closed) return
    const congested = this.congested()
    const hold = congested || this.queuedBytes > MAX_UNSENT
    if (this.link) {
      if (this.link.holdInput !== hold) {
        this.link.holdInput = hold
        if (!hold) kickRings()
      }
    } else if (hold !== this.socket.isPaused()) {
      if (hold) this.socket.pause()
      else this.socket.resume()
    }
    if (!congested && this.drainWaiters.length)
      for (const resolve of this.drainWaiters.splice(0)) resolve()
  }

  /** Until the process has taken enough of its replies (or is gone). */
  private drained(): Promise<void> {
    return new Promise((resolve) => {
      this.drainWaiters.push(resolve)
      this.regulate()
    })
  }

  /** The process is gone: its fds close, which releases its VMs (§1.5). */
  private end(): void {
    if (this.closed) return
    this.readLaneCalls()
    clearInterval(this.laneTimer)
    for (const { lane } of this.lanes) lane.disconnect()
    this.closed = true
    this.link?.close()
    for (const e of this.eventfds.values()) e.ctx.removeWaiter(e.waiter)
    this.eventfds.clear()
    void this.proc.exit()
    for (const resolve of this.pendingSyncs.values()) resolve()
    this.pendingSyncs.clear()
    for (const resolve of this.drainWaiters.splice(0)) resolve()
    this.server.forget(this)
  }

  close(): void {
    this.socket.destroy()
    this.end()
  }

  // --- output ----------------------------------------------------------------------

  private send(init: Parameters<typeof encodeFrame>[0]): void {
    if (this.closed) return
    if (this.link) {
      this.link.send(encodeFrame(init))
      return
    }
    const frame = encodeFrame(init)
    this.out.push(frame)
    this.outBytes += frame.byteLength
    if (!this.flushing) {
      this.flushing = true
      queueMicrotask(() => {
        this.flushing = false
        this.flushSocket()
      })
    }
  }

  private flushSocket(): void {
    const out = this.out
    this.out = []
    this.outBytes = 0
    if (!this.closed && out.length) {
      this.socket.write(out.length === 1 ? out[0]! : Buffer.concat(out))
      this.regulate()
    }
  }

  /** The process offered a ring: answer on the socket, then move every frame to the ring. */
  private acceptRing(frame: Frame): void {
    if (!this.shim || this.link || this.settled) {
      throw new FrameError(EPROTO, 'a ring offer comes right after the shim hello, once')
    }
    const offer = decodeRingOffer(frame.payload)
    const addon = ringAddon()
    if (!addon) {
      this.refuse(frame.id, frame.op, ENOSYS, `this server has no ring: ${ringAddonError()}`)
      return
    }
    let link: RingLink
    try {
      link = openRing(addon, offer.path, offer.size, {
        input: (bytes) => this.decoder.push(bytes, true),
        drained: () => this.regulate(),
        doorbell: () => {
          if (!this.closed) this.socket.write(DOORBELL)
        },
        broken: (error) => {
          this.server.log(`client ${this.who()}: ${error.message}; closing its connection`)
          this.close()
        },
      })
    } catch (e) {
      const errno = (e as { errno?: unknown }).errno
      this.refuse(
        frame.id,
        frame.op,
        typeof errno === 'number' ? errno : Errno.EIO,
        `ring ${offer.path}: ${(e as Error).message}`,
      )
      return
    }
    this.reply(frame, 0n)
    this.flushSocket()
    this.link = link
    this.settle()
  }

  /** Past the greeting: count the shimmed process by the transport it settled on. */
  private settle(): void {
    if (this.settled) return
    this.settled = true
    if (this.shim) this.server.shimTransports[this.link ? 'ring' : 'socket']++
  }

  private reply(frame: Frame, result: bigint, errno = 0, payload?: Uint8Array): void {
    this.send({
      op: frame.op,
      id: frame.id,
      result,
      errno,
      ...(payload ? { payload } : {}),
    })
  }

  private refuse(id: number, op: number, errno: number, message: string): void {
    this.send({ op, id, flags: FLAG_REFUSED, result: -1n, errno, payload: encodeMessage(message) })
  }

  /** DIFF frames for the mirrored bytes (ioreq, monitor pages) the simulation changed. */
  private sendDiffs(): void {
    for (const r of this.regions.values()) {
      if (!r.mirror) continue
      const ranges = diffRanges(r.mirror.live, r.mirror.shadow)
      if (ranges.length === 0) continue
      for (const payload of diffPayloads(r.id, ranges))
        this.send({ op: ShimOp.DIFF, id: 0, payload })
    }
  }

  /**
   * Bring the shimmed process and the simulation in step: its changed bytes come in,
   * ours go out, and its eventfd signals are applied, all before this resolves.
   */
  async sync(): Promise<void> {
    if (!this.shim || this.closed || !this.settled) return
    await this.request(SyncMode.PULL)
    if (this.closed) return
    this.sendDiffs()
    await this.request(SyncMode.ACK)
  }

  private request(mode: number): Promise<void> {
    const id = this.nextRequest++
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.pendingSyncs.delete(id)
        this.server.log(`client ${this.who()} did not answer SYNC in ${SYNC_TIMEOUT_MS} ms`)
        resolve()
      }, SYNC_TIMEOUT_MS)
      timer.unref()
      this.pendingSyncs.set(id, () => {
        clearTimeout(timer)
        resolve()
      })
      this.send({ op: ShimOp.SYNC, id, payload: encodeSync(mode) })
    })
  }

  // --- input -----------------------------------------------------------------------

  /** Frames run one after the other; a blocking ioctl is issued, not waited for. */
  private async pump(): Promise<void> {
    if (this.pumping) return
    this.pumping = true
    noteAsync(1)
    try {
      while (this.queue.length && !this.closed) {
        // the process takes its replies before more requests are handled
        if (this.congested()) {
          await this.drained()
          continue
        }
        const frame = this.queue.shift()!
        this.queuedBytes -= HEADER_SIZE + frame.payload.byteLength
        this.handled++
        this.regulate()
        try {
          await this.handle(frame)
        } catch (e) {
          if (e instanceof FrameError) this.refuse(frame.id, frame.op, e.errno, e.message)
          else this.refuse(frame.id, frame.op, Errno.EIO, `server error: ${String(e)}`)
        }
      }
    } finally {
      this.pumping = false
      noteAsync(-1)
    }
  }

  private ioctlNow(frame: Frame): void {
    if (this.closed) return
    this.handled++
    try {
      if (!this.wellFormed(frame)) return
      this.settle()
      this.ioctl(frame)
    } catch (e) {
      if (e instanceof FrameError) this.refuse(frame.id, frame.op, e.errno, e.message)
      else this.refuse(frame.id, frame.op, Errno.EIO, `server error: ${String(e)}`)
    }
  }

  /** The header checks every request passes; false when it was refused. */
  private wellFormed(frame: Frame): boolean {
    if (frame.version !== VERSION) {
      this.refuse(
        frame.id,
        frame.op,
        EPROTO,
        `protocol version ${frame.version}; this server speaks ${VERSION}`,
      )
      return false
    }
    if (
      frame.flags !== 0 ||
      frame.result !== 0n ||
      frame.errno !== 0 ||
      (frame.id === 0 && !NO_REPLY.has(frame.op))
    ) {
      this.refuse(
        frame.id,
        frame.op,
        EPROTO,
        'a request has a non-zero id and zero flags, result and errno',
      )
      return false
    }
    return true
  }

  private async handle(frame: Frame): Promise<void> {
    if (frame.op === ShimOp.SYNC && this.shim && frame.version === VERSION) {
      // The shimmed process answering our SYNC (after its DIFF frames).
      this.pendingSyncs.get(frame.id)?.()
      this.pendingSyncs.delete(frame.id)
      return
    }
    if (!this.wellFormed(frame)) return
    const p = frame.payload
    if (frame.op !== ShimOp.HELLO && frame.op !== ShimOp.RING) this.settle()
    switch (frame.op) {
      case ShimOp.RING:
        this.acceptRing(frame)
        return
      case Op.HELLO:
        if (p.byteLength !== 0) throw new FrameError(Errno.EINVAL, 'hello payload must be empty')
        this.reply(frame, 0n, 0, this.server.hello())
        return
      case ShimOp.HELLO: {
        const hello = decodeShimHello(p)
        this.shim = true
        this.pid = hello.pid
        this.program = hello.program
        this.reply(frame, 0n, 0, this.server.hello())
        return
      }
      case Op.OPEN: {
        const path = decodeOpen(p)
        // A shimmed process opened its HSM_SHIM_DEVICE, whatever it is called: the device.
        const fd = await this.syscall(frame, () => this.proc.open(this.shim ? HSM_DEVICE : path))
        if (fd !== undefined && (this.shim || path === HSM_DEVICE)) this.hsmFds.add(fd)
        if (fd !== undefined) this.reply(frame, BigInt(fd))
        return
      }
      case Op.CLOSE: {
        const fd = decodeFd('close', p)
        const ok = await this.syscall(frame, () => this.proc.close(fd).then(() => true))
        this.hsmFds.delete(fd)
        if (ok !== undefined) this.reply(frame, 0n)
        return
      }
      case Op.IOCTL:
        this.ioctl(frame)
        return
      case Op.MMAP: {
        const length = decodeMmap(p)
        if (length === 0n || length > BigInt(Number.MAX_SAFE_INTEGER)) {
          throw new FrameError(Errno.EINVAL, `mmap: length ${length} is not a usable size`)
        }
        const at = await this.syscall(frame, () => this.proc.mmap(Number(length)))
        if (at !== undefined) this.reply(frame, at)
        return
      }
      case Op.MUNMAP: {
        const { address, length } = decodeMunmap(p)
        if (length > BigInt(Number.MAX_SAFE_INTEGER)) {
          throw new FrameError(Errno.EINVAL, `munmap: length ${length} is not a usable size`)
        }
        const ok = await this.syscall(frame, () =>
          this.proc.munmap(address, Number(length)).then(() => true),
        )
        if (ok !== undefined) this.reply(frame, 0n)
        return
      }
      case Op.READ: {
        const { address, length } = decodeRead(p)
        if (length > MAX_PAYLOAD)
          throw new FrameError(E2BIG, `read: ${length} bytes is more than a frame carries`)
        const bytes = await this.syscall(frame, () => this.proc.read(address, length))
        if (bytes !== undefined) this.reply(frame, 0n, 0, bytes)
        return
      }
      case Op.WRITE: {
        const { address, bytes } = decodeWrite(p)
        const ok = await this.syscall(frame, () => this.proc.write(address, bytes).then(() => true))
        if (ok !== undefined) this.reply(frame, 0n)
        return
      }
      case Op.EVENTFD: {
        const initval = decodeEventfd(p)
        const fd = await this.syscall(frame, () => this.proc.eventfd(initval))
        if (fd !== undefined) this.reply(frame, BigInt(fd))
        return
      }
      case Op.EVENTFD_READ: {
        const fd = decodeFd('eventfd_read', p)
        const value = await this.syscall(frame, () => this.proc.eventfdRead(fd))
        if (value !== undefined) this.reply(frame, 0n, 0, encodeU64(value))
        return
      }
      case Op.EVENTFD_WRITE: {
        const { fd, value } = decodeEventfdWrite(p)
        const ok = await this.syscall(frame, () =>
          this.proc.eventfdWrite(fd, value).then(() => true),
        )
        if (ok !== undefined) this.reply(frame, 0n)
        return
      }
      default:
        if (this.shim) {
          await this.shimOp(frame)
          return
        }
        this.refuse(
          frame.id,
          frame.op,
          Errno.ENOSYS,
          `unknown op ${frame.op} (${opName(frame.op)})`,
        )
    }
  }

  /** Run a call; a failure is replied (and undefined returned) here. */
  private async syscall<T>(frame: Frame, run: () => Promise<T>): Promise<T | undefined> {
    try {
      return await run()
    } catch (e) {
      if (e instanceof HsmError) this.reply(frame, -1n, e.errno)
      else this.refuse(frame.id, frame.op, Errno.EINVAL, e instanceof Error ? e.message : String(e))
      return undefined
    }
  }

  private async shimOp(frame: Frame): Promise<void> {
    const p = frame.payload
    switch (frame.op) {
      case ShimOp.MIRROR:
        await this.mirror(frame)
        return
      case ShimOp.SHARE:
        await this.share(frame)
        return
      case ShimOp.LANE:
        this.lane(frame)
        return
      case ShimOp.DIFF: {
        const { region, ranges } = decodeDiff(p)
        const r = this.regions.get(region)?.mirror
        if (!r) throw new FrameError(Errno.EINVAL, `diff: no mirrored region ${region}`)
        for (const { offset, bytes } of ranges) {
          if (offset + bytes.byteLength > r.live.byteLength)
            throw new FrameError(Errno.EINVAL, `diff: range past region ${region}`)
          r.live.set(bytes, offset)
          r.shadow.set(bytes, offset)
        }
        return
      }
      case ShimOp.FD:
        await this.declareFd(decodeFdDeclaration(p))
        return
      case ShimOp.EFD_WRITE: {
        const { id, value } = decodeIdValue('efd_write', p)
        const e = this.eventfds.get(id)
        if (e) {
          // The wake-up runs in the writer's context (§6.3): irqfds inject right here.
          this.echo++
          const done = this.proc.eventfdWrite(e.simFd, value)
          this.echo--
          await done.catch(() => {})
        }
        this.reply(frame, 0n)
        return
      }
      case ShimOp.EFD_READ: {
        const e = this.eventfds.get(decodeId('efd_read', p))
        if (e) await this.proc.eventfdRead(e.simFd).catch(() => 0n)
        return
      }
      case ShimOp.EFD_RELEASE: {
        const id = decodeId('efd_release', p)
        const e = this.eventfds.get(id)
        if (e) {
          this.eventfds.delete(id)
          e.ctx.removeWaiter(e.waiter)
          // Its last fd: the eventfd is released, and an irqfd on it goes (§6.4).
          await this.proc.close(e.simFd).catch(() => {})
        }
        return
      }
      case ShimOp.INTERRUPT:
        if (p.byteLength !== 0)
          throw new FrameError(Errno.EINVAL, 'interrupt payload must be empty')
        this.proc.interrupt()
        return
      default:
        this.refuse(
          frame.id,
          frame.op,
          Errno.ENOSYS,
          `unknown op ${frame.op} (${opName(frame.op)})`,
        )
    }
  }

  private async mirror(frame: Frame): Promise<void> {
    const m = decodeMirror(frame.payload)
    if (m.role < ShimRole.IOREQ || m.role > ShimRole.MONITOR)
      throw new FrameError(Errno.EINVAL, `mirror: unknown role ${m.role}`)
    if (m.role === ShimRole.RAM)
      throw new FrameError(Errno.EINVAL, 'mirror: RAM is shared (the share op), not mirrored')
    if (
      (m.address & PAGE_MASK) !== 0n ||
      m.length === 0n ||
      m.length % PAGE !== 0n ||
      m.length > BigInt(MAX_REGION)
    ) {
      throw new FrameError(
        Errno.EINVAL,
        `mirror: ${m.length} bytes at 0x${m.address.toString(16)} is not a page range`,
      )
    }
    if (this.regions.has(m.region))
      throw new FrameError(Errno.EINVAL, `mirror: region ${m.region} exists`)
    const length = Number(m.length)
    // Fresh zeroed pages, as the shim's shadow starts zeroed: the process's bytes follow.
    const simAddress = await this.proc.mmap(length)
    this.regions.set(m.region, {
      id: m.region,
      role: m.role,
      address: m.address,
      length,
      simAddress,
      mirror: { live: this.proc.view(simAddress, length), shadow: new Uint8Array(length) },
    })
  }

  /**
   * A RAM range the process maps MAP_SHARED from a file of its own: the same file is
   * mapped into the SimProcess, so the pages SET_MEMSEG pins are the process's pages (§3.4
   * B) and the guest, hsmd and the process share them with no copy.
   */
  private async share(frame: Frame): Promise<void> {
    const s = decodeShare(frame.payload)
    // RAM (§3.4 B), and the ioreq and monitor pages (§2.2, §7.3): all pinned by the kernel.
    if (s.role < ShimRole.IOREQ || s.role > ShimRole.MONITOR)
      throw new FrameError(Errno.EINVAL, `share: unknown role ${s.role}`)
    if (s.role !== ShimRole.RAM && s.length > BigInt(MAX_REGION))
      throw new FrameError(Errno.EINVAL, `share: ${s.length} bytes is too large for a page`)
    const ps = BigInt(s.pageSize)
    if (
      (s.address & PAGE_MASK) !== 0n ||
      (s.offset & PAGE_MASK) !== 0n ||
      s.length === 0n ||
      s.length % PAGE !== 0n ||
      s.offset + s.length > BigInt(Number.MAX_SAFE_INTEGER)
    ) {
      throw new FrameError(
        Errno.EINVAL,
        `share: ${s.length} bytes at 0x${s.address.toString(16)} (file offset ${s.offset}) is not a page range`,
      )
    }
    if (s.pageSize < Number(PAGE) || s.pageSize > 1 << 30 || (ps & (ps - 1n)) !== 0n)
      throw new FrameError(Errno.EINVAL, `share: page size ${s.pageSize} is not a power of two`)
    this.ownFile('share', s.path)
    if (this.regions.has(s.region))
      throw new FrameError(Errno.EINVAL, `share: region ${s.region} exists`)
    // A hugetlbfs file maps in whole huge pages: map those around the range.
    const from = s.offset - (s.offset % ps)
    const to = ((s.offset + s.length + ps - 1n) / ps) * ps
    const base = await this.syscall(frame, () =>
      this.proc.mmapFile(s.path, Number(from), Number(to - from)),
    )
    if (base === undefined) return
    this.regions.set(s.region, {
      id: s.region,
      role: s.role,
      address: s.address,
      length: Number(s.length),
      simAddress: base + (s.offset - from),
    })
    this.reply(frame, 0n)
  }

  /** Only a file the process itself holds (/proc/PID/fd/N): it may not have hsmd map any other. */
  private ownFile(what: string, path: string): void {
    if (!new RegExp(`^/proc/${this.pid}/fd/\\d+$`).test(path))
      throw new FrameError(Errno.EINVAL, `${what}: ${path} is not a file of pid ${this.pid}`)
  }

  /**
   * A lane page the process offers for the VM of one of its HSM fds (src/core/sim/lane.ts):
   * mapped here, and its VM's port I/O goes to the process through it. Refused with the
   * errno of why not; the process then keeps every call on the ring.
   */
  private lane(frame: Frame): void {
    const l = decodeLane(frame.payload)
    this.ownFile('lane', l.path)
    if (!this.hsmFds.has(l.fd)) throw new FrameError(Errno.EBADF, `lane: ${l.fd} is not an HSM fd`)
    let bytes: Uint8Array
    try {
      bytes = new Uint8Array(mapSharedFile(l.path, 0, LANE_SIZE, true, { sealed: true }).buffer)
    } catch (e) {
      const errno = (e as { errno?: number }).errno
      throw new FrameError(errno ?? Errno.EINVAL, `lane: ${(e as Error).message}`)
    }
    const lane = this.proc.attachLane(l.fd, bytes)
    if (typeof lane === 'number') {
      this.reply(frame, -1n, -lane)
      return
    }
    this.lanes.push({ fd: l.fd, lane })
    // The ioctl log sees the calls the lane answers too: read before each ioctl of the
    // process (so they come in order) and every LANE_CALLS_MS meanwhile.
    if (this.server.onIoctl) {
      lane.logCalls()
      this.laneTimer ??= setInterval(() => this.readLaneCalls(), LANE_CALLS_MS).unref()
    }
    this.reply(frame, 0n)
  }

  /** The calls the lanes answered since the last read, to onIoctl. */
  private readLaneCalls(): void {
    const observe = this.server.onIoctl
    if (!observe) return
    for (const { fd, lane } of this.lanes) {
      lane.readCalls((call) =>
        observe({
          pid: this.pid,
          fd,
          request: call.request,
          kind: call.request === Ioctl.NOTIFY_REQUEST_FINISH ? ArgKind.BUFFER : ArgKind.NONE,
          value: 0n,
          before: call.request === Ioctl.NOTIFY_REQUEST_FINISH ? call.arg : undefined,
          after: undefined,
          result: call.result,
          errno: call.errno,
          t: call.t,
          durationNs: call.durationNs,
        }),
      )
    }
  }

  private async declareFd(d: FdDeclaration): Promise<void> {
    this.declared.set(d.fd, d)
    if (d.kind === ShimFdKind.OTHER && this.nullFd === undefined) {
      this.nullFd = await this.proc.open('/dev/null')
    }
    if (d.kind !== ShimFdKind.EVENTFD || this.eventfds.has(d.id)) return
    const simFd = await this.proc.eventfd(0)
    // The count it has now: an irqfd on an already signalled eventfd injects at once (§6.2).
    if (d.count > 0n) await this.proc.eventfdWrite(simFd, d.count).catch(() => {})
    const file = this.proc.file(simFd)
    if (!(file instanceof EventfdFile)) return
    const id = d.id
    // An ioeventfd signal (§5.5) reaches the process's real eventfd.
    const waiter: EventfdWaiter = {
      wake: (_ctx, flags) => {
        if (flags & EPOLLIN && this.echo === 0) {
          this.send({ op: ShimOp.SIGNAL, id: 0, payload: encodeIdValue(id, 1n) })
        }
      },
    }
    file.ctx.addWaiter(waiter)
    this.eventfds.set(id, { simFd, ctx: file.ctx, waiter })
  }

  /** The server-side fd for an fd of the shimmed process named in an argument. */
  private translateFd(fd: number, own: number): number {
    const d = this.declared.get(fd)
    if (d?.kind === ShimFdKind.EVENTFD) return this.eventfds.get(d.id)?.simFd ?? this.closedFd(fd)
    if (d?.kind === ShimFdKind.HSM && this.hsmFds.has(Number(d.id))) return Number(d.id)
    if (d?.kind === ShimFdKind.OTHER) return this.nullFd ?? own
    return this.closedFd(fd)
  }

  /** An fd number that is not open here, for one that is not open there (EBADF). */
  private closedFd(fd: number): number {
    if (fd < 0 || this.proc.file(fd) === undefined) return fd
    for (let n = 0x7fff_0000; ; n++) if (this.proc.file(n) === undefined) return n
  }

  /** A process address in an argument, as the SimProcess's address of the same bytes. */
  private translate(role: number, address: bigint, length: bigint): bigint {
    const page = address & ~PAGE_MASK
    // The latest declaration wins: a page mirrored once may be shared since (its file new).
    let found: Region | undefined
    for (const r of this.regions.values()) {
      if (r.role === role && page >= r.address && page + length <= r.address + BigInt(r.length))
        found = r
    }
    if (found) return found.simAddress + (address - found.address)
    // Not declared (the shim found it unmapped): an address the simulation has not mapped
    // either, so its pin fails where the kernel's would.
    return address & PAGE_MASK
  }

  private ioctl(frame: Frame): void {
    if (this.lanes.length) this.readLaneCalls()
    const req = decodeIoctl(frame.payload)
    const request = req.request >>> 0
    const observe = this.shim ? this.server.onIoctl : undefined
    // the process's own bytes: the translation below rewrites addresses and fds in place
    const before = observe && req.kind === ArgKind.BUFFER ? req.bytes.slice() : undefined
    const started = observe ? performance.now() : 0
    let arg: IoctlArg
    let restore: (() => void) | undefined
    switch (req.kind) {
      case ArgKind.NONE:
        arg = undefined
        break
      case ArgKind.VALUE:
        arg = req.value
        if (this.shim && request === Ioctl.VM_INTR_MONITOR)
          arg = this.translate(ShimRole.MONITOR, req.value, PAGE)
        break
      case ArgKind.BUFFER:
        arg = req.bytes
        if (this.shim) restore = this.translateBuffer(request, req.bytes, req.fd)
        break
      default:
        arg = req.value // POINTER: an address in this SimProcess (plain clients)
    }
    const done = (result: bigint, errno: number) => {
      restore?.()
      if (this.shim) this.sendDiffs()
      const back = req.kind === ArgKind.BUFFER && readsBack(request) ? req.bytes : undefined
      observe?.({
        pid: this.pid,
        fd: req.fd,
        request,
        kind: req.kind,
        value: req.value,
        before,
        after: back,
        result: Number(result),
        errno,
        t: started,
        durationNs: (performance.now() - started) * 1e6,
      })
      this.reply(frame, result, errno, back)
    }
    const failed = (e: unknown) => {
      if (e instanceof HsmError) done(-1n, e.errno)
      else {
        restore?.()
        this.refuse(frame.id, frame.op, Errno.EINVAL, e instanceof Error ? e.message : String(e))
      }
    }
    // Answered at once unless the call blocks: a shimmed call waits for nothing else.
    let ret: number | Promise<number>
    try {
      ret = this.proc.ioctlReturn(req.fd, request, arg)
    } catch (e) {
      failed(e)
      return
    }
    if (typeof ret === 'number') done(ret < 0 ? -1n : BigInt(ret), ret < 0 ? -ret : 0)
    else ret.then((r) => done(r < 0 ? -1n : BigInt(r), r < 0 ? -r : 0), failed)
  }

  /** Rewrite the process's addresses and fds inside a struct argument; undo for read-back. */
  private translateBuffer(
    request: number,
    bytes: Uint8Array,
    own: number,
  ): (() => void) | undefined {
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    if (request === Ioctl.CREATE_VM && bytes.byteLength >= 48) {
      // ioreq_buf (§2.2): the kernel writes the struct back with the user's own value.
      const original = v.getBigUint64(32, true)
      v.setBigUint64(32, this.translate(ShimRole.IOREQ, original, PAGE), true)
      return () => v.setBigUint64(32, original, true)
    }
    if (request === Ioctl.SET_MEMSEG && bytes.byteLength >= 32 && v.getUint32(0, true) === 0) {
      const pages = v.getBigUint64(24, true) >> 12n
      if (pages > 0n)
        v.setBigUint64(
          16,
          this.translate(ShimRole.RAM, v.getBigUint64(16, true), pages * PAGE),
          true,
        )
      return undefined
    }
    if ((request === Ioctl.IOEVENTFD || request === Ioctl.IRQFD) && bytes.byteLength >= 4) {
      v.setInt32(0, this.translateFd(v.getInt32(0, true), own), true)
    }
    return undefined
  }

  /** The SimProcess address of `address` of the shimmed process (mirrored or shared), if any. */
  mirrorOf(address: bigint): bigint | undefined {
    let found: Region | undefined
    for (const r of this.regions.values())
      if (address >= r.address && address < r.address + BigInt(r.length)) found = r
    return found && found.simAddress + (address - found.address)
  }
}

/** Serves one simulated platform on a unix socket; see the file comment. */
export class SimServer {
  private readonly sessionSet = new Set<Session>()
  /** Shimmed processes served so far, by transport: the ring, or the socket alone. */
  readonly shimTransports = { ring: 0, socket: 0 }

  private constructor(
    readonly platform: SimPlatform,
    readonly path: string,
    private readonly net: Server,
    private readonly options: SimServerOptions,
  ) {}

  /**
   * Listen on `path` (mode 0600). A stale socket file (nobody listening) is replaced; a
   * live one is a ConflictError.
   */
  static async listen(path: string, options: SimServerOptions): Promise<SimServer> {
    // the callback runs only once listening, when `server` is set
    const flag = options.flag ?? 'the socket path'
    const named = { ...(options.flag ? { flag: options.flag } : {}) }
    checkSocketPath(path, named)
    const net = createServer((socket) => server.accept(socket))
    const server = new SimServer(options.platform, path, net, options)
    try {
      await listenPrivate(net, path, {
        notSocket: `pick another ${flag}`,
        inUse: `stop it, or pick another ${flag}`,
      })
    } catch (e) {
      throw userFileError(e, path, 'write', named)
    }
    return server
  }

  /** @internal */
  log(line: string): void {
    this.options.log?.(line)
  }

  /** @internal */
  get onIoctl(): ((call: ServedIoctl) => void) | undefined {
    return this.options.onIoctl
  }

  /** @internal */
  hello(): Uint8Array {
    return encodeHello({
      maxPayload: MAX_PAYLOAD,
      pid: process.pid,
      features: 0,
      device: this.options.device ?? HSM_DEVICE,
    })
  }

  private accept(socket: Socket): void {
    this.sessionSet.add(new Session(this, socket))
  }

  /** @internal */
  forget(session: Session): void {
    this.sessionSet.delete(session)
  }

  /** The connected clients and the VMs they hold. */
  sessions(): SimSessionInfo[] {
    return [...this.sessionSet].map((s) => s.info())
  }

  /**
   * Exchange the mirrored pages (ioreq, monitor) and pending eventfd signals with every
   * shimmed process: when this resolves, each sees what the simulation wrote there and the
   * simulation sees what each wrote. (Between syncs they are exchanged at every call; RAM
   * is shared, so it needs no exchange.)
   */
  async sync(): Promise<void> {
    await Promise.all([...this.sessionSet].map((s) => s.sync()))
  }

  /** /proc/self/pagemap of a shimmed process, as the simulation sees it: its page there. */
  async pagemap(pid: number, address: bigint): Promise<bigint> {
    for (const s of this.sessionSet) {
      if (!s.shim || s.pid !== pid) continue
      const at = s.mirrorOf(address)
      if (at !== undefined) return s.proc.pagemap(at)
    }
    throw new HsmError('pagemap', Errno.EFAULT)
  }

  /** Stop listening and end every connection (their fds close, §1.5). */
  async close(): Promise<void> {
    for (const s of [...this.sessionSet]) s.close()
    await new Promise<void>((resolve) => this.net.close(() => resolve()))
    await unlink(this.path).catch(() => {})
  }
}

/** `hsmctl sim serve`: a fresh simulated platform (default host) served on `path`. */
export async function serveSimPlatform(
  path: string,
  options: Omit<SimServerOptions, 'platform'> & { platform?: SimPlatform } = {},
): Promise<SimServer> {
  const { createSimPlatform } = await import('../sim/platform.js')
  return SimServer.listen(path, { ...options, platform: options.platform ?? createSimPlatform() })
}
