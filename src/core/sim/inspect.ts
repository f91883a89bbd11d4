// Read-only inspection of the simulated hypervisor: what `platform.inspect` returns.
// Every answer is a frozen snapshot built on request; nothing here changes state, and
// nothing on a request's hot path depends on it.

import { Hypercall } from '../abi/constants.js'
import { decode, type StructValue } from '../abi/layout.js'
import { acrn_regs } from '../abi/structs.js'
import type { EptRegion } from './hypervisor/ept.js'
import type { Hypervisor } from './hypervisor/hypervisor.js'
import type { HostInventory } from './hypervisor/inventory.js'
import {
  processedIndex,
  REQ_ADDRESS,
  REQ_DIRECTION,
  REQ_SIZE,
  REQ_VALUE,
  SLOT_KERNEL_HANDLED,
  SLOT_POLLING,
  SLOT_SIZE,
  SLOT_TYPE,
} from './hypervisor/io.js'
import type { GsiState, MsiDelivery } from './hypervisor/irqchip.js'
import type { PassthroughTables } from './hypervisor/passthrough.js'
import type { HvVm, VmState } from './hypervisor/vm.js'
import type { VcpuExecution, VcpuPosition } from './hypervisor/vm-execution.js'

export interface VcpuInfo {
  readonly id: number
  /** The pCPU it runs on (one vCPU per pCPU of the affinity). */
  readonly pcpu: number
  /** A trapped access is waiting for its I/O request to complete. */
  readonly requestOutstanding: boolean
}

export interface VmInfo {
  readonly vmid: number
  /** The 16 "uuid" bytes of CREATE_VM read as a name (A.1); '' for none. */
  readonly name: string
  readonly state: VmState
  readonly vcpuNum: number
  readonly vmFlag: bigint
  readonly cpuAffinity: bigint
  /** GUEST_FLAG_IO_COMPLETION_POLLING: completion without NOTIFY hypercalls (§4.4). */
  readonly pollingMode: boolean
  /** Physical address of the ioreq page set by HC_SET_IOREQ_BUFFER, or null. */
  readonly ioreqBuffer: bigint | null
  readonly vcpus: readonly VcpuInfo[]
}

/** `processed` by name; INVALID for a value no state has (userspace may write anything). */
export type SlotStateName = 'PENDING' | 'COMPLETE' | 'PROCESSING' | 'FREE' | 'INVALID'

/** One ioreq slot as the hypervisor sees it in the shared page (§4.1). */
export interface SlotInfo {
  readonly vcpu: number
  readonly state: SlotStateName
  readonly processed: number
  readonly type: number
  readonly completionPolling: number
  readonly kernelHandled: number
  readonly direction: number
  readonly address: bigint
  readonly size: bigint
  /** The u64 at the value offset (the low 32 bits for PIO and PCICFG). */
  readonly value: bigint
}

export interface IntrMonitorState {
  /** The injection delay set by INTR_CMD_DELAY_INT, in ms (0: none). */
  readonly delayMs: bigint
  /** (physical IRQ, count) of each pass-through interrupt, as GET_DATA reports them. */
  readonly counts: ReadonlyArray<{ readonly pirq: number; readonly count: number }>
}

export interface SimInspector {
  /** The host inventory the platform was built with. */
  host(): HostInventory
  /** Every User VM that is not powered off, by vmid. */
  vms(): VmInfo[]
  vm(vmid: number): VmInfo | undefined
  /** A vCPU's registers (struct acrn_regs, decoded) as last set or reset. */
  vcpuRegs(vmid: number, vcpu: number): StructValue | undefined
  /** The VM's EPT mappings, by guest address; adjacent pages of one segment merge. */
  ept(vmid: number): EptRegion[]
  /**
   * vIOAPIC and vPIC line levels and assertion counts; while guest code executes, also
   * how many GSIs reach the guest (`enginePins`: the engine's IOAPIC, 24 on KVM).
   */
  gsi(vmid: number): (GsiState & { readonly enginePins?: number }) | undefined
  /** MSIs delivered, per vCPU and vector. */
  msi(vmid: number): MsiDelivery[]
  /** PCI functions, MMIO devices, INTx remappings and vdevs, with their VMs. */
  passthrough(): PassthroughTables
  intrMonitor(vmid: number): IntrMonitorState | undefined
  /** The VM's ioreq slots 0..vcpu_num-1 (empty before HC_SET_IOREQ_BUFFER). */
  ioreqSlots(vmid: number): SlotInfo[]
  /** Kernel buffers currently allocated (every ioctl frees its copies: a leak check). */
  kernelBuffers(): number
  /**
   * Host RAM no process maps and no VM pins, in bytes: the largest free run (a mapping's
   * frames are contiguous). Memory a process unmaps or leaves at exit comes back: a leak check.
   */
  freeRam(): number
  /**
   * Each vCPU executing guest code: state, exits by reason, a fault that stopped it (empty
   * before START_VM or without an engine). It changes as the guest runs, so it is kept out
   * of `vm()`, which only ioctls change.
   */
  vcpuExecution(vmid: number): VcpuExecution[]
  /**
   * Each executing vCPU's mode and RIP (the engine stops it between two instructions to
   * read them): for `vm show`, not for views that poll.
   */
  vcpuPositions(vmid: number): (VcpuPosition | undefined)[]
  /** The last interrupt the engine could not deliver to the VM, and why (the model counted it). */
  executionError(vmid: number): string | undefined
  /** Whether its default client's program is served through a lane (lane.ts). */
  lane(vmid: number): boolean
  /** The engine executing guest code, or why vCPUs execute nothing (one line). */
  cpu(): { readonly engine: string } | { readonly reason: string }
  /** How many times each hypercall was issued since the platform started, by §8 name. */
  hypercalls(): Readonly<Record<string, number>>
}

