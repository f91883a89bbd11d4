// A User VM's EPT as a sorted list of mapped ranges, and HC_VM_SET_MEMORY_REGIONS
// (spec §3.2, Appendix A.3). An add overwrites whatever it overlaps (§3.6); adjacent
// ranges that continue each other (contiguous host addresses, same attributes) merge, so
// a 1 MiB RAM segment sent as 256 page-sized ops is one entry.

import { Errno } from '../../abi/errno.js'
import { MemAccess, MemRegionOp, PAGE_SIZE } from '../../abi/constants.js'

export interface EptRegion {
  /** User-VM physical address. */
  readonly gpa: bigint
  /** Host (Service-VM) physical address. */
  readonly hpa: bigint
  readonly size: bigint
  /** Memory type | access bits, as the region op carried them (0x40 | 0x7 = WB RWX). */
  readonly attr: number
}

interface Entry {
  gpa: number
  hpa: number
  size: number
  attr: number
}

export class Ept {
  private entries: Entry[] = []

  /** Index of the first entry that ends after `gpa`. */
  private firstEndingAfter(gpa: number): number {
    let lo = 0
    let hi = this.entries.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      const e = this.entries[mid]!
      if (e.gpa + e.size <= gpa) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Remove [gpa, gpa+size) from the map, splitting entries that straddle its ends. */
  private cut(gpa: number, size: number): number {
    const end = gpa + size
    let i = this.firstEndingAfter(gpa)
    const keep: Entry[] = []
    let j = i
    while (j < this.entries.length && this.entries[j]!.gpa < end) {
      const e = this.entries[j]!
      if (e.gpa < gpa) keep.push({ gpa: e.gpa, hpa: e.hpa, size: gpa - e.gpa, attr: e.attr })
      const eEnd = e.gpa + e.size
      if (eEnd > end)
        keep.push({ gpa: end, hpa: e.hpa + (end - e.gpa), size: eEnd - end, attr: e.attr })
      j++
    }
    this.entries.splice(i, j - i, ...keep)
    // Return where a new entry starting at gpa goes.
    while (i < this.entries.length && this.entries[i]!.gpa < gpa) i++
    return i
  }

  add(gpa: number, hpa: number, size: number, attr: number): void {
    if (size === 0) return
    const at = this.cut(gpa, size)
    const prev = this.entries[at - 1]
    if (
      prev &&
      prev.gpa + prev.size === gpa &&
      prev.hpa + prev.size === hpa &&
      prev.attr === attr
    ) {
      prev.size += size
      const next = this.entries[at]
      if (next && next.gpa === gpa + size && next.hpa === hpa + size && next.attr === attr) {
        prev.size += next.size
        this.entries.splice(at, 1)
      }
      return
    }
    const next = this.entries[at]
    if (next && next.gpa === gpa + size && next.hpa === hpa + size && next.attr === attr) {
      next.gpa = gpa
      next.hpa = hpa
      next.size += size
      return
    }
    this.entries.splice(at, 0, { gpa, hpa, size, attr })
  }

  /** Every byte of [gpa, gpa+size) is mapped. */
  isMapped(gpa: number, size: number): boolean {
    let cursor = gpa
    const end = gpa + size
    for (let i = this.firstEndingAfter(gpa); i < this.entries.length && cursor < end; i++) {
      const e = this.entries[i]!
      if (e.gpa > cursor) return false
      cursor = e.gpa + e.size
    }
    return cursor >= end
  }

  del(gpa: number, size: number): void {
    if (size > 0) this.cut(gpa, size)
  }

  /** The entry covering `gpa`, for the guest's direct accesses. */
  lookup(gpa: number): { hpa: number; attr: number; end: number } | undefined {
    const e = this.entries[this.firstEndingAfter(gpa)]
    if (!e || e.gpa > gpa) return undefined
    return { hpa: e.hpa + (gpa - e.gpa), attr: e.attr, end: e.gpa + e.size }
  }

  clear(): void {
    this.entries = []
  }

  list(): EptRegion[] {
    return this.entries.map((e) =>
      Object.freeze({ gpa: BigInt(e.gpa), hpa: BigInt(e.hpa), size: BigInt(e.size), attr: e.attr }),
    )
  }
}

/** One decoded `vm_memory_region_op` (§3.2). */
export interface RegionOp {
  readonly type: number
  readonly attr: number
  readonly gpa: bigint
  readonly hpa: bigint
  readonly size: bigint
}

/**
 * Apply region ops in order, stopping at the first failure: the ops before it stay
 * applied (the hypervisor does not roll back a batch). Returns 0 or a negative errno.
 */
export function applyRegionOps(
  ept: Ept,
  ops: readonly RegionOp[],
  isValidServiceRange: (pa: number, size: number) => boolean,
  gpaLimit: number,
): number {
  for (const op of ops) {
    // A.3: sizes must be 4 KiB multiples.
    if (op.size % BigInt(PAGE_SIZE) !== 0n) return -Errno.EINVAL
    // The target range must lie inside the User VM's physical address space.
    if (op.gpa + op.size > BigInt(gpaLimit)) return -Errno.EINVAL
    const gpa = Number(op.gpa)
    const size = Number(op.size)
    if (op.type === MemRegionOp.ADD) {
      // A.3: ADD requires a valid Service-VM range.
      if (op.hpa + op.size > BigInt(gpaLimit) || !isValidServiceRange(Number(op.hpa), size)) {
        return -Errno.EINVAL
      }
      ept.add(gpa, Number(op.hpa), size, op.attr)
    } else {
      // Any other type deletes; A.3: DEL requires the target range to be mapped.
      if (!ept.isMapped(gpa, size)) return -Errno.EINVAL
      ept.del(gpa, size)
    }
  }
  return 0
}

/** EPT permission for a guest access: read needs R, write needs W. */
export function eptAllows(attr: number, write: boolean): boolean {
  return (attr & (write ? MemAccess.WRITE : MemAccess.READ)) !== 0
}
