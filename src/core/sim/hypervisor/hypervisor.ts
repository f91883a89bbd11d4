// The simulated ACRN hypervisor (Appendix A). HSM reaches it only through
// `hypercall(id, p1, p2)`, the VMCALL of §8: the id, RDI and RSI, a signed result in RAX.
// Pointers in p1/p2 are Service-VM physical addresses of kernel buffers or pinned pages,
// resolved through HostMemory. The guest side (`io.access`) and the host side
// (`passthrough.physicalInterrupt`) are the only other ways in.

import { Hypercall, ACRN_INVALID_VMID } from '../../abi/constants.js'
import { Errno } from '../../abi/errno.js'
import { offsetOf } from '../../abi/layout.js'
import { acrn_msi_entry, vm_memory_region_batch, vm_memory_region_op } from '../../abi/structs.js'
import { applyRegionOps, type RegionOp } from './ept.js'
import { defineInventory, type HostInventory } from './inventory.js'
import { IoreqEmulator } from './io.js'
import { HostMemory } from './memory.js'
import { Passthrough } from './passthrough.js'
import type { CpuChoice } from './vm-execution.js'
import { hcallGetCpuPmState } from './pm.js'
import {
  HvVcpu,
  HvVm,
  hcallCreateVm,
  hcallDestroyVm,
  hcallPauseVm,
  hcallResetVm,
  hcallSetVcpuRegs,
  hcallStartVm,
} from './vm.js'

const BATCH_VMID = offsetOf(vm_memory_region_batch, 'vmid')
const BATCH_REGIONS_NUM = offsetOf(vm_memory_region_batch, 'regions_num')
const BATCH_REGIONS_GPA = offsetOf(vm_memory_region_batch, 'regions_gpa')
const OP_TYPE = offsetOf(vm_memory_region_op, 'type')
const OP_ATTR = offsetOf(vm_memory_region_op, 'attr')
const OP_GPA = offsetOf(vm_memory_region_op, 'user_vm_pa')
const OP_HPA = offsetOf(vm_memory_region_op, 'service_vm_pa')
const OP_SIZE = offsetOf(vm_memory_region_op, 'size')
const MSI_ADDR = offsetOf(acrn_msi_entry, 'msi_addr')
const MSI_DATA = offsetOf(acrn_msi_entry, 'msi_data')
const HYPERCALL_BASE = 0x8000_0000

export class Hypervisor {
  readonly inventory: HostInventory
  readonly memory: HostMemory
  readonly io: IoreqEmulator
  readonly passthrough: Passthrough
  /** The Service VM (vmid 0): running on every pCPU, only a target of PM_GET_CPU_STATE. */
  readonly serviceVm: HvVm
  /** User VM slots, index = vmid (index 0 unused: the Service VM). */
  private readonly slots: HvVm[] = []
  private upcallHandler: (() => void) | null = null
  /** Hypercalls issued, indexed by id - 0x80000000 (§8 ids all fall in 0x80000000..0x800000ff). */
  readonly hypercallCounts = new Uint32Array(256)

  constructor(
    inventory: HostInventory = defineInventory(),
    /** What executes the vCPUs' guest code, or why nothing does (issue 10). */
    readonly cpu: CpuChoice = { reason: 'no CPU engine was given to the simulation' },
  ) {
    this.inventory = inventory
    this.memory = new HostMemory(inventory)
    this.io = new IoreqEmulator(this)
    this.passthrough = new Passthrough(this)
    this.serviceVm = new HvVm(
      0,
      { name: 'ACRN Service VM', cpuAffinity: (1n << BigInt(inventory.pcpus)) - 1n },
      0,
    )
    this.serviceVm.state = 'running'
    this.serviceVm.name = 'ACRN Service VM'
    for (let pcpu = 0; pcpu < inventory.pcpus; pcpu++)
      this.serviceVm.vcpus.push(new HvVcpu(pcpu, pcpu))
    for (let vmid = 1; vmid < inventory.maxVms; vmid++) {
      const config = inventory.vmSlots.find((s) => s.vmid === vmid)
      const slot = new HvVm(vmid, config, inventory.gsiCount)
      if (config) slot.name = config.name
      this.slots[vmid] = slot
    }
  }

  /** The upcall vector's handler in the Service VM (HSM installs it at module init, §1.1). */
  setUpcallHandler(handler: (() => void) | null): void {
    this.upcallHandler = handler
  }

  /** With no handler installed (dispatch paused, §4.7) the upcall is simply lost. */
  raiseUpcall(): void {
    this.upcallHandler?.()
  }

  /** A User VM slot by vmid (any state). */
  userVm(vmid: number): HvVm | undefined {
    return vmid >= 1 ? this.slots[vmid] : undefined
  }

  *userVms(): IterableIterator<HvVm> {
    for (let vmid = 1; vmid < this.slots.length; vmid++) yield this.slots[vmid]!
  }

  /**
   * A.1: the slot CREATE_VM lands in. A name in use (configured, or taken by a live VM)
   * selects that slot; an unknown or empty name takes the lowest free dynamic slot.
   */
  slotForName(name: string): HvVm | undefined {
    if (name !== '') {
      for (const vm of this.userVms()) {
        if (vm.name === name && (vm.config || vm.state !== 'powered-off')) return vm
      }
    }
    for (const vm of this.userVms()) if (!vm.config && vm.state === 'powered-off') return vm
    return undefined
  }

