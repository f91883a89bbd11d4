// The native HsmProcess: every call is one frame to hsm-helper (helper/PROTOCOL.md),
// which issues the real syscall on /dev/acrn_hsm. Calls are pipelined, each with an id,
// and settle in whatever order the replies come back (a blocked ATTACH_IOREQ_CLIENT does
// not hold up the calls behind it). A failed syscall rejects with HsmError, named the
// way SimProcess names it, so callers cannot tell the backends apart by their errors.

import { execa } from 'execa'
import { Errno } from '../abi/errno.js'
import { formatRequest, ioctlByRequest } from '../abi/ioctls.js'
import { DaemonUnreachableError, HsmError } from '../errors.js'
import type { HsmProcess, IoctlArg } from '../hsm-process.js'
import { DEFAULT_DEVICE, helperPath, missingDeviceHint, preflight } from './preflight.js'
import {
  ArgKind,
  type ArgKindCode,
  decodeHello,
  decodeMessage,
  decodeU64,
  encodeEventfd,
  encodeEventfdWrite,
  encodeFd,
  encodeFrame,
  encodeIoctl,
  encodeMmap,
  encodeMunmap,
  encodeOpen,
  encodeRead,
  encodeWrite,
  FLAG_REFUSED,
  type Frame,
  FrameDecoder,
  type Hello,
  MAX_PAYLOAD,
  Op,
  opName,
  PayloadSize,
  VERSION,
} from './protocol.js'

export interface NativeProcessOptions {
  /** The HSM device node the helper may open (its --device); default /dev/acrn_hsm. */
  readonly device?: string
  /** The helper binary; default helperPath(). */
  readonly helper?: string
  /**
   * Check the device node before starting (default true). Off for a device that is not
   * a real node (tests; the device shim).
   */
  readonly checkDevice?: boolean
  /**
   * Extra environment for the helper, e.g. LD_PRELOAD of the device shim and its
   * HSM_SHIM_SOCKET (helper/SHIM.md).
   */
  readonly env?: Readonly<Record<string, string>>
}

const U64_MAX = 0xffff_ffff_ffff_ffffn
const E2BIG = 7
// Bytes of stderr kept for the error shown when the helper dies.
const STDERR_TAIL = 4096

interface Pending {
  resolve(frame: Frame): void
  reject(error: Error): void
}

/** The reply to one call, before errno mapping. */
export type Reply = Frame

function toBytes(chunk: unknown): Uint8Array {
  return chunk instanceof Uint8Array ? chunk : new TextEncoder().encode(String(chunk))
}

function spawnHelper(helper: string, device: string, env?: Readonly<Record<string, string>>) {
  return execa(helper, ['--device', device], {
    ...(env ? { env } : {}),
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: false,
    reject: false,
  })
}

type HelperChild = ReturnType<typeof spawnHelper>

/** The HsmError for a failed reply: the helper's refusal message becomes its detail. */
function replyError(request: string, reply: Reply, hint?: string): HsmError {
  const refused = (reply.flags & FLAG_REFUSED) !== 0
  return new HsmError(
    request,
    reply.errno,
    hint,
    refused ? `refused by hsm-helper: ${decodeMessage(reply.payload)}` : undefined,
  )
}

export class NativeProcess implements HsmProcess {
  private helloInfo: Hello
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private outQueue: Uint8Array[] = []
  private flushScheduled = false
  private dead: Error | undefined
  private stderrTail = ''
  private readonly exited: Promise<number | undefined>

