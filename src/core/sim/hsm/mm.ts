// Guest memory segments (drivers/virt/acrn/mm.c; spec §3): SET_MEMSEG and UNSET_MEMSEG
// become vm_memory_region_batch hypercalls. MMIO is always mapped UC and RAM always WB,
// whatever memory type the user asked for; RAM of normal memory is pinned page by page
// and recorded (at most 256 records over the VM object's life); RAM can never be unset.

import {
  ACRN_MEM_MAPPING_MAX,
  MemAccess,
  MemRegionOp,
  Memmap,
  MemType,
  PAGE_SHIFT,
  PAGE_SIZE,
} from '../../abi/constants.js'
import { Errno } from '../../abi/errno.js'
import { offsetOf } from '../../abi/layout.js'
import { acrn_vm_memmap, vm_memory_region_batch, vm_memory_region_op } from '../../abi/structs.js'
import type { IoctlArg } from '../../hsm-process.js'
import type { SimProcess } from '../kernel/process.js'
import { copyFromUser } from '../kernel/uaccess.js'
import type { PfnMapping } from '../kernel/user-memory.js'
import type { AcrnVm } from './vm.js'

const MEMMAP_TYPE = offsetOf(acrn_vm_memmap, 'type')
const MEMMAP_ATTR = offsetOf(acrn_vm_memmap, 'attr')
const MEMMAP_USER_VM_PA = offsetOf(acrn_vm_memmap, 'user_vm_pa')
const MEMMAP_VMA_BASE = offsetOf(acrn_vm_memmap, 'vma_base')
const MEMMAP_LEN = offsetOf(acrn_vm_memmap, 'len')
const OP_SIZE = vm_memory_region_op.size

/** One pinned RAM segment: what teardown unpins (§3.6 "mapping cache"). */
export interface RamMapping {
  readonly userVmPa: bigint
  /** The `len` the user gave, sub-page tail included. */
  readonly size: bigint
  readonly npages: number
  /** Physical address of each pinned page. */
  readonly pages: readonly number[]
}

interface Region {
  readonly type: number
  readonly attr: number
  readonly userVmPa: bigint
  readonly serviceVmPa: bigint
  readonly size: bigint
}

/** Build a batch (header and op array) in kernel memory and issue one HC_VM_SET_MEMORY_REGIONS. */
function setMemoryRegions(vm: AcrnVm, regions: readonly Region[]): number {
  const memory = vm.module.hv.memory
  const ops = memory.kzalloc(regions.length * OP_SIZE)
  const opView = new DataView(ops.bytes.buffer)
  regions.forEach((r, i) => {
    const at = i * OP_SIZE
    opView.setUint32(at + offsetOf(vm_memory_region_op, 'type'), r.type, true)
    opView.setUint32(at + offsetOf(vm_memory_region_op, 'attr'), r.attr, true)
    opView.setBigUint64(at + offsetOf(vm_memory_region_op, 'user_vm_pa'), r.userVmPa, true)
    opView.setBigUint64(at + offsetOf(vm_memory_region_op, 'service_vm_pa'), r.serviceVmPa, true)
    opView.setBigUint64(at + offsetOf(vm_memory_region_op, 'size'), r.size, true)
  })
  const batch = memory.kzalloc(vm_memory_region_batch.size)
  const view = new DataView(batch.bytes.buffer)
  view.setUint16(offsetOf(vm_memory_region_batch, 'vmid'), vm.vmid, true)
  view.setUint32(offsetOf(vm_memory_region_batch, 'regions_num'), regions.length, true)
  view.setBigUint64(offsetOf(vm_memory_region_batch, 'regions_gpa'), BigInt(ops.pa), true)
  const ret = vm.module.hcall.setMemoryRegions(batch.pa)
  memory.kfree(batch.pa)
  memory.kfree(ops.pa)
  return ret
}

/** §3.4 A: a PFN-mapped area is mapped as one region, without pinning or a record. */
function ramMapPfn(
  vm: AcrnVm,
  vma: PfnMapping,
  vmaBase: number,
  memmap: DataView,
  nrPages: number,
): number {
  const len = memmap.getBigUint64(MEMMAP_LEN, true)
  const attr = memmap.getUint32(MEMMAP_ATTR, true)
  if (BigInt(vmaBase) + len > BigInt(vma.start + vma.length)) return -Errno.EINVAL
  const firstPage = Math.floor((vmaBase - vma.start) / PAGE_SIZE)
  const firstPfn = vma.pages[firstPage]! / PAGE_SIZE
  const memory = vm.module.hv.memory
  for (let i = 0; i < nrPages; i++) {
    const pa = vma.pages[firstPage + i]!
    if (!vma.writable && attr & MemAccess.WRITE) return -Errno.EFAULT
    // Ordinary refcounted RAM must be pinned, not PFN-mapped.
    if (memory.isSystemRam(pa)) return -Errno.EFAULT
    if (pa / PAGE_SIZE !== firstPfn + i) return -Errno.EINVAL
  }
  return setMemoryRegions(vm, [
    {
      type: MemRegionOp.ADD,
      attr: MemType.WB | (attr & MemAccess.MASK),
      userVmPa: memmap.getBigUint64(MEMMAP_USER_VM_PA, true),
      serviceVmPa: BigInt(firstPfn * PAGE_SIZE),
      size: len,
    },
  ])
}

