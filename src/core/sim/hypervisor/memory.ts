// The host's physical address space as the hypervisor sees it. The Service VM is
// identity-mapped (its guest-physical address is the host-physical one), so "Service-VM
// physical address" and "host physical address" are the same number here.
//
// Two kinds of memory can be resolved to bytes:
// - RAM frames that back process mappings (a memfd mapped in hsmd, or a SharedArrayBuffer
//   without the addon: kernel/shared-memory.ts), so the ioreq page the hypervisor writes
//   and the RAM KVM maps into a guest are the very memory the process mmapped;
// - kernel buffers: the kernel copies of user structs HSM passes to hypercalls by
//   physical address (spec §0: "a simulator can model them as opaque handles").
// Physical addresses stay below 2^52, so they are plain numbers internally.

import { PAGE_SIZE } from '../../abi/constants.js'
import { discardPages } from '../kernel/shared-memory.js'
import { RangeAllocator } from '../ranges.js'
import type { HostInventory } from './inventory.js'

export interface Frames {
  /** Physical address of the first byte. */
  readonly pa: number
  readonly length: number
  readonly buffer: ArrayBufferLike
  readonly byteOffset: number
  /** Where hsmd has the first byte (for KVM), when the frames are real shared memory. */
  readonly address: bigint | undefined
  /** Memory of hsmd's own (a memfd it made): given back to the host when the frames go. */
  readonly owned: boolean
  /**
   * References to each page: 1 while a process maps it, and 1 per pin (a page the kernel
   * pinned stays the hypervisor's after the process unmaps it, §3.4). When no page of the
   * range is referenced any more the frames go back to the host.
   */
  readonly refs: Uint32Array
  /** Pages with a reference. */
  used: number
}

/** A resolved physical range: the backing buffer and where the range starts in it. */
export interface PhysicalBytes {
  readonly buffer: ArrayBufferLike
  readonly byteOffset: number
}

// Where the model places its own allocations inside system RAM.
const KERNEL_HEAP_BASE = 0x0200_0000
const KERNEL_HEAP_SIZE = 0x0200_0000
const KERNEL_HEAP_ALIGN = 64

export class HostMemory {
  /** Sorted by physical address. */
  private readonly frames: Frames[] = []
  private readonly space: RangeAllocator
  private readonly heap = new Map<number, Uint8Array>()
  private heapCursor = 0
  private readonly ram: ReadonlyArray<readonly [number, number]>
  private readonly hvStart: number
  private readonly hvEnd: number
  readonly limit: number

  constructor(inventory: HostInventory) {
    this.ram = inventory.ram.map((r) => [Number(r.base), Number(r.base + r.size)] as const)
    this.hvStart = Number(inventory.hypervisorRam.base)
    this.hvEnd = Number(inventory.hypervisorRam.base + inventory.hypervisorRam.size)
    this.limit = 2 ** inventory.physAddrBits
    // Process pages come from the largest RAM range (high memory on the default board).
    let best: readonly [number, number] = [0, 0]
    for (const r of this.ram) if (r[1] - r[0] > best[1] - best[0]) best = r
    this.space = new RangeAllocator(best[0], best[1])
  }

  /** The most host RAM one process mapping can still get (its frames are contiguous). */
  framesLeft(): number {
    return this.space.largest()
  }

  /**
   * Back `length` bytes (a page multiple) of process memory with host RAM frames, each
   * page referenced once by the mapping.
   */
  allocateFrames(
    backing: {
      readonly buffer: ArrayBufferLike
      readonly address: bigint | undefined
      readonly fd: number | undefined
    },
    length: number,
  ): number | undefined {
    const pa = this.space.allocate(length)
    if (pa === undefined) return undefined
    const pages = length / PAGE_SIZE
    const frames: Frames = {
      pa,
      length,
      buffer: backing.buffer,
      byteOffset: 0,
      address: backing.address,
      owned: backing.fd !== undefined,
      refs: new Uint32Array(pages).fill(1),
      used: pages,
    }
    let i = this.frames.length
    while (i > 0 && this.frames[i - 1]!.pa > pa) i--
    this.frames.splice(i, 0, frames)
    return pa
  }

  /** pin_user_pages: one more reference to each page (they must be process RAM). */
  pin(pages: readonly number[]): void {
    for (const pa of pages) {
      const f = this.frameAt(pa)
      if (!f) throw new Error(`pin of 0x${pa.toString(16)}, which is not process RAM`)
      const i = (pa - f.pa) / PAGE_SIZE
      if (f.refs[i]!++ === 0) f.used++
    }
  }

  /** unpin_user_pages: drop a pin from each page. */
  unpin(pages: readonly number[]): void {
    for (const pa of pages) this.release(pa, 1)
  }

  /** A process unmapped `length` bytes of frames from `pa`: drop the mapping's references. */
  unmapFrames(pa: number, length: number): void {
    this.release(pa, length / PAGE_SIZE)
  }

