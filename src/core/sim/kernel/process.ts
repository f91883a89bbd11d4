// A Service-VM process: the simulated implementation of HsmProcess. It owns an fd
// table and an address space; every call is a syscall against the simulated kernel.
// A failed call rejects with HsmError (errno, code, the ioctl name or syscall).

import { Errno } from '../../abi/errno.js'
import type { IoreqLane } from '../lane.js'
import { formatRequest, ioctlByRequest } from '../../abi/ioctls.js'
import { PAGE_SIZE } from '../../abi/constants.js'
import { HsmError } from '../../errors.js'
import type { HsmProcess, IoctlArg } from '../../hsm-process.js'
import type { HsmFileState } from '../hsm/hsm.js'
import { EventfdCtx } from './eventfd.js'
import { EventfdFile, type OpenFile } from './file.js'
import type { SimKernel } from './kernel.js'
import { UserMemory } from './user-memory.js'

export interface SpawnOptions {
  /** The process's uid; /dev/acrn_hsm is 0600 root (§1.3), so others get EACCES. */
  readonly uid?: number
  /** A 32-bit process on the 64-bit kernel: HSM has no compat_ioctl, every ioctl is ENOTTY (§1.2). */
  readonly compat32?: boolean
}

/** Something asleep in an interruptible wait of this process (ATTACH_IOREQ_CLIENT). */
export interface Sleeper {
  interrupt(): void
}

const U64_MAX = 0xffff_ffff_ffff_ffffn

function fail(request: string, errno: number): Promise<never> {
  return Promise.reject(new HsmError(request, errno))
}

function ioctlName(request: number): string {
  return ioctlByRequest(request)?.name ?? formatRequest(request)
}

function userAddress(address: bigint): number {
  return address >= 0n && address <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(address) : -1
}

export class SimProcess implements HsmProcess {
  readonly pid: number
  readonly uid: number
  readonly compat32: boolean
  readonly mm: UserMemory
  private readonly fds = new Map<number, OpenFile>()
  private readonly sleepers = new Set<Sleeper>()

  constructor(
    private readonly kernel: SimKernel,
    options: SpawnOptions = {},
  ) {
    this.pid = kernel.allocatePid()
    this.uid = options.uid ?? 0
    this.compat32 = options.compat32 ?? false
    this.mm = new UserMemory(kernel.hv.memory)
  }

  private install(file: OpenFile): number {
    let fd = 3
    while (this.fds.has(fd)) fd++
    this.fds.set(fd, file)
    return fd
  }

  /** The open file behind an fd of this process (fdget). */
  file(fd: number): OpenFile | undefined {
    return this.fds.get(fd)
  }

  open(path: string): Promise<number> {
    const file = this.kernel.openNode(this, path)
    if (typeof file === 'number') return fail('open', -file)
    return Promise.resolve(this.install(file))
  }

  ioctl(fd: number, request: number, arg?: IoctlArg): Promise<number> {
    let ret: number | Promise<number>
    try {
      ret = this.ioctlReturn(fd, request, arg)
    } catch (err) {
      return Promise.reject(err)
    }
    if (typeof ret === 'number') {
      return ret < 0 ? fail(ioctlName(request), -ret) : Promise.resolve(ret)
    }
    return ret.then((r) => {
      if (r < 0) throw new HsmError(ioctlName(request), -r)
      return r
    })
  }

  /**
   * ioctl as the system call returns it: a value, or -errno; a promise only when the
   * call blocks (ATTACH). For callers that answer at once when they can (the shim's
   * server, native/sim-server.ts); throws only on a bug, never for an errno.
   */
  ioctlReturn(fd: number, request: number, arg?: IoctlArg): number | Promise<number> {
    const file = this.fds.get(fd)
    if (!file) return -Errno.EBADF
    if (this.compat32 && file.kind === 'hsm') return -Errno.ENOTTY
    // The call holds the file: a close meanwhile defers its release to our return.
    file.get()
    let ret: number | Promise<number>
    try {
      ret = file.ioctl(this, request >>> 0, arg)
    } catch (err) {
      file.put()
      throw err
    }
    if (typeof ret === 'number') {
      file.put()
      return ret
    }
    return ret.then(
      (r) => {
        file.put()
        return r
      },
      (err: unknown) => {
        file.put()
        throw err
      },
    )
  }

