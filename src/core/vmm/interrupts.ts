// Interrupts a VM gets from the Service VM: an MSI (INJECT_MSI), a GSI line's level or
// pulse (SET_IRQLINE), and the pass-through interrupt monitor (VM_INTR_MONITOR). A
// pass-through device's own interrupt routing is in assigned-devices.ts (ptdevIntr).

import { GsiOp, IntrMonitorCmd, INTR_MONITOR_BUFFER_MAX, PAGE_SIZE } from '../abi/constants.js'
import { Ioctl } from '../abi/ioctls.js'
import { decode, encode } from '../abi/layout.js'
import * as S from '../abi/structs.js'
import { UsageError } from '../errors.js'
import type { HsmdVms } from './owners/hsmd.js'

export type GsiOpName = 'assert' | 'deassert' | 'pulse-high' | 'pulse-low'

const GSI_OPS: Readonly<Record<GsiOpName, number>> = {
  assert: GsiOp.SET_HIGH,
  deassert: GsiOp.SET_LOW,
  'pulse-high': GsiOp.RAISING_PULSE,
  'pulse-low': GsiOp.FALLING_PULSE,
}

export async function injectMsi(hsmd: HsmdVms, name: string, msi: { addr: bigint; data: bigint }) {
  const vm = hsmd.get(name)
  await hsmd.ioctl(
    vm,
    Ioctl.INJECT_MSI,
    encode(S.acrn_msi_entry, { msi_addr: msi.addr, msi_data: msi.data }),
  )
  return { name, msiAddr: msi.addr, msiData: msi.data }
}

export async function setIrqline(hsmd: HsmdVms, name: string, gsi: number, op: GsiOpName) {
  const vm = hsmd.get(name)
  const code = GSI_OPS[op]
  if (code === undefined)
    throw new UsageError(`'${op}' is not a GSI operation`, {
      flag: '--op',
      hint: Object.keys(GSI_OPS).join(', '),
    })
  // SET_IRQLINE takes the value itself: gsi in bits 31:0, op in 63:32 (§7.1)
  await hsmd.ioctl(vm, Ioctl.SET_IRQLINE, (BigInt(code) << 32n) | BigInt(gsi >>> 0))
  return { name, gsi, op }
}

/** Interrupt counts of the VM's pass-through devices, or set the injection delay (§7.3). */
export async function intrMonitor(hsmd: HsmdVms, name: string, delayMs?: number) {
  const vm = hsmd.get(name)
  vm.monitorPage ??= await hsmd.proc.mmap(PAGE_SIZE)
  const request =
    delayMs === undefined
      ? { cmd: IntrMonitorCmd.GET_DATA, buf_cnt: INTR_MONITOR_BUFFER_MAX }
      : { cmd: IntrMonitorCmd.DELAY_INT, buf_cnt: 1, buffer: [BigInt(delayMs)] }
  await hsmd.proc.write(vm.monitorPage, encode(S.acrn_intr_monitor, request))
  await hsmd.ioctl(vm, Ioctl.VM_INTR_MONITOR, vm.monitorPage)
  if (delayMs !== undefined)
    return { name, delayMs, interrupts: [] as { pirq: bigint; count: bigint }[] }
  const page = decode(
    S.acrn_intr_monitor,
    await hsmd.proc.read(vm.monitorPage, S.acrn_intr_monitor.size),
  )
  const buffer = page.buffer as bigint[]
  const interrupts: { pirq: bigint; count: bigint }[] = []
  for (let i = 0; i + 1 < (page.buf_cnt as number); i += 2)
    interrupts.push({ pirq: buffer[i]!, count: buffer[i + 1]! })
  return { name, interrupts }
}
