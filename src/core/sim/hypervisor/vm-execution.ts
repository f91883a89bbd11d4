// A running User VM's vCPUs executing guest code on the CPU engine (issue 10). The model
// stays the authority on VM state and ioreq slots: a vCPU's PIO or MMIO exit goes through
// the very trap path of `platform.guestAccess` (slot PENDING, upcall, dispatch, the vCPU
// waiting until COMPLETE, a read's value into its register), and the lifecycle
// hypercalls drive the engine: START_VM runs the vCPUs from the registers SET_VCPU_REGS
// left, PAUSE_VM stops them between instructions, RESET_VM returns them to the reset
// state, DESTROY_VM ends their threads. Interrupts go to the engine's interrupt
// controllers, which stand for ACRN's vLAPIC, vIOAPIC and vPIC (those never reach an
// ioreq client on ACRN either).

import { MemAccess } from '../../abi/constants.js'
import { decode } from '../../abi/layout.js'
import { acrn_regs } from '../../abi/structs.js'
import type { IoreqLane } from '../lane.js'
import type { CpuEngine, CpuExit, CpuVm, VcpuStatus } from './cpu/engine.js'
import type { Hypervisor } from './hypervisor.js'
import type { LaneTiming } from './io.js'
import type { HvVm } from './vm.js'

/** A guest memory slot for the engine: guest-physical range -> hsmd's address of its bytes. */
export interface MemorySlot {
  readonly gpa: number
  readonly size: number
  readonly hostAddress: bigint
  readonly readonly: boolean
}

/** What `vm show` tells of a vCPU that executes. */
export interface VcpuExecution extends VcpuStatus {
  /** Why the vCPU stopped for good (triple fault, failed entry), if it did. */
  readonly fault: string | undefined
}

/** Where a vCPU is: its mode and instruction pointer, and the registers that set the mode. */
export interface VcpuPosition {
  /** real (CR0.PE 0), protected (PE, not EFER.LMA) or long (EFER.LMA) */
  readonly mode: 'real' | 'protected' | 'long'
  readonly rip: bigint
  readonly cr0: bigint
  readonly cr3: bigint
  readonly cr4: bigint
  readonly efer: bigint
}

export class VmExecution {
  private cpu: CpuVm | null = null
  /** Synthetic accesses (guestAccess) holding each vCPU between two instructions. */
  private readonly holds: number[] = []
  /** An exit that came while a synthetic access had the vCPU's slot: posted after it. */
  private readonly queued: (CpuExit | null)[] = []
  private readonly faults: (string | undefined)[] = []
  private readonly done: ((value: bigint) => void)[] = []
  private readonly ignore = (): void => {}
  /** The lane the engine's vCPU threads took up (the VM's first while they ran). */
  private boundLane: IoreqLane | null = null
  private readonly laneTiming: LaneTiming = { since: 0, done: 0 }

  constructor(
    private readonly hv: Hypervisor,
    private readonly vm: HvVm,
    private readonly engine: CpuEngine,
  ) {}

  get engineName(): string {
    return this.engine.name
  }

  /** HC_START_VM: load the registers and memory, and run every vCPU. */
  start(): void {
    const vm = this.vm
    if (!this.cpu) {
      this.cpu = this.engine.createVm({
        vcpus: vm.vcpuNum,
        onExit: (vcpu, exit) => this.exit(vcpu, exit),
        onFault: (vcpu, reason) => {
          this.faults[vcpu] = reason
        },
        onLaneDone: (vcpu, slot, base, value, since, done) => {
          const v = vm.vcpus[vcpu]
          const observer = this.hv.io.observer
          if (!v || !observer) return
          this.laneTiming.since = since
          this.laneTiming.done = done
          observer(vm, v, slot, base, value, this.laneTiming)
        },
      })
      this.bindLane()
      for (let id = 0; id < vm.vcpuNum; id++) {
        const cpu = this.cpu
        this.done[id] = (value) => cpu.complete(id, value)
      }
    }
    this.cpu.setMemory(this.slots())
    for (const vcpu of vm.vcpus) this.cpu.setRegs(vcpu.id, vcpu.regs)
    this.faults.length = 0
    this.cpu.run()
  }

  /**
   * The default client's program is now served through the VM's lane (lane.ts): the
   * engine's vCPU threads send it their port I/O, if the engine can.
   */
  laneAttached(): void {
    this.bindLane()
  }

  /** The lane's completions logged so far, to the observer now. */
  drainLaneLog(): void {
    this.cpu?.drainLaneLog?.()
  }

  /**
   * The vCPU threads keep the first lane's page: a later one (a client made again) is
   * served by the model's dispatch, through the same page, with the program's side alike.
   */
  private bindLane(): void {
    const lane = this.vm.lane
    const page = this.vm.ioreq
    if (!lane || this.boundLane || !page || !this.cpu?.attachLane) return
    this.cpu.attachLane(lane, page.u8)
    this.boundLane = lane
  }

  /** HC_PAUSE_VM: every vCPU stops between two instructions (one waiting for a request keeps waiting). */
  pause(): void {
    this.cpu?.pause()
  }

  /** HC_RESET_VM: the vCPUs return to the reset state; a queued exit is dropped with the rest. */
  reset(): void {
    this.cpu?.reset()
    this.queued.length = 0
    this.faults.length = 0
  }

  /** HC_DESTROY_VM: the vCPU threads end. */
  destroy(): void {
    this.cpu?.destroy()
    this.cpu = null
    this.boundLane = null
    this.queued.length = 0
  }