  /** VMCALL: returns 0 or a negative value (-1 for most failed preconditions, A.1). */
  hypercall(id: number, p1: bigint, p2: bigint): number {
    const index = id - HYPERCALL_BASE
    if (index >= 0 && index < 256) this.hypercallCounts[index]! += 1
    switch (id) {
      case Hypercall.CREATE_VM:
        return hcallCreateVm(this, p1)
      case Hypercall.VM_SET_MEMORY_REGIONS:
        return this.setMemoryRegions(p1)
      case Hypercall.PM_GET_CPU_STATE:
        return hcallGetCpuPmState(this, p1, p2)
    }
    // Every other hypercall targets the User VM whose vmid is in p1.
    // The vmid is the low 16 bits of RDI (no bigint arithmetic for the usual small value).
    const vmid = p1 <= 0xffffn ? Number(p1) : Number(p1 & 0xffffn)
    const vm = vmid === ACRN_INVALID_VMID ? undefined : this.userVm(vmid)
    if (!vm) return -Errno.ENOTTY
    switch (id) {
      case Hypercall.DESTROY_VM:
        return hcallDestroyVm(this, vm)
      case Hypercall.START_VM:
        return hcallStartVm(this, vm)
      case Hypercall.PAUSE_VM:
        return hcallPauseVm(vm)
      case Hypercall.RESET_VM:
        return hcallResetVm(this, vm)
      case Hypercall.SET_VCPU_REGS:
        return hcallSetVcpuRegs(this, vm, p2)
      case Hypercall.SET_IOREQ_BUFFER:
        return this.io.setIoreqBuffer(vm, p2)
      case Hypercall.NOTIFY_REQUEST_FINISH:
        return this.io.notifyRequestFinish(vm, p2)
      case Hypercall.SET_IRQLINE:
        return this.setIrqline(vm, p2)
      case Hypercall.INJECT_MSI:
        return this.injectMsi(vm, p2)
      case Hypercall.VM_INTR_MONITOR:
        return this.passthrough.intrMonitor(vm, p2)
      case Hypercall.SET_PTDEV_INTR:
        return this.passthrough.setPtdevIntr(vm, p2)
      case Hypercall.RESET_PTDEV_INTR:
        return this.passthrough.resetPtdevIntr(vm, p2)
      case Hypercall.ASSIGN_PCIDEV:
        return this.passthrough.assignPcidev(vm, p2)
      case Hypercall.DEASSIGN_PCIDEV:
        return this.passthrough.deassignPcidev(vm, p2)
      case Hypercall.ASSIGN_MMIODEV:
        return this.passthrough.assignMmiodev(vm, p2)
      case Hypercall.DEASSIGN_MMIODEV:
        return this.passthrough.deassignMmiodev(vm, p2)
      case Hypercall.CREATE_VDEV:
        return this.passthrough.createVdev(vm, p2)
      case Hypercall.DESTROY_VDEV:
        return this.passthrough.destroyVdev(vm, p2)
    }
    return -Errno.ENOTTY
  }

  /** HC_SET_IRQLINE(vmid, gsi | op << 32): the GSI must be below the VM's GSI count (A.3). */
  private setIrqline(vm: HvVm, value: bigint): number {
    if (vm.state === 'powered-off') return -1
    const gsi = Number(value & 0xffff_ffffn)
    const op = Number((value >> 32n) & 0xffff_ffffn)
    if (gsi >= vm.irq.gsiCount) return -1
    vm.irq.setIrqline(gsi, op, vm.execution)
    return 0
  }

  /** HC_INJECT_MSI(vmid, address of struct acrn_msi_entry): VM not powered off (A.3). */
  private injectMsi(vm: HvVm, p2: bigint): number {
    if (vm.state === 'powered-off') return -1
    const msi = this.memory.bytes(Number(p2), acrn_msi_entry.size)
    if (!msi) return -1
    const view = new DataView(msi.buffer, msi.byteOffset, acrn_msi_entry.size)
    // Only the low 32 address bits carry base and destination.
    const ret = vm.irq.injectMsi(
      view.getUint32(MSI_ADDR, true),
      view.getUint32(MSI_DATA, true),
      vm.vcpuNum,
    )
    if (ret === 0)
      vm.execution?.injectMsi(view.getBigUint64(MSI_ADDR, true), view.getUint32(MSI_DATA, true))
    return ret
  }

  /** HC_VM_SET_MEMORY_REGIONS(address of vm_memory_region_batch): the vmid is in the batch. */
  private setMemoryRegions(p1: bigint): number {
    const header = this.memory.bytes(Number(p1), vm_memory_region_batch.size)
    if (!header) return -1
    const hv = new DataView(header.buffer, header.byteOffset, header.byteLength)
    const vm = this.userVm(hv.getUint16(BATCH_VMID, true))
    if (!vm) return -Errno.ENOTTY
    if (vm.state === 'powered-off') return -1
    const count = hv.getUint32(BATCH_REGIONS_NUM, true)
    const opBytes = this.memory.bytes(
      Number(hv.getBigUint64(BATCH_REGIONS_GPA, true)),
      count * vm_memory_region_op.size,
    )
    if (!opBytes) return -1
    const view = new DataView(opBytes.buffer, opBytes.byteOffset, opBytes.byteLength)
    const ops: RegionOp[] = []
    for (let i = 0; i < count; i++) {
      const at = i * vm_memory_region_op.size
      ops.push({
        type: view.getUint32(at + OP_TYPE, true),
        attr: view.getUint32(at + OP_ATTR, true),
        gpa: view.getBigUint64(at + OP_GPA, true),
        hpa: view.getBigUint64(at + OP_HPA, true),
        size: view.getBigUint64(at + OP_SIZE, true),
      })
    }
    const ret = applyRegionOps(
      vm.ept,
      ops,
      (pa, size) => this.memory.isValidServiceRange(pa, size),
      this.memory.limit,
    )
    // the ops before a failed one stay applied, so the engine follows either way
    vm.execution?.memoryChanged()
    return ret
  }
}
