// The interrupt state the hypervisor keeps for a User VM: vIOAPIC and vPIC line levels
// driven by HC_SET_IRQLINE (§7.1, A.3) and MSIs delivered to vLAPICs by HC_INJECT_MSI
// (§6.3, §7.2). Register-level emulation of the chips is not modelled; lines count their
// rising edges so a pulse (which ends where it started) is still visible.

import { GsiOp } from '../../abi/constants.js'

/** vPIC pins: two cascaded 8259s. GSIs below this also drive the vPIC (A.3). */
export const VPIC_PINS = 16

const MSI_ADDR_BASE = 0xfee
const MSI_BROADCAST = 0xff

export interface LineState {
  readonly pin: number
  readonly level: 0 | 1
  /** Low-to-high transitions since the VM was created. */
  readonly assertions: number
}

export interface GsiState {
  readonly gsiCount: number
  /** Lines that are high or were ever asserted; the rest are low and untouched. */
  readonly ioapic: readonly LineState[]
  readonly pic: readonly LineState[]
}

export interface MsiDelivery {
  readonly vcpu: number
  readonly vector: number
  readonly count: number
}

class Lines {
  readonly level: Uint8Array
  readonly assertions: Uint32Array

  constructor(pins: number) {
    this.level = new Uint8Array(pins)
    this.assertions = new Uint32Array(pins)
  }

  drive(pin: number, high: boolean): void {
    if (high && this.level[pin] === 0) this.assertions[pin]! += 1
    this.level[pin] = high ? 1 : 0
  }

  apply(pin: number, op: number): void {
    switch (op) {
      case GsiOp.SET_HIGH:
        this.drive(pin, true)
        break
      case GsiOp.SET_LOW:
        this.drive(pin, false)
        break
      case GsiOp.RAISING_PULSE:
        this.drive(pin, true)
        this.drive(pin, false)
        break
      case GsiOp.FALLING_PULSE:
        this.drive(pin, false)
        this.drive(pin, true)
        break
      // Unknown operations are ignored; the hypercall still succeeds.
    }
  }

  snapshot(): LineState[] {
    const out: LineState[] = []
    for (let pin = 0; pin < this.level.length; pin++) {
      const level = this.level[pin] as 0 | 1
      const assertions = this.assertions[pin]!
      if (level || assertions) out.push(Object.freeze({ pin, level, assertions }))
    }
    return out
  }

  lower(): void {
    this.level.fill(0)
  }
}

export class IrqChip {
  private readonly ioapic: Lines
  private readonly pic = new Lines(VPIC_PINS)
  /** Delivered MSIs keyed by vcpu << 8 | vector. */
  private readonly msi = new Map<number, number>()

  constructor(readonly gsiCount: number) {
    this.ioapic = new Lines(gsiCount)
  }

  /**
   * HC_SET_IRQLINE after the GSI-count check: drive the vPIC (GSI 2 -> pin 0) and the
   * vIOAPIC; on executing vCPUs the engine's interrupt controllers see the same levels.
   */
  setIrqline(
    gsi: number,
    op: number,
    cpu?: { setIrqLine(gsi: number, level: 0 | 1): void } | null,
  ): void {
    if (gsi < VPIC_PINS) this.pic.apply(gsi === 2 ? 0 : gsi, op)
    this.ioapic.apply(gsi, op)
    if (!cpu) return
    switch (op) {
      case GsiOp.SET_HIGH:
        cpu.setIrqLine(gsi, 1)
        break
      case GsiOp.SET_LOW:
        cpu.setIrqLine(gsi, 0)
        break
      case GsiOp.RAISING_PULSE:
        cpu.setIrqLine(gsi, 1)
        cpu.setIrqLine(gsi, 0)
        break
      case GsiOp.FALLING_PULSE:
        cpu.setIrqLine(gsi, 0)
        cpu.setIrqLine(gsi, 1)
        break
    }
  }

  /**
   * Deliver an MSI: address bits 31:20 must be 0xFEE (else -1), bits 19:12 are the
   * destination APIC ID (vCPU i has APIC ID i; 0xFF is broadcast), data bits 7:0 the
   * vector. A destination with no vCPU drops the message. Returns 0 or -1.
   */
  injectMsi(addrLo: number, data: number, vcpuNum: number): number {
    if (addrLo >>> 20 !== MSI_ADDR_BASE) return -1
    const dest = (addrLo >>> 12) & 0xff
    const vector = data & 0xff
    if (dest === MSI_BROADCAST) {
      for (let vcpu = 0; vcpu < vcpuNum; vcpu++) this.count(vcpu, vector)
    } else if (dest < vcpuNum) {
      this.count(dest, vector)
    }
    return 0
  }

  private count(vcpu: number, vector: number): void {
    const key = (vcpu << 8) | vector
    this.msi.set(key, (this.msi.get(key) ?? 0) + 1)
  }

  gsiState(): GsiState {
    return Object.freeze({
      gsiCount: this.gsiCount,
      ioapic: this.ioapic.snapshot(),
      pic: this.pic.snapshot(),
    })
  }

  msiDeliveries(): MsiDelivery[] {
    return [...this.msi.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([key, count]) => Object.freeze({ vcpu: key >> 8, vector: key & 0xff, count }))
  }

  /** VM reset: every line goes low; the delivery counts are history and stay. */
  reset(): void {
    this.ioapic.lower()
    this.pic.lower()
  }
}
