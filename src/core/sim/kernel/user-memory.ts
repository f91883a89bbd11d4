// A process's address space: anonymous mappings backed by host RAM frames (a
// SharedArrayBuffer each, so the hypervisor and HSM see the very bytes the process
// reads), and PFN mappings of raw physical pages (what mmap of a device BAR or /dev/mem
// gives, §3.4 A). Addresses are numbers here (user addresses stay below 2^47).

import { PAGE_SIZE } from '../../abi/constants.js'
import type { HostMemory } from '../hypervisor/memory.js'

export interface AnonMapping {
  readonly kind: 'anon'
  readonly start: number
  readonly length: number
  /** Physical address of the first page (the frames are contiguous). */
  readonly pa: number
  readonly buffer: SharedArrayBuffer
  readonly u8: Uint8Array
}

export interface PfnMapping {
  readonly kind: 'pfn'
  readonly start: number
  readonly length: number
  /** Physical address of each page, in order (need not be contiguous). */
  readonly pages: readonly number[]
  readonly writable: boolean
}

export type Mapping = AnonMapping | PfnMapping

// Where mmap places mappings, growing up, one guard page between them.
const MMAP_BASE = 0x7f00_0000_0000
const MMAP_TOP = 0x7fff_ffff_0000

const roundUp = (n: number) => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE

export class UserMemory {
  private readonly mappings: Mapping[] = []
  private next = MMAP_BASE

  constructor(private readonly host: HostMemory) {}

  private place(length: number): number | undefined {
    if (this.next + length > MMAP_TOP) return undefined
    const start = this.next
    this.next += length + PAGE_SIZE
    return start
  }

  /** The largest anonymous mapping that can still succeed: address space and host RAM left. */
  available(): number {
    const room = Math.max(0, MMAP_TOP - this.next)
    return Math.floor(Math.min(room, this.host.framesLeft()) / PAGE_SIZE) * PAGE_SIZE
  }

  /** An anonymous, zeroed, private mapping; undefined when memory runs out. */
  mmap(length: number): number | undefined {
    const size = roundUp(length)
    // check before backing it: the backing buffer is real memory of hsmd
    if (size > this.available()) return undefined
    let buffer: SharedArrayBuffer
    try {
      buffer = new SharedArrayBuffer(size)
    } catch (e) {
      // hsmd itself could not get that much memory: ENOMEM, as the kernel would say
      if (e instanceof RangeError) return undefined
      throw e
    }
    const start = this.place(size)
    if (start === undefined) return undefined
    const pa = this.host.allocateFrames(buffer, 0, size)
    if (pa === undefined) return undefined
    this.mappings.push({
      kind: 'anon',
      start,
      length: size,
      pa,
      buffer,
      u8: new Uint8Array(buffer),
    })
    return start
  }

  /** A VM_PFNMAP mapping of the given physical pages (page-aligned addresses). */
  mmapPfn(pages: readonly number[], writable: boolean): number | undefined {
    const size = pages.length * PAGE_SIZE
    const start = this.place(size)
    if (start === undefined) return undefined
    this.mappings.push({ kind: 'pfn', start, length: size, pages: [...pages], writable })
    return start
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
    return new Uint8Array(m.buffer, address - m.start, length)
  }

  /**
   * pin_user_pages(FOLL_WRITE | FOLL_LONGTERM) from the page containing `address`: the
   * physical address of each page pinned, stopping at the first page that cannot be
   * (unmapped, or a PFN mapping, which has no struct pages to pin).
   */
  pinPages(address: number, count: number): number[] {
    const pages: number[] = []
    let va = address - (address % PAGE_SIZE)
    for (let i = 0; i < count; i++, va += PAGE_SIZE) {
      const m = this.vma(va)
      if (!m || m.kind !== 'anon') break
      pages.push(m.pa + (va - m.start))
    }
    return pages
  }
}
