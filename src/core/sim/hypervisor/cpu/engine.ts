// The CPU engine: what executes a simulated VM's guest code (issue 10). The hypervisor
// model (vm-execution.ts) drives it through this interface only, so that engines other
// than KVM (a JIT such as libunicorn, for hosts without hardware virtualization) can be
// added beside kvm.ts.

import type { IoreqLane, LaneEngine } from '../../lane.js'

/** A PIO or MMIO access the guest made that the engine cannot complete itself. */
export interface CpuExit {
  readonly kind: 'pio' | 'mmio'
  readonly write: boolean
  /** Port or guest-physical address (the KVM engine gives numbers: GPAs fit in 52 bits). */
  readonly addr: number | bigint
  /** 1, 2 or 4 bytes for PIO; 1 to 8 for MMIO. */
  readonly size: number
  /** The value written (0n for a read). */
  readonly value: bigint
}

export interface VcpuStatus {
  /**
   * stopped: faulted (onFault said why), runs again only after setRegs or reset; waiting:
   * an exit awaits `complete` (even while paused); paused; halted: in HLT, or an AP
   * waiting for INIT/SIPI; executing.
   */
  readonly state: 'executing' | 'halted' | 'waiting' | 'paused' | 'stopped'
  /** Exits by reason (pio, mmio, hlt, irq for interrupts injected, kick, shutdown, ...). */
  readonly exits: Readonly<Record<string, number>>
}

export interface MemoryRegion {
  readonly gpa: number
  readonly size: number
  /** Where hsmd (this process) has the bytes: a shared mapping's address. gpa, size and
   * hostAddress are page-aligned. */
  readonly hostAddress: bigint
  readonly readonly: boolean
}

export interface CpuVmOptions {
  readonly vcpus: number
  /**
   * Called on the main thread for each exit; the vCPU then waits, executing nothing,
   * until `complete`. The object may be reused for the vCPU's next exit: copy what you keep.
   */
  readonly onExit: (vcpu: number, exit: CpuExit) => void
  /** The vCPU stopped for good (triple fault, failed entry, internal error). */
  readonly onFault?: (vcpu: number, reason: string) => void
  /**
   * A request the lane completed (lane.ts), a few ms after: the slot as the client left
   * it (a copy), the value a read got, and when it went PENDING and completed
   * (performance.now() times).
   */
  readonly onLaneDone?: (
    vcpu: number,
    slot: DataView,
    base: number,
    value: bigint,
    since: number,
    done: number,
  ) => void
}

export interface CpuEngine {
  readonly name: string
  /**
   * GSIs its interrupt controllers route: GSI n below this drives IOAPIC pin n (and below
   * 16 an 8259 pin) as ACRN routes it. ACRN's vIOAPIC has 48 pins; KVM's in-kernel one 24.
   */
  readonly ioapicPins: number
  /** A VM whose vCPUs are at the power-on state (ACRN's realmode_init_vregs), paused. */
  createVm(options: CpuVmOptions): CpuVm
  /** Present when its vCPU threads can serve a lane (lane.ts): the futex wakes it needs. */
  readonly lanes?: LaneEngine
}

export interface CpuVm {
  /** Replaces every memory slot. */
  setMemory(regions: readonly MemoryRegion[]): void
  /**
   * struct acrn_regs bytes (288), as SET_VCPU_REGS passes them (§2.5), applied as ACRN's
   * set_vcpu_regs() does. An exit the vCPU was waiting on is dropped (a read gets 0).
   */
  setRegs(vcpu: number, regs: Uint8Array): void
  getRegs(vcpu: number): Uint8Array
  /** Start or continue executing: every vCPU, or one. A vCPU waiting for `complete` keeps waiting. */
  run(vcpu?: number): void
  /** Stop between two instructions; returns once stopped. */
  pause(vcpu?: number): void
  /** vCPUs to the x86 power-on state (paused until run), interrupt controllers reset, waits dropped. */
  reset(): void
  /** The vCPU's exit is done: a read's value lands in the guest's register or memory operand. */
  complete(vcpu: number, value: bigint): void
  /** An MSI as the vLAPICs receive it: how many vCPUs it reached (0: masked or no match). */
  injectMsi(addr: bigint, data: number): number
  setIrqLine(gsi: number, level: 0 | 1): void
  status(): VcpuStatus[]
  /** Ends the threads and frees everything; every later call but destroy throws. */
  destroy(): void
  /** Port I/O goes out through the lane from now on, where the lane allows (lanes only). */
  attachLane?(lane: IoreqLane, ioreq: Uint8Array): void
  /** The lane's completions logged so far, to onLaneDone now (lanes only). */
  drainLaneLog?(): void
}
