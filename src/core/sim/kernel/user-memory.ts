// A process's address space: mappings backed by host RAM frames (real shared memory, a
// memfd of hsmd's or a shimmed program's own file: kernel/shared-memory.ts; so the
// hypervisor, HSM, KVM and the program see the very bytes the process reads), and PFN mappings of raw physical pages (what mmap of a device BAR or /dev/mem
// gives, §3.4 A). Addresses are numbers here (user addresses stay below 2^47).

import { PAGE_SIZE } from '../../abi/constants.js'
import { Errno } from '../../abi/errno.js'
import type { HostMemory } from '../hypervisor/memory.js'
import { RangeAllocator } from '../ranges.js'
import { allocateBacking, mapSharedFile, type Backing } from './shared-memory.js'

/** The addresses one mmap took (its guard page included), shared by what munmap leaves. */
interface Reservation {
  readonly start: number
  readonly length: number
  /** Mappings still in it: at 0 the addresses can be handed out again. */
  pieces: number
}

export interface AnonMapping {
  readonly kind: 'anon'
  readonly start: number
  readonly length: number
  /** Physical address of the first page (the frames are contiguous). */
  readonly pa: number
  readonly buffer: ArrayBufferLike
  /** This mapping's bytes (a part of `buffer` once munmap cut the mapping). */
  readonly u8: Uint8Array
  readonly reservation: Reservation
}

export interface PfnMapping {
  readonly kind: 'pfn'
  readonly start: number
  readonly length: number
  /** Physical address of each page, in order (need not be contiguous). */
  readonly pages: readonly number[]
  readonly writable: boolean
  readonly reservation: Reservation
}

export type Mapping = AnonMapping | PfnMapping

// Where mmap places mappings, first fit, a guard page after each.
const MMAP_BASE = 0x7f00_0000_0000
const MMAP_TOP = 0x7fff_ffff_0000
/** TASK_SIZE on x86-64: munmap past it is EINVAL. */
const TASK_SIZE = 0x7fff_ffff_f000

const roundUp = (n: number) => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE
/**
 * One mapping is one buffer, and a typed array over it holds at most 4 GiB: a larger
 * mapping is ENOMEM here (src/core/sim/README.md, deviations); map RAM in pieces.
 */
const MAX_MAPPING = 2 ** 32

export class UserMemory {
  private mappings: Mapping[] = []
  private readonly space = new RangeAllocator(MMAP_BASE, MMAP_TOP)

  constructor(private readonly host: HostMemory) {}

  private place(length: number): Reservation | undefined {
    const start = this.space.allocate(length + PAGE_SIZE)
    return start === undefined ? undefined : { start, length: length + PAGE_SIZE, pieces: 1 }
  }

  /** The largest anonymous mapping that can still succeed: address space and host RAM left. */
  available(): number {
    const room = Math.max(0, this.space.largest() - PAGE_SIZE)
    const most = Math.min(room, this.host.framesLeft(), MAX_MAPPING)
    return Math.floor(most / PAGE_SIZE) * PAGE_SIZE
  }

  /** An anonymous, zeroed, private mapping; undefined when memory runs out. */
  mmap(length: number): number | undefined {
    const size = roundUp(length)
    // check before backing it: the backing buffer is real memory of hsmd
    if (size > this.available()) return undefined
    let backing: Backing
    try {
      backing = allocateBacking(size)
    } catch (e) {
      // hsmd itself could not get that much memory: ENOMEM, as the kernel would say
      if (e instanceof RangeError) return undefined
      throw e
    }
    return this.insert(backing, size)
  }

  /**
   * A shared mapping of `length` bytes of a file from `offset` (a shimmed program's RAM,
   * named by /proc/PID/fd/N): the process and the program share its pages, as two
   * processes mapping one memfd do. Undefined when memory runs out; throws with `errno`
   * when the file cannot be mapped.
   */
  mmapFile(path: string, offset: number, length: number, writable = true): number | undefined {
    const size = roundUp(length)
    if (size > this.available()) return undefined
    return this.insert(mapSharedFile(path, offset, size, writable), size)
  }

  private insert(backing: Backing, size: number): number | undefined {
    const reservation = this.place(size)
    if (reservation === undefined) return undefined
    const pa = this.host.allocateFrames(backing, size)
    if (pa === undefined) {
      this.space.free(reservation.start, reservation.length)
      return undefined
    }
    this.mappings.push({
      kind: 'anon',
      start: reservation.start,
      length: size,
      pa,
      buffer: backing.buffer,
      u8: new Uint8Array(backing.buffer, 0, size),
      reservation,
    })
    return reservation.start
  }

  /** A VM_PFNMAP mapping of the given physical pages (page-aligned addresses). */
  mmapPfn(pages: readonly number[], writable: boolean): number | undefined {
    const size = pages.length * PAGE_SIZE
    const reservation = this.place(size)
    if (reservation === undefined) return undefined
    const start = reservation.start
    this.mappings.push({
      kind: 'pfn',
      start,
      length: size,
      pages: [...pages],
      writable,
      reservation,
    })
    return start
  }

