// The HSM misc device (drivers/virt/acrn/hsm.c; spec §1, §7, §10): module state, open
// and release of /dev/acrn_hsm, and the ioctl switch with its "no VM yet" gate. The
// pass-through, interrupt and PM ioctls, which are a copy and one hypercall each, are
// here too, as in the kernel.

import {
  ACRN_INVALID_VMID,
  Hypercall,
  IoreqType,
  PmCmd,
  PMCMD_TYPE_MASK,
  VmFlag,
} from '../../abi/constants.js'
import { Errno } from '../../abi/errno.js'
import { Ioctl } from '../../abi/ioctls.js'
import { offsetOf, type Layout } from '../../abi/layout.js'
import {
  acrn_cstate_data,
  acrn_mmiodev,
  acrn_msi_entry,
  acrn_pcidev,
  acrn_pstate_data,
  acrn_ptdev_irq,
  acrn_regs,
  acrn_vcpu_regs,
  acrn_vdev,
} from '../../abi/structs.js'
import type { IoctlArg } from '../../hsm-process.js'
import type { Hypervisor } from '../hypervisor/hypervisor.js'
import { OpenFile } from '../kernel/file.js'
import type { SimKernel } from '../kernel/kernel.js'
import type { SimProcess } from '../kernel/process.js'
import { copyFromUser, copyToUser } from '../kernel/uaccess.js'
import { Work, WorkQueue } from '../kernel/workqueue.js'
import type { IoreqLane } from '../lane.js'
import { Hypercalls } from './hypercall.js'
import { ioeventfdIoctl } from './ioeventfd.js'
import {
  attachIoreqClient,
  clearVmIoreq,
  createIoreqClient,
  destroyIoreqClient,
  ioreqDispatch,
  ioreqLaneAttach,
  notifyRequestFinish,
} from './ioreq.js'
import { irqfdIoctl } from './irqfd.js'
import { setMemseg, unsetMemseg } from './mm.js'
import { acrnVmCreate, acrnVmDestroy, acrnVmRelease, AcrnVm, DESTROYED } from './vm.js'

export const HSM_DEVICE = '/dev/acrn_hsm'

/** Module-wide state: the global VM list (newest first) and the dispatch work item. */
export class HsmModule {
  readonly vmList: AcrnVm[] = []
  readonly hcall: Hypercalls
  private readonly ioreqWq = new WorkQueue('ioreq_wq')
  private readonly dispatchWork: Work

  /** Module init (§1.1): register the device and install the upcall handler. */
  constructor(
    readonly kernel: SimKernel,
    readonly hv: Hypervisor,
    node: { readonly uid?: number; readonly mode?: number } = {},
  ) {
    this.hcall = new Hypercalls(hv)
    this.dispatchWork = new Work(() => ioreqDispatch(this))
    // A misc device without a mode: devtmpfs makes it 0600 root:root (§1.3).
    kernel.registerDevice(HSM_DEVICE, {
      uid: node.uid ?? 0,
      mode: node.mode ?? 0o600,
      open: () => new HsmFile(this),
    })
    hv.setUpcallHandler(this.upcall)
  }

  /** The upcall handler: queue the one dispatch work item (§4.3 steps 1-2). */
  private readonly upcall = (): void => {
    this.ioreqWq.queue(this.dispatchWork)
  }

  /** Client destroy pauses dispatch globally: no handler, the queue drained (§4.7). */
  pauseDispatch(): void {
    this.hv.setUpcallHandler(null)
    this.ioreqWq.flush()
  }

  /** ...and resumes with one run that rescans every VM (§4.8). */
  resumeDispatch(): void {
    this.hv.setUpcallHandler(this.upcall)
    this.ioreqWq.queue(this.dispatchWork)
  }
}

