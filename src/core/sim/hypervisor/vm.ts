// VMs and vCPUs as the hypervisor keeps them, and the lifecycle hypercalls with the
// preconditions of Appendix A.2/A.3. A failed precondition returns -1, which userspace
// sees as EPERM (§0, §11.14).

import { ACRN_INVALID_VMID, MAX_VCPUS_PER_VM } from '../../abi/constants.js'
import { encode, offsetOf } from '../../abi/layout.js'
import { acrn_regs, acrn_vcpu_regs, acrn_vm_creation } from '../../abi/structs.js'
import { Ept } from './ept.js'
import type { Hypervisor } from './hypervisor.js'
import { IrqChip } from './irqchip.js'
import { VmExecution } from './vm-execution.js'
import type { IoreqLane } from '../lane.js'
import type { AssignedMmioDev, AssignedPciDev, IntxRemap, VirtualDevice } from './passthrough.js'

export type VmState = 'powered-off' | 'created' | 'running' | 'paused'

/** acrn-hypervisor GUEST_FLAG_IO_COMPLETION_POLLING: the vCPU polls for completion (§4.4). */
export const GUEST_FLAG_IO_COMPLETION_POLLING = 1n << 2n

/** The VM's ioreq page, viewed from the hypervisor side (§4.1). */
export interface IoreqPage {
  readonly pa: number
  readonly u8: Uint8Array
  readonly dv: DataView
  readonly i32: Int32Array
}

export class HvVcpu {
  /** acrn_regs bytes as last set (or the reset state). */
  readonly regs = new Uint8Array(acrn_regs.size)
  /** The trapped access waiting for its I/O request to complete, if any. */
  busy = false
  busyType = 0
  busyWrite = false
  busySize = 0
  /** performance.now() when the request went PENDING (for the trace's latency). */
  busySince = 0
  resolve: ((value: bigint) => void) | null = null
  reject: ((error: Error) => void) | null = null

  constructor(
    readonly id: number,
    readonly pcpu: number,
  ) {
    resetRegs(this.regs)
  }
}

export class HvVm {
  state: VmState = 'powered-off'
  name = ''
  vcpus: HvVcpu[] = []
  vmFlag = 0n
  cpuAffinity = 0n
  polling = false
  ioreq: IoreqPage | null = null
  readonly ept = new Ept()
  irq: IrqChip
  readonly pci = new Map<number, AssignedPciDev>()
  readonly mmio: AssignedMmioDev[] = []
  readonly intx: IntxRemap[] = []
  readonly vdevs = new Map<bigint, VirtualDevice>()
  intrDelayMs = 0n
  /** Its vCPUs executing guest code, from START_VM (null without a CPU engine). */
  execution: VmExecution | null = null
  /** The lane of its default client's program (lane.ts), if one is served through one. */
  lane: IoreqLane | null = null

  constructor(
    readonly vmid: number,
    /** The slot belongs to a configured VM of the scenario (its name stays reserved). */
    readonly config: { readonly name: string; readonly cpuAffinity: bigint } | undefined,
    gsiCount: number,
  ) {
    this.irq = new IrqChip(gsiCount)
  }

  get vcpuNum(): number {
    return this.vcpus.length
  }
}

// --- vCPU registers --------------------------------------------------------------

/** The x86 power-on state: real mode at CS:IP F000:FFF0 with CS base FFFF0000. */
function resetRegs(regs: Uint8Array): void {
  regs.fill(0)
  encode(
    acrn_regs,
    {
      rip: 0xfff0n,
      cs_base: 0xffff0000n,
      cr0: 0x60000010n,
      rflags: 0x2n,
      cs_ar: 0x9b,
      cs_limit: 0xffff,
      cs_sel: 0xf000,
      gdt: { limit: 0xffff },
      idt: { limit: 0xffff },
    },
    regs,
  )
}

const CR0_PE = 1n << 0n
const CR0_NW = 1n << 29n
const CR0_CD = 1n << 30n
const CR0_PG = 1n << 31n
// PE MP EM TS ET NE WP AM NW CD PG
const CR0_DEFINED =
  0x1n | 0x2n | 0x4n | 0x8n | 0x10n | 0x20n | (1n << 16n) | (1n << 18n) | CR0_NW | CR0_CD | CR0_PG
// Bits 0-14, 16-18, 20-24 exist; VMXE (13) and SMXE (14) are not offered to guests.
const CR4_ALLOWED = ((1n << 25n) - 1n) & ~(1n << 15n) & ~(1n << 19n) & ~(1n << 13n) & ~(1n << 14n)

/** A.3 "valid CR0/CR4" (the checks acrn-hypervisor makes when it loads guest state). */
export function isValidCr0Cr4(cr0: bigint, cr4: bigint): boolean {
  if ((cr0 & ~CR0_DEFINED) !== 0n) return false
  if ((cr0 & CR0_PG) !== 0n && (cr0 & CR0_PE) === 0n) return false
  if ((cr0 & CR0_NW) !== 0n && (cr0 & CR0_CD) === 0n) return false
  return (cr4 & ~CR4_ALLOWED) === 0n
}

// --- Lifecycle hypercalls (A.2, A.3) -----------------------------------------------------

const CREATION_VMID = offsetOf(acrn_vm_creation, 'vmid')
const CREATION_VCPU_NUM = offsetOf(acrn_vm_creation, 'vcpu_num')
const CREATION_UUID = offsetOf(acrn_vm_creation, 'uuid')
const CREATION_VM_FLAG = offsetOf(acrn_vm_creation, 'vm_flag')
const CREATION_AFFINITY = offsetOf(acrn_vm_creation, 'cpu_affinity')