  private release(pa: number, pages: number): void {
    const f = this.frameAt(pa)
    if (!f) throw new Error(`release of 0x${pa.toString(16)}, which is not process RAM`)
    const first = (pa - f.pa) / PAGE_SIZE
    for (let i = first; i < first + pages; i++) {
      if (f.refs[i] === 0)
        throw new Error(`page 0x${(f.pa + i * PAGE_SIZE).toString(16)} released twice`)
      if (--f.refs[i]! === 0) f.used--
    }
    if (f.used === 0) {
      this.frames.splice(this.frames.indexOf(f), 1)
      this.space.free(f.pa, f.length)
      // hsmd's RSS goes down now, not when the buffer is collected
      if (f.owned) discardPages(f, f.byteOffset, f.length)
    }
  }

  /** The frames holding `pa`, if it is RAM handed out to a process. */
  frameAt(pa: number): Frames | undefined {
    const frames = this.frames
    let lo = 0
    let hi = frames.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      const f = frames[mid]!
      if (pa < f.pa) hi = mid - 1
      else if (pa >= f.pa + f.length) lo = mid + 1
      else return f
    }
    return undefined
  }

  /** Where hsmd has the byte at `pa` (what KVM maps), if it is shared process RAM. */
  hostAddress(pa: number): bigint | undefined {
    const f = this.frameAt(pa)
    return f?.address === undefined ? undefined : f.address + BigInt(pa - f.pa)
  }

  /**
   * The run of [pa, pa + length) that starts at `pa` and lies in one piece of memory:
   * inside one frame range (with hsmd's address of `pa`, when it is shared memory), or
   * between frames (no address: device memory or RAM nobody mapped).
   */
  hostRun(pa: number, length: number): { address: bigint | undefined; length: number } {
    const f = this.frameAt(pa)
    if (f) {
      const n = Math.min(length, f.pa + f.length - pa)
      return {
        address: f.address === undefined ? undefined : f.address + BigInt(pa - f.pa),
        length: n,
      }
    }
    let next = pa + length
    for (const g of this.frames) {
      if (g.pa > pa) {
        next = Math.min(next, g.pa)
        break
      }
    }
    return { address: undefined, length: next - pa }
  }

  /** Ordinary, refcounted system RAM (what a PFN mapping must not contain, §3.4 A). */
  isSystemRam(pa: number): boolean {
    if (pa >= this.hvStart && pa < this.hvEnd) return false
    for (const [start, end] of this.ram) if (pa >= start && pa < end) return true
    return false
  }

  /** A range the Service VM may hand to a User VM: inside the address space, not the hypervisor's. */
  isValidServiceRange(pa: number, size: number): boolean {
    if (pa + size > this.limit) return false
    return pa + size <= this.hvStart || pa >= this.hvEnd
  }

  /**
   * Bytes at a physical address: a whole kernel buffer (by its exact address) or a
   * range inside process RAM frames. Device memory and unbacked RAM resolve to nothing.
   */
  resolve(pa: number, length: number): PhysicalBytes | undefined {
    const kbuf = this.heap.get(pa)
    if (kbuf) {
      return length <= kbuf.byteLength
        ? { buffer: kbuf.buffer, byteOffset: kbuf.byteOffset }
        : undefined
    }
    const f = this.frameAt(pa)
    if (!f || pa + length > f.pa + f.length) return undefined
    return { buffer: f.buffer, byteOffset: f.byteOffset + (pa - f.pa) }
  }

  /** A Uint8Array over a resolved range (allocates a view; not for per-request paths). */
  bytes(pa: number, length: number): Uint8Array | undefined {
    const r = this.resolve(pa, length)
    return r ? new Uint8Array(r.buffer, r.byteOffset, length) : undefined
  }

  /** kzalloc: a zeroed kernel buffer and its physical address. */
  kzalloc(size: number): { pa: number; bytes: Uint8Array } {
    const bytes = new Uint8Array(Math.max(size, 1))
    const slots = KERNEL_HEAP_SIZE / KERNEL_HEAP_ALIGN
    for (let tries = 0; tries < slots; tries++) {
      const pa = KERNEL_HEAP_BASE + this.heapCursor * KERNEL_HEAP_ALIGN
      this.heapCursor = (this.heapCursor + Math.ceil(bytes.byteLength / KERNEL_HEAP_ALIGN)) % slots
      if (!this.heap.has(pa)) {
        this.heap.set(pa, bytes)
        return { pa, bytes }
      }
    }
    throw new Error('simulated kernel heap exhausted')
  }

  /** kmemdup: a kernel copy of `source`. */
  kmemdup(source: Uint8Array): { pa: number; bytes: Uint8Array } {
    const k = this.kzalloc(source.byteLength)
    k.bytes.set(source)
    return k
  }

  kfree(pa: number): void {
    this.heap.delete(pa)
  }

  /** Live kernel buffers (a leak check for tests). */
  get kernelBuffers(): number {
    return this.heap.size
  }
}

export const pageFloor = (address: number) => address - (address % PAGE_SIZE)