/** Read-only view of an HSM fd's state (`SimProcess.hsmState`). */
export interface HsmFileState {
  /** null when the fd has no VM (vmid 0xFFFF). */
  readonly vmid: number | null
  readonly vcpuNum: number
  readonly destroyed: boolean
  readonly clearing: boolean
  /** On the global list the dispatcher walks. */
  readonly dispatched: boolean
  readonly ioreqBuffer: bigint | null
  readonly pciConfAddr: number
  /** lane: served through a shimmed program's lane (sim/lane.ts). */
  readonly defaultClient: { readonly pending: number; readonly lane: boolean } | null
  readonly kernelClients: ReadonlyArray<{
    readonly name: string
    readonly pending: number
    readonly ranges: number
  }>
  readonly ioeventfds: ReadonlyArray<{
    readonly addr: bigint
    readonly len: number
    readonly pio: boolean
    readonly datamatch: boolean
    readonly data: bigint
  }>
  readonly irqfds: ReadonlyArray<{ readonly msiAddr: bigint; readonly msiData: bigint }>
  /** RAM records in use, and taken over the object's life (the 256 limit counts these). */
  readonly ramMappings: number
  readonly mappingCount: number
  readonly monitorPage: bigint | null
}

/** An open /dev/acrn_hsm: its own VM object (§1.4). */
export class HsmFile extends OpenFile {
  readonly kind = 'hsm'
  readonly vm: AcrnVm

  constructor(module: HsmModule) {
    super()
    this.vm = new AcrnVm(module)
  }

  override ioctl(proc: SimProcess, request: number, arg: IoctlArg): number | Promise<number> {
    const vm = this.vm
    // §1.6: with no VM, everything but CREATE_VM is EINVAL, unknown commands included.
    if (vm.vmid === ACRN_INVALID_VMID && request !== Ioctl.CREATE_VM) return -Errno.EINVAL
    const hcall = vm.module.hcall
    switch (request) {
      case Ioctl.CREATE_VM:
        return acrnVmCreate(vm, proc, arg)
      case Ioctl.DESTROY_VM:
        return acrnVmDestroy(vm)
      // §2.5: the argument is ignored; the hypervisor's answer passes through.
      case Ioctl.START_VM:
        return hcall.startVm(vm.vmidArg)
      case Ioctl.PAUSE_VM:
        return hcall.pauseVm(vm.vmidArg)
      case Ioctl.RESET_VM:
        return hcall.resetVm(vm.vmidArg)
      case Ioctl.SET_VCPU_REGS:
        return setVcpuRegs(vm, proc, arg)
      case Ioctl.SET_MEMSEG:
        return setMemseg(vm, proc, arg)
      case Ioctl.UNSET_MEMSEG:
        return unsetMemseg(vm, proc, arg)
      case Ioctl.INJECT_MSI:
        return withKernelCopy(vm, proc, arg, acrn_msi_entry, (pa) =>
          hcall.injectMsi(vm.vmidArg, BigInt(pa)),
        )
      case Ioctl.VM_INTR_MONITOR:
        return vmIntrMonitor(vm, proc, arg)
      case Ioctl.SET_IRQLINE:
        // §7.1: the argument is the value itself; nothing is validated here.
        return hcall.setIrqline(vm.vmidArg, valueArg(arg, 'SET_IRQLINE'))
      case Ioctl.CREATE_IOREQ_CLIENT:
        return createIoreqClient(vm)
      case Ioctl.ATTACH_IOREQ_CLIENT:
        return attachIoreqClient(vm, proc)
      case Ioctl.DESTROY_IOREQ_CLIENT:
        return destroyIoreqClient(vm)
      case Ioctl.NOTIFY_REQUEST_FINISH:
        return notifyRequestFinish(vm, proc, arg)
      case Ioctl.CLEAR_VM_IOREQ:
        return clearVmIoreq(vm)
      case Ioctl.SET_PTDEV_INTR:
        return passStruct(vm, proc, arg, acrn_ptdev_irq, Hypercall.SET_PTDEV_INTR)
      case Ioctl.RESET_PTDEV_INTR:
        return passStruct(vm, proc, arg, acrn_ptdev_irq, Hypercall.RESET_PTDEV_INTR)
      case Ioctl.ASSIGN_PCIDEV:
        return passStruct(vm, proc, arg, acrn_pcidev, Hypercall.ASSIGN_PCIDEV)
      case Ioctl.DEASSIGN_PCIDEV:
        return passStruct(vm, proc, arg, acrn_pcidev, Hypercall.DEASSIGN_PCIDEV)
      case Ioctl.ASSIGN_MMIODEV:
        return passStruct(vm, proc, arg, acrn_mmiodev, Hypercall.ASSIGN_MMIODEV)
      case Ioctl.DEASSIGN_MMIODEV:
        return passStruct(vm, proc, arg, acrn_mmiodev, Hypercall.DEASSIGN_MMIODEV)
      case Ioctl.CREATE_VDEV:
        return passStruct(vm, proc, arg, acrn_vdev, Hypercall.CREATE_VDEV)
      case Ioctl.DESTROY_VDEV:
        return passStruct(vm, proc, arg, acrn_vdev, Hypercall.DESTROY_VDEV)
      case Ioctl.PM_GET_CPU_STATE:
        return pmGetCpuState(vm, proc, arg)
      case Ioctl.IOEVENTFD:
        return ioeventfdIoctl(vm, proc, arg)
      case Ioctl.IRQFD:
        return irqfdIoctl(vm, proc, arg)
      default:
        // Matched on all 32 bits: a known number with another size is unknown too.
        return -Errno.ENOTTY
    }
  }

