// x86 MSI address/data pairs (`--msi 0xfee01000:0x4031`), checked for the layout the
// hypervisor interprets (§6.3): address bits 31:20 = 0xFEE, bits 19:12 destination APIC
// ID; data bits 7:0 vector, 10:8 delivery mode, 15 trigger mode.

import { UsageError } from '../errors.js'
import { parseInteger } from './number.js'

export const MSI_ADDR_BASE = 0xfee0_0000n

export interface Msi {
  readonly addr: bigint
  readonly data: bigint
}

export interface MsiFields {
  readonly destination: number
  /** 0 physical, 1 logical (address bit 2). */
  readonly destinationMode: number
  readonly redirectionHint: number
  readonly vector: number
  readonly deliveryMode: number
  readonly level: number
  /** 0 edge, 1 level. */
  readonly triggerMode: number
}

export function checkMsiAddress(addr: bigint, text: string, name?: string): void {
  if (addr >> 20n !== MSI_ADDR_BASE >> 20n || addr > 0xffff_ffffn) {
    throw new UsageError(`MSI address ${text} is outside 0xfee00000-0xfeefffff`, {
      flag: name,
      hint: 'an x86 MSI address is 0xfee00000 | destination APIC ID << 12 (0xfee01000 for vCPU 1)',
    })
  }
}

export function parseMsiAddress(text: string, name?: string): bigint {
  const addr = parseInteger(text, { name, max: 0xffff_ffff_ffff_ffffn })
  checkMsiAddress(addr, text, name)
  return addr
}

export function parseMsiData(text: string, name?: string): bigint {
  return parseInteger(text, { name, max: 0xffff_ffffn })
}

/** `ADDR:DATA` as one flag value. */
export function parseMsi(text: string, name?: string): Msi {
  const parts = text.split(':')
  if (parts.length !== 2 || parts[0]!.trim() === '' || parts[1]!.trim() === '') {
    throw new UsageError(`'${text}' is not ADDR:DATA`, {
      flag: name,
      hint: 'give the MSI address and data separated by a colon: 0xfee00000:0x4031',
    })
  }
  return { addr: parseMsiAddress(parts[0]!, name), data: parseMsiData(parts[1]!, name) }
}

/** Build the pair for a destination APIC ID and vector (fixed delivery, edge, physical). */
export function buildMsi(destination: number, vector: number): Msi {
  if (!Number.isInteger(destination) || destination < 0 || destination > 0xff) {
    throw new UsageError(`destination ${destination} is not 0..255`)
  }
  if (!Number.isInteger(vector) || vector < 0x10 || vector > 0xff) {
    throw new UsageError(`vector ${vector} is not 16..255`, { hint: 'vectors 0-15 are reserved' })
  }
  return { addr: MSI_ADDR_BASE | (BigInt(destination) << 12n), data: BigInt(vector) }
}

export function decodeMsi(msi: Msi): MsiFields {
  const addr = Number(msi.addr & 0xffff_ffffn)
  const data = Number(msi.data & 0xffff_ffffn)
  return {
    destination: (addr >>> 12) & 0xff,
    destinationMode: (addr >>> 2) & 1,
    redirectionHint: (addr >>> 3) & 1,
    vector: data & 0xff,
    deliveryMode: (data >>> 8) & 0x7,
    level: (data >>> 14) & 1,
    triggerMode: (data >>> 15) & 1,
  }
}