  private constructor(
    private readonly child: HelperChild,
    readonly device: string,
    readonly helper: string,
  ) {
    this.helloInfo = { maxPayload: MAX_PAYLOAD, pid: child.pid ?? 0, features: 0, device }
    const decoder = new FrameDecoder({
      frame: (frame) => this.onFrame(frame),
      garbage: () =>
        this.fail(new DaemonUnreachableError('hsm-helper sent bytes that are not a frame')),
      oversize: (h) =>
        this.fail(new DaemonUnreachableError(`hsm-helper sent an oversized ${opName(h.op)} reply`)),
    })
    child.stdout.on('data', (chunk: unknown) => decoder.push(toBytes(chunk)))
    child.stderr.on('data', (chunk: unknown) => {
      this.stderrTail = (this.stderrTail + Buffer.from(toBytes(chunk)).toString()).slice(
        -STDERR_TAIL,
      )
    })
    // A dead helper shows up as the exit below; a write to its closed stdin is not news.
    child.stdin.on('error', () => {})
    this.exited = child.then((result) => {
      const how =
        result.signal !== undefined
          ? `killed by ${result.signal}`
          : result.exitCode !== undefined
            ? `exit status ${result.exitCode}`
            : (result.originalMessage ?? 'did not start')
      this.fail(this.deathError(how))
      return result.exitCode
    })
  }

  /**
   * Check the device and the helper (preflight.ts), start the helper and greet it. Rejects
   * with DaemonUnreachableError saying what to fix when any of that fails.
   */
  static async start(options: NativeProcessOptions = {}): Promise<NativeProcess> {
    const device = options.device ?? DEFAULT_DEVICE
    const helper = options.helper ?? helperPath()
    await preflight({ device, helper, skipDevice: options.checkDevice === false })
    const proc = new NativeProcess(spawnHelper(helper, device, options.env), device, helper)
    const reply = await proc.call(Op.HELLO, new Uint8Array(0))
    if (reply.result < 0n || reply.payload.byteLength < PayloadSize.HELLO_FIXED) {
      await proc.kill()
      throw new DaemonUnreachableError(
        `${helper} did not greet hsmctl: ${decodeMessage(reply.payload) || `errno ${reply.errno}`}`,
        `rebuild the helper so it speaks protocol version ${VERSION}: npm run build`,
      )
    }
    const hello = decodeHello(reply.payload)
    if (hello.maxPayload < MAX_PAYLOAD) {
      await proc.exit()
      throw new DaemonUnreachableError(
        `${helper} takes frames of ${hello.maxPayload} bytes, hsmctl needs ${MAX_PAYLOAD}`,
        'rebuild the helper: npm run build',
      )
    }
    proc.helloInfo = hello
    return proc
  }

  /** What the helper said about itself when it started (its pid, device, features). */
  get hello(): Hello {
    return this.helloInfo
  }

  /** The helper's process id. */
  get pid(): number {
    return this.hello.pid
  }

  /** Calls sent and not yet answered. */
  get inFlight(): number {
    return this.pending.size
  }

  private deathError(how: string): DaemonUnreachableError {
    const n = this.pending.size
    const stderr = this.stderrTail.trim()
    return new DaemonUnreachableError(
      `hsm-helper (${this.helper}) ended: ${how}` +
        (n ? `; ${n} call${n === 1 ? '' : 's'} had no reply` : ''),
      stderr ? `its last words: ${stderr.split('\n').slice(-5).join(' | ')}` : undefined,
    )
  }

  /** Reject everything pending and every later call with `error`; stop the helper. */
  private fail(error: Error): void {
    if (this.dead) return
    this.dead = error
    const pending = [...this.pending.values()]
    this.pending.clear()
    for (const p of pending) p.reject(error)
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
  }

  private onFrame(frame: Frame): void {
    if (frame.op === Op.PROTOCOL_ERROR) {
      this.fail(
        new DaemonUnreachableError(
          `hsm-helper could not read our frames: ${decodeMessage(frame.payload)}`,
          'this is a bug in hsmctl; please report it',
        ),
      )
      return
    }
    const p = this.pending.get(frame.id)
    if (!p) return // a reply for a call already failed by fail(); nothing waits for it
    this.pending.delete(frame.id)
    p.resolve(frame)
  }