  /** A shimmed program's lane for this VM's default client (ioreqLaneAttach). */
  attachLane(bytes: Uint8Array): IoreqLane | number {
    return ioreqLaneAttach(this.vm, bytes)
  }

  /** Last close (§1.5). */
  protected release(): void {
    acrnVmRelease(this.vm)
  }

  override inspect(): HsmFileState {
    const vm = this.vm
    return Object.freeze({
      vmid: vm.vmid === ACRN_INVALID_VMID ? null : vm.vmid,
      vcpuNum: vm.vcpuNum,
      destroyed: (vm.flags & DESTROYED) !== 0,
      clearing: (vm.flags & (1 << VmFlag.CLEARING_IOREQ)) !== 0,
      dispatched: vm.module.vmList.includes(vm),
      ioreqBuffer: vm.ioreqPage ? BigInt(vm.ioreqPage.pa) : null,
      pciConfAddr: vm.pciConfAddr >>> 0,
      defaultClient: vm.defaultClient
        ? { pending: vm.defaultClient.pending, lane: vm.defaultClient.lane?.on ?? false }
        : null,
      kernelClients: vm.clients.map((c) => ({
        name: c.name,
        pending: c.pending,
        ranges: c.ranges.size,
      })),
      ioeventfds: vm.ioeventfds.list().map((p) => ({
        addr: p.addr,
        len: p.length,
        pio: p.type === IoreqType.PORTIO,
        datamatch: !p.wildcard,
        data: p.data,
      })),
      irqfds: vm.irqfds.map((i) => ({ msiAddr: i.msiAddr, msiData: i.msiData })),
      ramMappings: vm.mappings.length,
      mappingCount: vm.mappingCount,
      monitorPage: vm.monitorPage === null ? null : BigInt(vm.monitorPage),
    })
  }
}

/** The value of a value-taking ioctl (§11.12): a bigint, or 0 for no argument. */
function valueArg(arg: IoctlArg, name: string): bigint {
  if (arg instanceof Uint8Array) {
    throw new TypeError(`${name} takes its argument by value: pass a bigint, not a buffer`)
  }
  return BigInt.asUintN(64, arg ?? 0n)
}

/** memdup_user the struct, run `call` with the copy's address, free the copy. */
function withKernelCopy(
  vm: AcrnVm,
  proc: SimProcess,
  arg: IoctlArg,
  layout: Layout,
  call: (pa: number, bytes: Uint8Array) => number,
): number {
  const user = copyFromUser(proc.mm, arg, layout.size)
  if (typeof user === 'number') return user
  const memory = vm.module.hv.memory
  const kcopy = memory.kmemdup(user)
  try {
    return call(kcopy.pa, kcopy.bytes)
  } finally {
    memory.kfree(kcopy.pa)
  }
}

