// ioeventfds, as the kernel's ioeventfd.c: a guest write to a PIO or MMIO range signals an
// eventfd the daemon holds, served by HSM's own ioreq client (§5); the daemon drains the
// eventfd and counts the writes.

import { IoeventfdFlag } from '../abi/constants.js'
import { Errno } from '../abi/errno.js'
import { Ioctl } from '../abi/ioctls.js'
import { encode } from '../abi/layout.js'
import * as S from '../abi/structs.js'
import { HsmError, NotFoundError } from '../errors.js'
import type { HsmdVms } from './owners/hsmd.js'
import type { IoeventfdSpec } from './spec.js'

export interface IoeventfdInfo extends IoeventfdSpec {
  id: number
  /** Writes that signalled the eventfd (drained and summed by the daemon). */
  signals: bigint
}

export async function ioeventfdAdd(
  hsmd: HsmdVms,
  name: string,
  spec: IoeventfdSpec,
): Promise<IoeventfdInfo> {
  const vm = hsmd.get(name)
  const efd = await hsmd.proc.eventfd(0)
  const flags =
    (spec.pio ? IoeventfdFlag.PIO : 0) |
    (spec.datamatch !== undefined ? IoeventfdFlag.DATAMATCH : 0)
  try {
    await hsmd.ioctl(
      vm,
      Ioctl.IOEVENTFD,
      encode(S.acrn_ioeventfd, {
        fd: efd,
        flags,
        addr: spec.addr,
        len: spec.len,
        data: spec.datamatch ?? 0n,
      }),
    )
  } catch (e) {
    await hsmd.proc.close(efd).catch(() => {})
    throw e
  }
  const info = { ...spec, id: vm.nextId++, signals: 0n, efd }
  vm.ioeventfds.push(info)
  hsmd.save(vm)
  hsmd.events.ioeventfd(vm, true, info)
  const { efd: _efd, ...out } = info
  return out
}

export async function ioeventfdRemove(
  hsmd: HsmdVms,
  name: string,
  id: number,
): Promise<IoeventfdInfo> {
  const vm = hsmd.get(name)
  const entry = vm.ioeventfds.find((e) => e.id === id)
  if (!entry)
    throw new NotFoundError(
      `'${name}' has no ioeventfd ${id}`,
      `see \`hsmctl ioeventfd list ${name}\``,
    )
  await hsmd.ioctl(
    vm,
    Ioctl.IOEVENTFD,
    encode(S.acrn_ioeventfd, {
      fd: entry.efd,
      flags: IoeventfdFlag.DEASSIGN | (entry.pio ? IoeventfdFlag.PIO : 0),
      addr: entry.addr,
      len: entry.len,
    }),
  )
  await drain(hsmd, entry)
  await hsmd.proc.close(entry.efd).catch(() => {})
  vm.ioeventfds = vm.ioeventfds.filter((e) => e !== entry)
  hsmd.save(vm)
  hsmd.events.ioeventfd(vm, false, entry)
  const { efd: _efd, ...out } = entry
  return out
}

/** Add the writes the eventfd counted since the last drain to the ioeventfd's signals. */
async function drain(hsmd: HsmdVms, entry: { efd: number; signals: bigint }) {
  try {
    entry.signals += await hsmd.proc.eventfdRead(entry.efd)
  } catch (e) {
    if (!(e instanceof HsmError && e.errno === Errno.EAGAIN)) throw e
  }
}

export async function ioeventfdList(hsmd: HsmdVms, name: string): Promise<IoeventfdInfo[]> {
  const vm = hsmd.get(name)
  for (const e of vm.ioeventfds) await drain(hsmd, e)
  return vm.ioeventfds.map(({ efd: _efd, ...e }) => e)
}