  mmap(length: number): Promise<bigint> {
    if (!Number.isSafeInteger(length) || length <= 0) return fail('mmap', Errno.EINVAL)
    const start = this.mm.mmap(length)
    return start === undefined ? fail('mmap', Errno.ENOMEM) : Promise.resolve(BigInt(start))
  }

  /**
   * mmap(MAP_SHARED) of a file another process shares (a shimmed program's RAM memfd,
   * named by its /proc/PID/fd/N): both processes see the same pages, with no copy. Sim
   * only; the errno of a file that cannot be mapped is the mmap's.
   */
  mmapFile(path: string, offset: number, length: number): Promise<bigint> {
    if (!Number.isSafeInteger(length) || length <= 0 || !Number.isSafeInteger(offset) || offset < 0)
      return fail('mmap', Errno.EINVAL)
    let start: number | undefined
    try {
      start = this.mm.mmapFile(path, offset, length)
    } catch (e) {
      return fail('mmap', (e as { errno?: number }).errno ?? Errno.EINVAL)
    }
    return start === undefined ? fail('mmap', Errno.ENOMEM) : Promise.resolve(BigInt(start))
  }

  /**
   * munmap(2): the pages of [address, address + length) are gone from this process;
   * pages the kernel pinned (RAM of a VM, its ioreq page) stay the hypervisor's until the
   * VM lets go of them (§3.4, §2.3). EINVAL for an unaligned address or a zero length.
   */
  munmap(address: bigint, length: number): Promise<void> {
    const at = userAddress(address)
    const ret = at < 0 || !Number.isSafeInteger(length) ? -Errno.EINVAL : this.mm.munmap(at, length)
    return ret < 0 ? fail('munmap', -ret) : Promise.resolve()
  }

  /**
   * mmap of raw physical pages (a PCI BAR through sysfs, or /dev/mem): a VM_PFNMAP
   * mapping, which SET_MEMSEG handles without pinning (§3.4 A). Sim only.
   */
  mmapPfn(physPages: readonly bigint[], options: { writable?: boolean } = {}): Promise<bigint> {
    if (
      physPages.length === 0 ||
      physPages.some((pa) => pa < 0n || pa % BigInt(PAGE_SIZE) !== 0n)
    ) {
      return fail('mmap', Errno.EINVAL)
    }
    const start = this.mm.mmapPfn(physPages.map(Number), options.writable ?? true)
    return start === undefined ? fail('mmap', Errno.ENOMEM) : Promise.resolve(BigInt(start))
  }

  /** /proc/self/pagemap: the physical address of the page holding `address`. Sim only. */
  pagemap(address: bigint): Promise<bigint> {
    const at = userAddress(address)
    const m = at < 0 ? undefined : this.mm.vma(at)
    if (!m) return fail('pagemap', Errno.EFAULT)
    const page = Math.floor((at - m.start) / PAGE_SIZE)
    return Promise.resolve(BigInt(m.kind === 'anon' ? m.pa + page * PAGE_SIZE : m.pages[page]!))
  }

  read(address: bigint, length: number): Promise<Uint8Array> {
    const at = userAddress(address)
    const bytes = at < 0 || length < 0 ? undefined : this.mm.read(at, length)
    return bytes ? Promise.resolve(bytes) : fail('read', Errno.EFAULT)
  }

  write(address: bigint, bytes: Uint8Array): Promise<void> {
    const at = userAddress(address)
    return at >= 0 && this.mm.write(at, bytes) ? Promise.resolve() : fail('write', Errno.EFAULT)
  }