  private allocateId(): number {
    for (;;) {
      const id = this.nextId
      this.nextId = this.nextId >= 0xffff_ffff ? 1 : this.nextId + 1
      if (!this.pending.has(id)) return id
    }
  }

  /**
   * Send one request and resolve with the raw reply (no errno mapping). The building
   * block of every method; public for tests and tools that speak ops directly.
   */
  call(op: number, payload: Uint8Array): Promise<Reply> {
    if (this.dead) return Promise.reject(this.dead)
    const id = this.allocateId()
    const frame = encodeFrame({ op, id, payload })
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.outQueue.push(frame)
      if (!this.flushScheduled) {
        this.flushScheduled = true
        // Calls made in the same tick go out in one write.
        queueMicrotask(() => this.flush())
      }
    })
  }

  private flush(): void {
    this.flushScheduled = false
    const queue = this.outQueue
    this.outQueue = []
    if (this.dead || queue.length === 0) return
    this.child.stdin.write(queue.length === 1 ? queue[0]! : Buffer.concat(queue))
  }

  /** Resolve with the result, or reject with HsmError named `request`. */
  private async syscall(
    request: string,
    op: number,
    payload: Uint8Array,
    hint?: (errno: number) => string | undefined,
  ): Promise<Reply> {
    const reply = await this.call(op, payload)
    if (reply.result < 0n) throw replyError(request, reply, hint?.(reply.errno))
    return reply
  }

  async open(path: string): Promise<number> {
    const reply = await this.syscall('open', Op.OPEN, encodeOpen(path), (errno) =>
      errno === Errno.ENOENT || errno === Errno.ENODEV ? missingDeviceHint(path) : undefined,
    )
    return Number(reply.result)
  }

  async ioctl(fd: number, request: number, arg?: IoctlArg): Promise<number> {
    const info = ioctlByRequest(request)
    const name = info?.name ?? formatRequest(request)
    let kind: ArgKindCode
    let value = 0n
    let bytes: Uint8Array = new Uint8Array(0)
    if (info?.kind === 'none') {
      // The kernel ignores the argument (§2.5: the sample passes the vmid); so do we.
      kind = ArgKind.NONE
    } else if (info?.kind === 'value') {
      if (arg instanceof Uint8Array) {
        throw new TypeError(`${name} takes its argument by value: pass a bigint, not a buffer`)
      }
      kind = ArgKind.VALUE
      value = BigInt.asUintN(64, arg ?? 0n)
    } else if (arg instanceof Uint8Array) {
      kind = ArgKind.BUFFER
      bytes = arg
    } else if (typeof arg === 'bigint') {
      // A struct argument given as an address in the helper's memory (as SimProcess allows).
      kind = info ? ArgKind.POINTER : ArgKind.VALUE
      value = BigInt.asUintN(64, arg)
    } else {
      kind = ArgKind.NONE
    }
    if (bytes.byteLength > MAX_PAYLOAD - PayloadSize.IOCTL_FIXED) {
      throw new HsmError(name, E2BIG, undefined, 'argument larger than a helper frame')
    }
    const reply = await this.call(
      Op.IOCTL,
      encodeIoctl({ fd, request: request >>> 0, kind, value, bytes }),
    )
    // Read-back ioctls (CREATE_VM, PM_GET_CPU_STATE) update the caller's buffer in place.
    if (kind === ArgKind.BUFFER && reply.payload.byteLength > 0 && !(reply.flags & FLAG_REFUSED)) {
      bytes.set(reply.payload.subarray(0, bytes.byteLength))
    }
    if (reply.result < 0n) throw replyError(name, reply)
    return Number(reply.result)
  }

  async munmap(address: bigint, length: number): Promise<void> {
    if (!Number.isSafeInteger(length) || length <= 0 || address < 0n || address > U64_MAX) {
      throw new HsmError('munmap', Errno.EINVAL)
    }
    await this.syscall('munmap', Op.MUNMAP, encodeMunmap(address, BigInt(length)))
  }

  async mmap(length: number): Promise<bigint> {
    if (!Number.isSafeInteger(length) || length <= 0) throw new HsmError('mmap', Errno.EINVAL)
    const reply = await this.syscall('mmap', Op.MMAP, encodeMmap(BigInt(length)))
    return BigInt.asUintN(64, reply.result)
  }

  async read(address: bigint, length: number): Promise<Uint8Array> {
    if (address < 0n || address > U64_MAX || !Number.isSafeInteger(length) || length < 0) {
      throw new HsmError('read', Errno.EFAULT)
    }
    if (length <= MAX_PAYLOAD) {
      const { payload } = await this.syscall('read', Op.READ, encodeRead(address, length))
      // Bytes of their own, as SimProcess gives: a small payload is a view into a slab.
      return payload.byteOffset === 0 && payload.byteLength === payload.buffer.byteLength
        ? payload
        : payload.slice()
    }
    // Larger than a frame: pipelined pieces, like one memcpy done in steps.
    const parts: Promise<Reply>[] = []
    for (let at = 0; at < length; at += MAX_PAYLOAD) {
      const n = Math.min(MAX_PAYLOAD, length - at)
      parts.push(this.syscall('read', Op.READ, encodeRead(address + BigInt(at), n)))
    }
    const out = new Uint8Array(length)
    let at = 0
    for (const part of await Promise.all(parts)) {
      out.set(part.payload, at)
      at += part.payload.byteLength
    }
    return out
  }

  async write(address: bigint, bytes: Uint8Array): Promise<void> {
    if (address < 0n || address > U64_MAX) throw new HsmError('write', Errno.EFAULT)
    const chunk = MAX_PAYLOAD - PayloadSize.WRITE_FIXED
    if (bytes.byteLength <= chunk) {
      await this.syscall('write', Op.WRITE, encodeWrite(address, bytes))
      return
    }
    const parts: Promise<Reply>[] = []
    for (let at = 0; at < bytes.byteLength; at += chunk) {
      const piece = bytes.subarray(at, Math.min(bytes.byteLength, at + chunk))
      parts.push(this.syscall('write', Op.WRITE, encodeWrite(address + BigInt(at), piece)))
    }
    await Promise.all(parts)
  }

  async eventfd(initval = 0): Promise<number> {
    if (!Number.isInteger(initval) || initval < 0 || initval > 0xffff_ffff) {
      throw new HsmError('eventfd', Errno.EINVAL)
    }
    return Number((await this.syscall('eventfd', Op.EVENTFD, encodeEventfd(initval))).result)
  }

  async eventfdRead(fd: number): Promise<bigint> {
    // Named 'read' as in SimProcess: it is read(2) of 8 bytes.
    const reply = await this.syscall('read', Op.EVENTFD_READ, encodeFd(fd))
    return decodeU64('eventfd_read', reply.payload)
  }

  async eventfdWrite(fd: number, n: bigint | number): Promise<void> {
    const value = BigInt(n)
    if (value < 0n || value > U64_MAX) throw new RangeError(`eventfd value ${value} is not a u64`)
    await this.syscall('write', Op.EVENTFD_WRITE, encodeEventfdWrite(fd, value))
  }

  async close(fd: number): Promise<void> {
    await this.syscall('close', Op.CLOSE, encodeFd(fd))
  }

  /**
   * End the helper as a process exit would: EOF on its stdin makes it close every fd it
   * opened (releasing their VMs, §1.5) and exit. Resolves with its exit status.
   */
  async exit(): Promise<number | undefined> {
    if (!this.dead) {
      this.flush()
      this.child.stdin.end()
    }
    const status = await this.exited
    return status
  }

  /** Stop the helper at once (SIGKILL); the kernel still closes its fds. */
  async kill(): Promise<void> {
    this.fail(new DaemonUnreachableError('hsm-helper was stopped'))
    await this.exited
  }
}