  /** The EPT changed (SET_MEMSEG, UNSET_MEMSEG): the engine maps what the EPT maps. */
  memoryChanged(): void {
    this.cpu?.setMemory(this.slots())
  }

  /**
   * HC_SET_IRQLINE: a GSI goes high or low on the interrupt controllers. One beyond the
   * engine's IOAPIC (GSIs 24-47 on KVM) is the model's only: the hypercall succeeded, the
   * guest never sees the line (a deviation, core/sim/README.md).
   */
  setIrqLine(gsi: number, level: 0 | 1): void {
    if (gsi >= this.engine.ioapicPins) {
      this.engineError = `GSI ${gsi} does not reach the guest: the ${this.engine.name} engine's IOAPIC has ${this.engine.ioapicPins} pins (ACRN's vIOAPIC has 48)`
      return
    }
    this.engineCall(() => this.cpu?.setIrqLine(gsi, level))
  }

  /** GSIs that reach the guest: those below this (the engine's IOAPIC pins). */
  get ioapicPins(): number {
    return this.engine.ioapicPins
  }

  /** HC_INJECT_MSI (and irqfd): the message reaches the vCPU's local APIC. */
  injectMsi(addr: bigint, data: number): void {
    this.engineCall(() => this.cpu?.injectMsi(addr, data))
  }

  /**
   * The hypervisor's answer is the model's (it counted the interrupt): an engine that
   * cannot deliver one is remembered for `vm show`, never a failed hypercall.
   */
  private engineCall(call: () => void): void {
    try {
      call()
    } catch (e) {
      this.engineError = (e as Error).message
    }
  }

  /** The last interrupt the engine could not deliver, and why. */
  engineError: string | undefined

  /**
   * Stop an executing vCPU between two instructions so that a synthetic access takes its
   * slot; false when it does not execute (the access goes ahead as without an engine).
   */
  hold(vcpu: number): boolean {
    if (!this.cpu || this.vm.state !== 'running') return false
    if ((this.holds[vcpu] = (this.holds[vcpu] ?? 0) + 1) === 1) this.cpu.pause(vcpu)
    return true
  }

  /** The synthetic access is done: an exit that came meanwhile goes in, or the vCPU runs on. */
  release(vcpu: number): void {
    if (--this.holds[vcpu]! > 0 || !this.cpu) return
    const exit = this.queued[vcpu]
    if (exit) {
      this.queued[vcpu] = null
      this.exit(vcpu, exit)
    }
    if (this.vm.state === 'running') this.cpu.run(vcpu)
  }

  /** Per vCPU: executing / halted / waiting / paused, exit counts, and a fault if any. */
  status(): VcpuExecution[] {
    if (!this.cpu) return []
    return this.cpu.status().map((s, id) => ({ ...s, fault: this.faults[id] }))
  }

  /**
   * Each vCPU's mode and RIP, read from the engine (which briefly stops an executing vCPU
   * between two instructions to read them): for `vm show` only, not for periodic views.
   */
  positions(): (VcpuPosition | undefined)[] {
    const cpu = this.cpu
    if (!cpu) return []
    return this.vm.vcpus.map((v) => {
      try {
        const r = decode(acrn_regs, cpu.getRegs(v.id))
        const cr0 = r.cr0 as bigint
        const efer = r.ia32_efer as bigint
        const mode = (cr0 & 1n) === 0n ? 'real' : (efer & 0x400n) !== 0n ? 'long' : 'protected'
        return { mode, rip: r.rip as bigint, cr0, cr3: r.cr3 as bigint, cr4: r.cr4 as bigint, efer }
      } catch {
        return undefined // its thread is gone (destroyed between the two calls)
      }
    })
  }

  /** A PIO or MMIO exit: the same trap as a synthetic access. */
  private exit(id: number, exit: CpuExit): void {
    const vm = this.vm
    const vcpu = vm.vcpus[id]
    if (!vcpu || !this.cpu) return
    if (vcpu.busy || vm.state !== 'running') {
      // The slot is a synthetic access's, or the VM was paused as the exit came: it waits.
      this.queued[id] = { ...exit }
      return
    }
    this.hv.io.trap(
      vm,
      vcpu,
      exit.kind === 'mmio',
      exit.write,
      exit.addr,
      exit.size,
      exit.value,
      this.done[id]!,
      this.ignore,
    )
  }

  /** The EPT's readable ranges backed by shared RAM, as engine slots (merged where contiguous). */
  private slots(): MemorySlot[] {
    const slots: MemorySlot[] = []
    for (const region of this.vm.ept.list()) {
      if ((region.attr & MemAccess.READ) === 0) continue
      const readonly = (region.attr & MemAccess.WRITE) === 0
      let gpa = Number(region.gpa)
      let hpa = Number(region.hpa)
      let left = Number(region.size)
      while (left > 0) {
        const run = this.hv.memory.hostRun(hpa, left)
        if (run.address !== undefined) {
          const last = slots[slots.length - 1]
          if (
            last &&
            last.readonly === readonly &&
            last.gpa + last.size === gpa &&
            last.hostAddress + BigInt(last.size) === run.address
          ) {
            slots[slots.length - 1] = { ...last, size: last.size + run.length }
          } else {
            slots.push({ gpa, size: run.length, hostAddress: run.address, readonly })
          }
        }
        gpa += run.length
        hpa += run.length
        left -= run.length
      }
    }
    return slots
  }
}

/** The engine a platform's vCPUs execute on, or why they do not execute. */
export type CpuChoice =
  | { readonly engine: CpuEngine; readonly reason?: undefined }
  | { readonly engine?: undefined; readonly reason: string }