/** §7.4-§7.7: copy the struct and pass it to the hypercall with the vmid; no validation. */
function passStruct(
  vm: AcrnVm,
  proc: SimProcess,
  arg: IoctlArg,
  layout: Layout,
  id: number,
): number {
  return withKernelCopy(vm, proc, arg, layout, (pa) =>
    vm.module.hcall.withStruct(id, vm.vmidArg, pa),
  )
}

// Reserved fields of acrn_vcpu_regs that must be zero (§7.9).
const REGS = offsetOf(acrn_vcpu_regs, 'vcpu_regs')
const VCPU_REGS_RESERVED: ReadonlyArray<readonly [number, number]> = [
  [offsetOf(acrn_vcpu_regs, 'reserved'), 6],
  [REGS + offsetOf(acrn_regs, 'reserved_32'), 12],
  [REGS + offsetOf(acrn_regs, 'reserved_64'), 32],
  [REGS + offsetOf(acrn_regs, 'gdt.reserved'), 6],
  [REGS + offsetOf(acrn_regs, 'idt.reserved'), 6],
]

/** SET_VCPU_REGS (§7.9): every reserved field zero, then the hypervisor decides. */
function setVcpuRegs(vm: AcrnVm, proc: SimProcess, arg: IoctlArg): number {
  return withKernelCopy(vm, proc, arg, acrn_vcpu_regs, (pa, bytes) => {
    for (const [offset, length] of VCPU_REGS_RESERVED) {
      for (let i = offset; i < offset + length; i++) if (bytes[i] !== 0) return -Errno.EINVAL
    }
    return vm.module.hcall.setVcpuRegs(vm.vmidArg, pa)
  })
}

/**
 * VM_INTR_MONITOR (§7.3): the argument is a user address; the page holding it is pinned
 * and its start handed over. On success the previous monitor page is released.
 */
function vmIntrMonitor(vm: AcrnVm, proc: SimProcess, arg: IoctlArg): number {
  const address = valueArg(arg, 'VM_INTR_MONITOR')
  if (address > BigInt(Number.MAX_SAFE_INTEGER)) return -Errno.EFAULT
  const pages = proc.mm.pinPages(Number(address), 1)
  if (!pages) return -Errno.EFAULT
  const ret = vm.module.hcall.vmIntrMonitor(vm.vmidArg, pages[0]!)
  if (ret < 0) {
    proc.mm.unpinPages(pages)
    return ret
  }
  if (vm.monitorPage !== null) vm.module.hv.memory.unpin([vm.monitorPage])
  vm.monitorPage = pages[0]!
  return 0
}

const PM_BUFFER: Readonly<Record<number, number>> = {
  [PmCmd.GET_PX_CNT]: 8,
  [PmCmd.GET_PX_DATA]: acrn_pstate_data.size,
  [PmCmd.GET_CX_CNT]: 8,
  [PmCmd.GET_CX_DATA]: acrn_cstate_data.size,
}

/**
 * PM_GET_CPU_STATE (§7.8): the u64 cmd in, up to 48 bytes out through the same pointer.
 * An unknown type returns 0 without a hypercall; the hypercall's first argument is cmd.
 */
function pmGetCpuState(vm: AcrnVm, proc: SimProcess, arg: IoctlArg): number {
  const user = copyFromUser(proc.mm, arg, 8)
  if (typeof user === 'number') return user
  const cmd = new DataView(user.buffer).getBigUint64(0, true)
  const size = PM_BUFFER[Number(cmd & BigInt(PMCMD_TYPE_MASK))]
  if (size === undefined) return 0
  const memory = vm.module.hv.memory
  const kbuf = memory.kzalloc(size)
  try {
    const ret = vm.module.hcall.pmGetCpuState(cmd, kbuf.pa)
    if (ret < 0) return ret
    return copyToUser(proc.mm, arg, kbuf.bytes)
  } finally {
    memory.kfree(kbuf.pa)
  }
}