// Indexed by the state value (§4.1): PENDING 0, COMPLETE 1, PROCESSING 2, FREE 3.
const STATE_NAMES: readonly SlotStateName[] = ['PENDING', 'COMPLETE', 'PROCESSING', 'FREE']

function live(hv: Hypervisor, vmid: number): HvVm | undefined {
  const vm = hv.userVm(vmid)
  return vm && vm.state !== 'powered-off' ? vm : undefined
}

function vmInfo(vm: HvVm): VmInfo {
  return Object.freeze({
    vmid: vm.vmid,
    name: vm.name,
    state: vm.state,
    vcpuNum: vm.vcpuNum,
    vmFlag: vm.vmFlag,
    cpuAffinity: vm.cpuAffinity,
    pollingMode: vm.polling,
    ioreqBuffer: vm.ioreq ? BigInt(vm.ioreq.pa) : null,
    vcpus: Object.freeze(
      vm.vcpus.map((v) =>
        Object.freeze({
          id: v.id,
          pcpu: v.pcpu,
          requestOutstanding: v.busy || (vm.lane?.owns(v.id) ?? false),
        }),
      ),
    ),
  })
}

export function createInspector(hv: Hypervisor): SimInspector {
  return Object.freeze({
    host: () => hv.inventory,
    freeRam: () => hv.memory.framesLeft(),
    vcpuExecution: (vmid: number) => live(hv, vmid)?.execution?.status() ?? [],
    vcpuPositions: (vmid: number) => live(hv, vmid)?.execution?.positions() ?? [],
    executionError: (vmid: number) => live(hv, vmid)?.execution?.engineError,
    lane: (vmid: number) => live(hv, vmid)?.lane?.on ?? false,
    cpu: () => (hv.cpu.engine ? { engine: hv.cpu.engine.name } : { reason: hv.cpu.reason! }),
    vms: () => [...hv.userVms()].filter((vm) => vm.state !== 'powered-off').map(vmInfo),
    vm: (vmid: number) => {
      const vm = live(hv, vmid)
      return vm && vmInfo(vm)
    },
    vcpuRegs: (vmid: number, vcpu: number) => {
      const v = live(hv, vmid)?.vcpus[vcpu]
      return v && decode(acrn_regs, v.regs)
    },
    ept: (vmid: number) => live(hv, vmid)?.ept.list() ?? [],
    gsi: (vmid: number) => {
      const vm = live(hv, vmid)
      if (!vm) return undefined
      const state = vm.irq.gsiState()
      const pins = vm.execution?.ioapicPins
      return pins === undefined ? state : Object.freeze({ ...state, enginePins: pins })
    },
    msi: (vmid: number) => live(hv, vmid)?.irq.msiDeliveries() ?? [],
    passthrough: () => hv.passthrough.tables(),
    intrMonitor: (vmid: number) => {
      const vm = live(hv, vmid)
      if (!vm) return undefined
      return Object.freeze({
        delayMs: vm.intrDelayMs,
        counts: Object.freeze(
          vm.intx.map((e) => Object.freeze({ pirq: e.physPin, count: e.count })),
        ),
      })
    },
    ioreqSlots: (vmid: number) => {
      const vm = live(hv, vmid)
      const page = vm?.ioreq
      if (!vm || !page) return []
      return vm.vcpus.map((v) => {
        const base = v.id * SLOT_SIZE
        const processed = Atomics.load(page.i32, processedIndex(v.id))
        return Object.freeze({
          vcpu: v.id,
          state: STATE_NAMES[processed] ?? 'INVALID',
          processed,
          type: page.dv.getUint32(base + SLOT_TYPE, true),
          completionPolling: page.dv.getUint32(base + SLOT_POLLING, true),
          kernelHandled: page.dv.getUint32(base + SLOT_KERNEL_HANDLED, true),
          direction: page.dv.getUint32(base + REQ_DIRECTION, true),
          address: page.dv.getBigUint64(base + REQ_ADDRESS, true),
          size: page.dv.getBigUint64(base + REQ_SIZE, true),
          value: page.dv.getBigUint64(base + REQ_VALUE, true),
        })
      })
    },
    kernelBuffers: () => hv.memory.kernelBuffers,
    hypercalls: () => {
      const counts: Record<string, number> = {}
      for (const [name, id] of Object.entries(Hypercall))
        counts[name] = hv.hypercallCounts[id - 0x8000_0000]!
      return Object.freeze(counts)
    },
  })
}