/** The 16 "uuid" bytes read as a NUL-terminated VM name (A.1). */
function vmName(uuid: Uint8Array): string {
  const end = uuid.indexOf(0)
  return new TextDecoder().decode(uuid.subarray(0, end < 0 ? uuid.length : end))
}

/** HC_CREATE_VM(p1 = address of struct acrn_vm_creation). Writes back vmid and vcpu_num. */
export function hcallCreateVm(hv: Hypervisor, p1: bigint): number {
  const cv = hv.memory.bytes(Number(p1), acrn_vm_creation.size)
  if (!cv) return -1
  const view = new DataView(cv.buffer, cv.byteOffset, cv.byteLength)
  const fail = () => {
    view.setUint16(CREATION_VMID, ACRN_INVALID_VMID, true)
    return -1
  }
  const name = vmName(cv.subarray(CREATION_UUID, CREATION_UUID + 16))
  const slot = hv.slotForName(name)
  // A.2: the slot must be free (powered off).
  if (!slot || slot.state !== 'powered-off') return fail()
  const configured = slot.config?.cpuAffinity ?? hv.inventory.postLaunchedAffinity
  const requested = view.getBigUint64(CREATION_AFFINITY, true)
  // A.2: cpu_affinity must be a subset of the configured one; 0 means the configured one.
  if ((requested & ~configured) !== 0n) return fail()
  const affinity = requested === 0n ? configured : requested
  // One vCPU per pCPU of the affinity, at most 16 (one ioreq slot each, §4.1).
  const vcpus: HvVcpu[] = []
  for (let pcpu = 0; pcpu < 64 && vcpus.length < MAX_VCPUS_PER_VM; pcpu++) {
    if ((affinity >> BigInt(pcpu)) & 1n) vcpus.push(new HvVcpu(vcpus.length, pcpu))
  }
  slot.name = name
  slot.vcpus = vcpus
  slot.vmFlag = view.getBigUint64(CREATION_VM_FLAG, true)
  slot.polling = (slot.vmFlag & GUEST_FLAG_IO_COMPLETION_POLLING) !== 0n
  slot.cpuAffinity = affinity
  slot.ioreq = null
  slot.ept.clear()
  slot.irq = new IrqChip(hv.inventory.gsiCount)
  slot.intrDelayMs = 0n
  slot.state = 'created'
  view.setUint16(CREATION_VMID, slot.vmid, true)
  view.setUint16(CREATION_VCPU_NUM, vcpus.length, true)
  return 0
}

/** HC_START_VM: the VM is CREATED and its ioreq buffer is set; its vCPUs start executing. */
export function hcallStartVm(hv: Hypervisor, vm: HvVm): number {
  if (vm.state !== 'created' || !vm.ioreq) return -1
  vm.state = 'running'
  const engine = hv.cpu.engine
  if (engine) (vm.execution ??= new VmExecution(hv, vm, engine)).start()
  return 0
}

/** HC_PAUSE_VM: any state but powered off; pausing a paused VM succeeds. */
export function hcallPauseVm(vm: HvVm): number {
  if (vm.state === 'powered-off') return -1
  vm.state = 'paused'
  vm.execution?.pause()
  return 0
}

/** HC_RESET_VM: only a PAUSED VM; vCPUs and lines reset, outstanding requests are discarded. */
export function hcallResetVm(hv: Hypervisor, vm: HvVm): number {
  if (vm.state !== 'paused') return -1
  hv.io.discardRequests(vm, 'the VM was reset')
  vm.execution?.reset()
  for (const vcpu of vm.vcpus) resetRegs(vcpu.regs)
  vm.irq.reset()
  vm.state = 'created'
  return 0
}

/** HC_DESTROY_VM: only a PAUSED VM (so closing the fd of a running VM cannot destroy it). */
export function hcallDestroyVm(hv: Hypervisor, vm: HvVm): number {
  if (vm.state !== 'paused') return -1
  hv.io.discardRequests(vm, 'the VM was destroyed')
  vm.execution?.destroy()
  vm.execution = null
  hv.passthrough.releaseAll(vm)
  vm.state = 'powered-off'
  vm.vcpus = []
  vm.ioreq = null
  vm.ept.clear()
  vm.vdevs.clear()
  if (!vm.config) vm.name = ''
  return 0
}

const REGS_VCPU_ID = offsetOf(acrn_vcpu_regs, 'vcpu_id')
const REGS_BODY = offsetOf(acrn_vcpu_regs, 'vcpu_regs')
const REGS_CR0 = REGS_BODY + offsetOf(acrn_regs, 'cr0')
const REGS_CR4 = REGS_BODY + offsetOf(acrn_regs, 'cr4')

/** HC_SET_VCPU_REGS(vmid, address of struct acrn_vcpu_regs). */
export function hcallSetVcpuRegs(hv: Hypervisor, vm: HvVm, p2: bigint): number {
  if (vm.state === 'powered-off' || vm.state === 'running') return -1
  const bytes = hv.memory.bytes(Number(p2), acrn_vcpu_regs.size)
  if (!bytes) return -1
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const vcpuId = view.getUint16(REGS_VCPU_ID, true)
  if (vcpuId >= MAX_VCPUS_PER_VM) return -1
  const vcpu = vm.vcpus[vcpuId]
  if (!vcpu) return -1
  if (!isValidCr0Cr4(view.getBigUint64(REGS_CR0, true), view.getBigUint64(REGS_CR4, true)))
    return -1
  vcpu.regs.set(bytes.subarray(REGS_BODY, REGS_BODY + acrn_regs.size))
  return 0
}
