// The per-file VM object and its lifecycle (drivers/virt/acrn/vm.c; spec §2). HSM does
// not know running/paused: those live in the hypervisor. It only knows "no VM", "a VM"
// and the DESTROYED bit, which nothing ever clears (§2.4).

import { ACRN_INVALID_VMID, VmFlag } from '../../abi/constants.js'
import { Errno } from '../../abi/errno.js'
import { offsetOf } from '../../abi/layout.js'
import { acrn_vm_creation } from '../../abi/structs.js'
import type { IoctlArg } from '../../hsm-process.js'
import { WorkQueue } from '../kernel/workqueue.js'
import type { SimProcess } from '../kernel/process.js'
import { copyFromUser, copyToUser } from '../kernel/uaccess.js'
import type { HsmModule } from './hsm.js'
import { IoeventfdTable, ioeventfdDeinit, ioeventfdInit } from './ioeventfd.js'
import { ioreqDeinit, ioreqInit, type IoreqClient, type KernelIoreqPage } from './ioreq.js'
import { irqfdDeinit, irqfdInit, type Irqfd } from './irqfd.js'
import { unmapAll, type RamMapping } from './mm.js'

export const DESTROYED = 1 << VmFlag.DESTROYED

const CREATION_VMID = offsetOf(acrn_vm_creation, 'vmid')
const CREATION_RESERVED0 = offsetOf(acrn_vm_creation, 'reserved0')
const CREATION_VCPU_NUM = offsetOf(acrn_vm_creation, 'vcpu_num')
const CREATION_RESERVED1 = offsetOf(acrn_vm_creation, 'reserved1')
const CREATION_IOREQ_BUF = offsetOf(acrn_vm_creation, 'ioreq_buf')

/** struct acrn_vm (§2.1): one per open file description. */
export class AcrnVm {
  vmid = ACRN_INVALID_VMID
  /** vmid as the hypercall register value, kept so the hot path builds no bigint. */
  vmidArg = BigInt(ACRN_INVALID_VMID)
  vcpuNum = 0
  flags = 0
  /** RAM mapping records in use, and how many were ever taken (never reset, §2.4). */
  mappings: RamMapping[] = []
  mappingCount = 0
  /** Non-default clients, newest first. */
  clients: IoreqClient[] = []
  defaultClient: IoreqClient | null = null
  ioreqPage: KernelIoreqPage | null = null
  /** The last value written to port 0xCF8 (§4.6); kept for the object's whole life. */
  pciConfAddr = 0
  /** Physical address of the pinned interrupt-monitor page (§7.3). */
  monitorPage: number | null = null
  readonly ioeventfds = new IoeventfdTable()
  ioeventfdClient: IoreqClient | null = null
  irqfds: Irqfd[] = []
  irqfdWq: WorkQueue | null = null

  constructor(readonly module: HsmModule) {}

  setVmid(vmid: number): void {
    this.vmid = vmid
    this.vmidArg = BigInt(vmid)
  }
}

/** ACRN_IOCTL_CREATE_VM (§2.2). */
export function acrnVmCreate(vm: AcrnVm, proc: SimProcess, arg: IoctlArg): number {
  const user = copyFromUser(proc.mm, arg, acrn_vm_creation.size)
  if (typeof user === 'number') return user
  const view = new DataView(user.buffer, user.byteOffset, user.byteLength)
  if ((view.getUint16(CREATION_RESERVED0, true) | view.getUint16(CREATION_RESERVED1, true)) !== 0) {
    return -Errno.EINVAL
  }
  const module = vm.module
  const memory = module.hv.memory
  const kcopy = memory.kmemdup(user)
  const kview = new DataView(kcopy.bytes.buffer)
  try {
    const ret = module.hcall.createVm(kcopy.pa)
    const vmid = kview.getUint16(CREATION_VMID, true)
    // Every hypervisor failure becomes EINVAL, not the hypercall's error.
    if (ret < 0 || vmid === ACRN_INVALID_VMID) return -Errno.EINVAL
    // A second CREATE on a live fd lands here too: the old clients drop out of view.
    vm.clients = []
    vm.setVmid(vmid)
    vm.vcpuNum = kview.getUint16(CREATION_VCPU_NUM, true)
    if (ioreqInit(vm, proc, kview.getBigUint64(CREATION_IOREQ_BUF, true)) < 0) {
      // The rollback destroy's result is not checked (the hypervisor refuses a VM that
      // is not paused, so the new VM stays behind there).
      module.hcall.destroyVm(vm.vmidArg)
      vm.setVmid(ACRN_INVALID_VMID)
      return -Errno.EINVAL
    }
    module.vmList.unshift(vm)
    ioeventfdInit(vm)
    irqfdInit(vm)
    if (copyToUser(proc.mm, arg, kcopy.bytes) < 0) {
      acrnVmDestroy(vm)
      return -Errno.EFAULT
    }
    return 0
  } finally {
    memory.kfree(kcopy.pa)
  }
}

/**
 * acrn_vm_destroy (§2.3, current order): the hypercall first; if it fails nothing is
 * released and the VM stays usable. Already destroyed, or no VM: 0 and nothing happens.
 */
export function acrnVmDestroy(vm: AcrnVm): number {
  if (vm.vmid === ACRN_INVALID_VMID || vm.flags & DESTROYED) return 0
  vm.flags |= DESTROYED
  const ret = vm.module.hcall.destroyVm(vm.vmidArg)
  if (ret < 0) {
    vm.flags &= ~DESTROYED
    return ret
  }
  releaseResources(vm, true)
  vm.setVmid(ACRN_INVALID_VMID)
  return 0
}

/**
 * Steps 3-8 of §2.3: off the dispatch list, ioeventfds, irqfds, clients, pages, records.
 * `unpin`: the hypervisor let the VM go; otherwise (a VM orphaned at release) the pages
 * stay pinned, as the kernel leaks them: the guest may still be using them.
 */
function releaseResources(vm: AcrnVm, unpin: boolean): void {
  const list = vm.module.vmList
  const i = list.indexOf(vm)
  if (i >= 0) list.splice(i, 1)
  ioeventfdDeinit(vm)
  irqfdDeinit(vm)
  ioreqDeinit(vm, unpin)
  if (unpin && vm.monitorPage !== null) vm.module.hv.memory.unpin([vm.monitorPage])
  vm.monitorPage = null
  unmapAll(vm, unpin)
}

/**
 * release() of the file (§1.5): destroy, ignoring the result, then free the object. The
 * kernel frees it even when the destroy failed, leaving a dangling entry on the VM list
 * and the pins leaked; the simulation cannot model a use-after-free, so it unhooks the
 * object instead. The hypervisor VM is orphaned either way: nothing can reach it again.
 */
export function acrnVmRelease(vm: AcrnVm): void {
  acrnVmDestroy(vm)
  if (
    vm.module.vmList.includes(vm) ||
    vm.defaultClient ||
    vm.clients.length > 0 ||
    vm.irqfds.length > 0
  ) {
    releaseResources(vm, false)
  }
  vm.setVmid(ACRN_INVALID_VMID)
}
