// A VM's I/O requests, as the kernel's ioreq.c: its ioreq clients (hsmd's default one and
// HSM's own for ioeventfds) and CLEAR_VM_IOREQ. The default client itself is
// ioreq-client.ts.

import { Ioctl } from '../abi/ioctls.js'
import type { HsmdVms } from './owners/hsmd.js'

export interface IoreqClientInfo {
  name: string
  kind: 'default' | 'kernel'
  owner: string
  handled?: number
  wakeups?: number
  ranges?: number
}

export async function ioreqClear(hsmd: HsmdVms, name: string) {
  const vm = hsmd.get(name)
  await hsmd.ioctl(vm, Ioctl.CLEAR_VM_IOREQ)
  return { name }
}

export function ioreqClients(hsmd: HsmdVms, name: string): IoreqClientInfo[] {
  const vm = hsmd.get(name)
  return [
    {
      name: 'acrndm',
      kind: 'default',
      owner: `hsmd pid ${process.pid}`,
      handled: vm.client.stats.handled,
      wakeups: vm.client.stats.wakeups,
    },
    // HSM creates it with every VM (§2.2); it serves the ioeventfd ranges (§5)
    {
      name: `ioeventfd-${vm.vmid}`,
      kind: 'kernel',
      owner: 'kernel',
      ranges: vm.ioeventfds.length,
    },
  ]
}
