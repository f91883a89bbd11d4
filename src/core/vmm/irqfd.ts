// irqfds, as the kernel's irqfd.c: a write to an eventfd the daemon holds injects the MSI
// it was registered with (§6).

import { IrqfdFlag } from '../abi/constants.js'
import { Ioctl } from '../abi/ioctls.js'
import { encode } from '../abi/layout.js'
import * as S from '../abi/structs.js'
import { NotFoundError } from '../errors.js'
import type { HsmdVm, HsmdVms } from './owners/hsmd.js'
import type { IrqfdSpec } from './spec.js'

export interface IrqfdInfo extends IrqfdSpec {
  id: number
  signals: number
}

export async function irqfdAdd(hsmd: HsmdVms, name: string, spec: IrqfdSpec): Promise<IrqfdInfo> {
  const vm = hsmd.get(name)
  const efd = await hsmd.proc.eventfd(0)
  try {
    await hsmd.ioctl(
      vm,
      Ioctl.IRQFD,
      encode(S.acrn_irqfd, { fd: efd, msi: { msi_addr: spec.msiAddr, msi_data: spec.msiData } }),
    )
  } catch (e) {
    await hsmd.proc.close(efd).catch(() => {})
    throw e
  }
  const info = { ...spec, id: vm.nextId++, signals: 0, efd }
  vm.irqfds.push(info)
  hsmd.save(vm)
  hsmd.events.irqfd(vm, true, info)
  const { efd: _efd, ...out } = info
  return out
}

function irqfd(vm: HsmdVm, id: number) {
  const entry = vm.irqfds.find((q) => q.id === id)
  if (!entry)
    throw new NotFoundError(
      `'${vm.name}' has no irqfd ${id}`,
      `see \`hsmctl irqfd list ${vm.name}\``,
    )
  return entry
}

export async function irqfdRemove(hsmd: HsmdVms, name: string, id: number): Promise<IrqfdInfo> {
  const vm = hsmd.get(name)
  const entry = irqfd(vm, id)
  await hsmd.ioctl(
    vm,
    Ioctl.IRQFD,
    encode(S.acrn_irqfd, { fd: entry.efd, flags: IrqfdFlag.DEASSIGN }),
  )
  await hsmd.proc.close(entry.efd).catch(() => {})
  vm.irqfds = vm.irqfds.filter((q) => q !== entry)
  hsmd.save(vm)
  hsmd.events.irqfd(vm, false, entry)
  const { efd: _efd, ...out } = entry
  return out
}

/** Write 1 to the irqfd's eventfd: the kernel injects its MSI once per write (§6.3). */
export async function irqfdSignal(
  hsmd: HsmdVms,
  name: string,
  id: number,
  count = 1,
): Promise<IrqfdInfo> {
  const vm = hsmd.get(name)
  const entry = irqfd(vm, id)
  for (let i = 0; i < count; i++) {
    await hsmd.proc.eventfdWrite(entry.efd, 1n)
    entry.signals++
  }
  const { efd: _efd, ...out } = entry
  return out
}

export function irqfdList(hsmd: HsmdVms, name: string): IrqfdInfo[] {
  return hsmd.get(name).irqfds.map(({ efd: _efd, ...q }) => q)
}