/** acrn_vm_ram_map (§3.4). */
function ramMap(vm: AcrnVm, proc: SimProcess, memmap: DataView): number {
  const len = memmap.getBigUint64(MEMMAP_LEN, true)
  const nrPagesBig = len >> BigInt(PAGE_SHIFT)
  if (nrPagesBig === 0n) return -Errno.EINVAL
  const vmaBaseBig = memmap.getBigUint64(MEMMAP_VMA_BASE, true)
  const vmaBase = vmaBaseBig <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(vmaBaseBig) : -1
  // No address space is that large: pinning would fail.
  if (vmaBase < 0 || nrPagesBig > 0xffff_ffffn) return -Errno.EFAULT
  const nrPages = Number(nrPagesBig)
  const vma = proc.mm.vma(vmaBase)
  if (vma?.kind === 'pfn') return ramMapPfn(vm, vma, vmaBase, memmap, nrPages)

  // Fewer pages pinned than asked: they are unpinned again (pinPages does that).
  const pages = proc.mm.pinPages(vmaBase, nrPages)
  if (!pages) return -Errno.EFAULT
  if (vm.mappingCount >= ACRN_MEM_MAPPING_MAX) {
    proc.mm.unpinPages(pages)
    return -Errno.ENOMEM
  }
  const userVmPa = memmap.getBigUint64(MEMMAP_USER_VM_PA, true)
  const record: RamMapping = { userVmPa, size: len, npages: nrPages, pages }
  vm.mappings.push(record)
  vm.mappingCount++
  // Ordinary 4 KiB pages: one region per page (§3.4 B step 5); WB whatever was asked.
  const attr = MemType.WB | (memmap.getUint32(MEMMAP_ATTR, true) & MemAccess.MASK)
  const regions: Region[] = pages.map((pa, k) => ({
    type: MemRegionOp.ADD,
    attr,
    userVmPa: userVmPa + BigInt(k * PAGE_SIZE),
    serviceVmPa: BigInt(pa),
    size: BigInt(PAGE_SIZE),
  }))
  const ret = setMemoryRegions(vm, regions)
  if (ret < 0) {
    vm.mappings.pop()
    vm.mappingCount--
    proc.mm.unpinPages(pages)
    return ret
  }
  return 0
}

/** ACRN_IOCTL_SET_MEMSEG (§3.3). */
export function setMemseg(vm: AcrnVm, proc: SimProcess, arg: IoctlArg): number {
  const bytes = copyFromUser(proc.mm, arg, acrn_vm_memmap.size)
  if (typeof bytes === 'number') return bytes
  const memmap = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const type = memmap.getUint32(MEMMAP_TYPE, true)
  if (type === Memmap.RAM) return ramMap(vm, proc, memmap)
  if (type !== Memmap.MMIO) return -Errno.EINVAL
  // MMIO: no checks in HSM; always UC, the user's memory-type bits are discarded.
  return setMemoryRegions(vm, [
    {
      type: MemRegionOp.ADD,
      attr: MemType.UC | (memmap.getUint32(MEMMAP_ATTR, true) & MemAccess.MASK),
      userVmPa: memmap.getBigUint64(MEMMAP_USER_VM_PA, true),
      serviceVmPa: memmap.getBigUint64(MEMMAP_VMA_BASE, true),
      size: memmap.getBigUint64(MEMMAP_LEN, true),
    },
  ])
}

/** ACRN_IOCTL_UNSET_MEMSEG (§3.5): MMIO only; RAM stays until the VM is destroyed. */
export function unsetMemseg(vm: AcrnVm, proc: SimProcess, arg: IoctlArg): number {
  const bytes = copyFromUser(proc.mm, arg, acrn_vm_memmap.size)
  if (typeof bytes === 'number') return bytes
  const memmap = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (memmap.getUint32(MEMMAP_TYPE, true) !== Memmap.MMIO) return -Errno.EINVAL
  return setMemoryRegions(vm, [
    {
      type: MemRegionOp.DEL,
      attr: 0,
      userVmPa: memmap.getBigUint64(MEMMAP_USER_VM_PA, true),
      serviceVmPa: 0n,
      size: memmap.getBigUint64(MEMMAP_LEN, true),
    },
  ])
}

/**
 * At VM destroy: drop every record and unpin; the record count is not reset (§2.3 step 8).
 * A VM orphaned at release keeps its pages pinned (`unpin` false): the guest runs on.
 */
export function unmapAll(vm: AcrnVm, unpin = true): void {
  if (unpin) for (const record of vm.mappings) vm.module.hv.memory.unpin(record.pages)
  vm.mappings = []
}