  /**
   * munmap(2): every page of [address, address + length) goes, whatever mapping it is in
   * (a mapping cut in the middle leaves two); pages not mapped are fine. The frames of a
   * page the kernel pinned stay the hypervisor's until it is unpinned (§3.4). 0 or -EINVAL.
   */
  munmap(address: number, length: number): number {
    if (address % PAGE_SIZE !== 0 || !(length > 0)) return -Errno.EINVAL
    const end = address + roundUp(length)
    if (end > TASK_SIZE) return -Errno.EINVAL
    const kept: Mapping[] = []
    for (const m of this.mappings) {
      const lo = Math.max(m.start, address)
      const hi = Math.min(m.start + m.length, end)
      if (lo >= hi) {
        kept.push(m)
        continue
      }
      if (m.kind === 'anon') this.host.unmapFrames(m.pa + (lo - m.start), hi - lo)
      const pieces = [this.piece(m, m.start, lo), this.piece(m, hi, m.start + m.length)].filter(
        (p): p is Mapping => p !== undefined,
      )
      kept.push(...pieces)
      m.reservation.pieces += pieces.length - 1
      if (m.reservation.pieces === 0) this.space.free(m.reservation.start, m.reservation.length)
    }
    this.mappings = kept
    return 0
  }

  /** What is left of `m` in [start, end), if anything. */
  private piece(m: Mapping, start: number, end: number): Mapping | undefined {
    if (end <= start) return undefined
    const skip = start - m.start
    if (m.kind === 'pfn') {
      const pages = m.pages.slice(skip / PAGE_SIZE, (end - m.start) / PAGE_SIZE)
      return { ...m, start, length: end - start, pages }
    }
    const u8 = new Uint8Array(m.buffer, m.u8.byteOffset + skip, end - start)
    return { ...m, start, length: end - start, pa: m.pa + skip, u8 }
  }

  /** The process is gone: everything it mapped goes. */
  unmapAll(): void {
    for (const m of [...this.mappings]) this.munmap(m.start, m.length)
  }

  /** find_vma: the mapping containing `address`. */
  vma(address: number): Mapping | undefined {
    for (const m of this.mappings) if (address >= m.start && address < m.start + m.length) return m
    return undefined
  }

  /** Copy bytes out of the address space; undefined if any byte is unmapped. */
  read(address: number, length: number): Uint8Array | undefined {
    const out = new Uint8Array(length)
    return this.copy(address, length, (m, offset, at, n) => {
      if (m.kind === 'anon') {
        out.set(m.u8.subarray(offset, offset + n), at)
        return true
      }
      const page = m.pages[Math.floor(offset / PAGE_SIZE)]!
      const bytes = this.host.bytes(page + (offset % PAGE_SIZE), n)
      // Device memory with nothing behind it reads as all ones.
      if (bytes) out.set(bytes, at)
      else out.fill(0xff, at, at + n)
      return true
    })
      ? out
      : undefined
  }

  /** Copy bytes into the address space; false if any byte is unmapped or read-only. */
  write(address: number, bytes: Uint8Array): boolean {
    return this.copy(address, bytes.byteLength, (m, offset, at, n) => {
      if (m.kind === 'anon') {
        m.u8.set(bytes.subarray(at, at + n), offset)
        return true
      }
      if (!m.writable) return false
      const page = m.pages[Math.floor(offset / PAGE_SIZE)]!
      this.host.bytes(page + (offset % PAGE_SIZE), n)?.set(bytes.subarray(at, at + n))
      return true
    })
  }

  /** Walk [address, address+length) page by page through the mappings. */
  private copy(
    address: number,
    length: number,
    step: (m: Mapping, offset: number, at: number, n: number) => boolean,
  ): boolean {
    let at = 0
    while (at < length) {
      const va = address + at
      const m = this.vma(va)
      if (!m) return false
      const offset = va - m.start
      const n = Math.min(length - at, PAGE_SIZE - (offset % PAGE_SIZE), m.length - offset)
      if (!step(m, offset, at, n)) return false
      at += n
    }
    return true
  }

  /** A live view of anonymous memory (what a pointer is in C); undefined across mappings. */
  view(address: number, length: number): Uint8Array | undefined {
    const m = this.vma(address)
    if (!m || m.kind !== 'anon' || address + length > m.start + m.length) return undefined
    return new Uint8Array(m.buffer, m.u8.byteOffset + (address - m.start), length)
  }

  /**
   * pin_user_pages(FOLL_WRITE | FOLL_LONGTERM) of `count` pages from the page containing
   * `address`: the physical address of each. Undefined, with nothing pinned, when one of
   * them cannot be (unmapped, or a PFN mapping, which has no struct pages to pin): every
   * HSM caller unpins a short result again and fails (§2.2, §3.4, §7.3).
   */
  pinPages(address: number, count: number): number[] | undefined {
    const pages: number[] = []
    let va = address - (address % PAGE_SIZE)
    for (let i = 0; i < count; i++, va += PAGE_SIZE) {
      const m = this.vma(va)
      if (!m || m.kind !== 'anon') return undefined
      pages.push(m.pa + (va - m.start))
    }
    this.host.pin(pages)
    return pages
  }

  /** unpin_user_pages: the pins pinPages took (the kernel's side is done with them). */
  unpinPages(pages: readonly number[]): void {
    this.host.unpin(pages)
  }
}