  /**
   * A live view of this process's anonymous memory: what a pointer is in C. In-process
   * clients (the VMM's default-client loop, benchmarks) read the ioreq page through it
   * and use Atomics on `new Int32Array(view.buffer, view.byteOffset, ...)`. Sim only.
   */
  view(address: bigint, length: number): Uint8Array {
    const at = userAddress(address)
    const view = at < 0 ? undefined : this.mm.view(at, length)
    if (!view) throw new HsmError('view', Errno.EFAULT)
    return view
  }

  eventfd(initval = 0): Promise<number> {
    if (!Number.isInteger(initval) || initval < 0 || initval > 0xffff_ffff)
      return fail('eventfd', Errno.EINVAL)
    return Promise.resolve(this.install(new EventfdFile(new EventfdCtx(initval))))
  }

  /** The eventfd behind an fd; reading or writing 8 bytes on any other file is EINVAL (§1.2). */
  private eventfdOf(fd: number): EventfdCtx | number {
    const file = this.fds.get(fd)
    if (!file) return -Errno.EBADF
    return file instanceof EventfdFile ? file.ctx : -Errno.EINVAL
  }

  eventfdRead(fd: number): Promise<bigint> {
    const ctx = this.eventfdOf(fd)
    if (typeof ctx === 'number') return fail('read', -ctx)
    const value = ctx.read()
    return typeof value === 'number' ? fail('read', -value) : Promise.resolve(value)
  }

  eventfdWrite(fd: number, n: bigint | number): Promise<void> {
    const value = BigInt(n)
    if (value < 0n || value > U64_MAX) {
      return Promise.reject(new RangeError(`eventfd value ${value} is not a u64`))
    }
    const ctx = this.eventfdOf(fd)
    if (typeof ctx === 'number') return fail('write', -ctx)
    const ret = ctx.write(value)
    return ret < 0 ? fail('write', -ret) : Promise.resolve()
  }

  /** dup(2): a second fd for the same open file description. Sim only. */
  dup(fd: number): Promise<number> {
    const file = this.fds.get(fd)
    if (!file) return fail('dup', Errno.EBADF)
    file.get()
    return Promise.resolve(this.install(file))
  }

  close(fd: number): Promise<void> {
    const file = this.fds.get(fd)
    if (!file) return fail('close', Errno.EBADF)
    this.fds.delete(fd)
    file.put()
    return Promise.resolve()
  }

  /** exit(2): every fd is closed (and each last close releases its file). */
  exit(): Promise<void> {
    for (const [fd, file] of [...this.fds]) {
      this.fds.delete(fd)
      file.put()
    }
    // Its memory goes back to the host (what a VM still pins, when the VM lets it go).
    this.mm.unmapAll()
    return Promise.resolve()
  }

  /** Open fds, ascending. */
  openFds(): number[] {
    return [...this.fds.keys()].sort((a, b) => a - b)
  }

  /**
   * Deliver a signal: every interruptible wait of this process ends. A blocked
   * ATTACH_IOREQ_CLIENT then returns 0, as the kernel makes it do (§4.7). Returns how
   * many waits were interrupted.
   */
  interrupt(): number {
    const sleepers = [...this.sleepers]
    this.sleepers.clear()
    for (const s of sleepers) s.interrupt()
    return sleepers.length
  }

  sleep(sleeper: Sleeper): void {
    this.sleepers.add(sleeper)
  }

  wake(sleeper: Sleeper): void {
    this.sleepers.delete(sleeper)
  }

  /** A shimmed program's lane for the VM of HSM fd `fd` (hsm/ioreq.ts, ioreqLaneAttach). */
  attachLane(fd: number, bytes: Uint8Array): IoreqLane | number {
    const file = this.fds.get(fd) as
      { kind?: string; attachLane?(b: Uint8Array): IoreqLane | number } | undefined
    return file?.kind === 'hsm' && file.attachLane ? file.attachLane(bytes) : -Errno.EBADF
  }

  /** HSM's per-fd state behind an HSM fd, read-only (undefined for other fds). Sim only. */
  hsmState(fd: number): HsmFileState | undefined {
    const file = this.fds.get(fd)
    return file?.kind === 'hsm' ? (file.inspect() as HsmFileState) : undefined
  }
}
