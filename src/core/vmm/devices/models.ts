// The device models the daemon serves as each VM's default ioreq client: a 16550 UART at
// COM1, and acrn-dm's rule for everything else: reads of unclaimed addresses return all
// ones, writes are dropped.

import { COM1_BASE, Uart16550 } from './uart16550.js'

export interface AccessResult {
  /** For reads: the value the guest sees. */
  value: bigint
  /** Whether a device model claimed the access. */
  claimed: boolean
}

export function allOnes(size: number): bigint {
  return size >= 8 ? 0xffff_ffff_ffff_ffffn : (1n << BigInt(size * 8)) - 1n
}

export class DeviceModels {
  readonly uart: Uart16550
  /** Accesses no model claimed, by kind, for `vm show`. */
  unclaimed = { pio: 0, mmio: 0, pcicfg: 0 }

  constructor(consoleOutput: (byte: number) => void) {
    this.uart = new Uart16550(COM1_BASE, consoleOutput)
  }

  pio(write: boolean, port: number, size: number, value: bigint): AccessResult {
    if (this.uart.claims(port)) {
      if (write) {
        this.uart.write(port, Number(value & 0xffn))
        return { value, claimed: true }
      }
      return { value: BigInt(this.uart.read(port)), claimed: true }
    }
    this.unclaimed.pio++
    return { value: write ? value : allOnes(size), claimed: false }
  }

  mmio(write: boolean, _gpa: bigint, size: number, value: bigint): AccessResult {
    this.unclaimed.mmio++
    return { value: write ? value : allOnes(size), claimed: false }
  }

  /** No PCI device is emulated: config reads see an empty slot (vendor ID 0xffff). */
  pcicfg(write: boolean, size: number, value: bigint): AccessResult {
    this.unclaimed.pcicfg++
    return { value: write ? value : allOnes(size), claimed: false }
  }
}
