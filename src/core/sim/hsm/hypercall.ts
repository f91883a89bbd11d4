// The hypercalls HSM issues (drivers/virt/acrn/hypercall.h; spec §8), one method each.
// Arguments are 64-bit register values; pointers are physical addresses of kernel
// buffers. A negative result is the hypervisor's error, passed through unchanged.

import { Hypercall } from '../../abi/constants.js'
import type { Hypervisor } from '../hypervisor/hypervisor.js'

export class Hypercalls {
  constructor(private readonly hv: Hypervisor) {}

  createVm(creation: number): number {
    return this.hv.hypercall(Hypercall.CREATE_VM, BigInt(creation), 0n)
  }

  destroyVm(vmid: bigint): number {
    return this.hv.hypercall(Hypercall.DESTROY_VM, vmid, 0n)
  }

  startVm(vmid: bigint): number {
    return this.hv.hypercall(Hypercall.START_VM, vmid, 0n)
  }

  pauseVm(vmid: bigint): number {
    return this.hv.hypercall(Hypercall.PAUSE_VM, vmid, 0n)
  }

  resetVm(vmid: bigint): number {
    return this.hv.hypercall(Hypercall.RESET_VM, vmid, 0n)
  }

  setVcpuRegs(vmid: bigint, regs: number): number {
    return this.hv.hypercall(Hypercall.SET_VCPU_REGS, vmid, BigInt(regs))
  }

  injectMsi(vmid: bigint, msi: bigint): number {
    return this.hv.hypercall(Hypercall.INJECT_MSI, vmid, msi)
  }

  vmIntrMonitor(vmid: bigint, page: number): number {
    return this.hv.hypercall(Hypercall.VM_INTR_MONITOR, vmid, BigInt(page))
  }

  setIrqline(vmid: bigint, value: bigint): number {
    return this.hv.hypercall(Hypercall.SET_IRQLINE, vmid, value)
  }

  setIoreqBuffer(vmid: bigint, buffer: number): number {
    return this.hv.hypercall(Hypercall.SET_IOREQ_BUFFER, vmid, BigInt(buffer))
  }

  notifyRequestFinish(vmid: bigint, vcpu: bigint): number {
    return this.hv.hypercall(Hypercall.NOTIFY_REQUEST_FINISH, vmid, vcpu)
  }

  setMemoryRegions(batch: number): number {
    return this.hv.hypercall(Hypercall.VM_SET_MEMORY_REGIONS, BigInt(batch), 0n)
  }

  /** The pass-through and vdev calls: (vmid, address of the kernel copy). */
  withStruct(id: number, vmid: bigint, struct: number): number {
    return this.hv.hypercall(id, vmid, BigInt(struct))
  }

  /** Note the first argument: cmd, not the vmid (§7.8). */
  pmGetCpuState(cmd: bigint, buffer: number): number {
    return this.hv.hypercall(Hypercall.PM_GET_CPU_STATE, cmd, BigInt(buffer))
  }
}
