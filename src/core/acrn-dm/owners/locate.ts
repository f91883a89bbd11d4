// Which owner has the VM a `vm` command names, matched exactly (never acrnctl's prefix
// match). acrn-dm's side (monitor sockets, the registry) is read first, so that managing
// acrn-dm's VMs never needs a daemon; a running hsmd's own VM of that name comes first.

import type { Backend } from '../../daemon/paths.js'
import type { Wire } from '../../daemon/protocol.js'
import type { VmSummary } from '../../vmm/manager.js'
import { acrnPaths, type AcrnPaths } from '../paths.js'
import { locateVm, type LocatedVm } from '../vms.js'
import { AcrnDmVm } from './acrn-dm.js'
import { GoneVm } from './gone.js'
import { HsmdVm } from './hsmd.js'
import { OutsideVm } from './outside.js'
import { noSuchVm, type VmOwner } from './owner.js'
import { ScriptVm } from './script.js'

/** Where a command looks for a VM: its --backend, and its --host (none: this machine). */
export interface Where {
  readonly backend: string
  readonly host?: string | undefined
}

/** The daemon's `vm.list` when a daemon of this backend runs; undefined otherwise. */
export async function runningDaemonVms(backend: Backend): Promise<Wire<VmSummary>[] | undefined> {
  const { connectIfRunning } = await import('../../daemon/autostart.js')
  const client = await connectIfRunning(backend)
  if (!client) return undefined
  try {
    return await client.call<Wire<VmSummary>[]>('vm.list')
  } finally {
    client.close()
  }
}

/** The owner of a located VM. */
export function ownerOfLocated(name: string, found: LocatedVm, paths: AcrnPaths): VmOwner {
  switch (found.kind) {
    case 'hsmd':
      return new HsmdVm(name, paths, found.vm)
    case 'acrn-dm':
      return new AcrnDmVm(name, found.instance, found.hsm, found.script)
    case 'script':
      return new ScriptVm(name, paths, found.entry, found.stale)
    case 'outside':
      return new OutsideVm(name, paths, found.vm)
    case 'gone':
      return new GoneVm(name, found.instance)
  }
}

/**
 * An acrn-dm VM or registered script named exactly `name`, unless a running hsmd has a VM
 * of its own by that name (hsmd's VMs come first). Undefined: let hsmd answer.
 */
export async function acrnDmOwner(name: string, where: Where): Promise<VmOwner | undefined> {
  // acrn-dm's VMs are this machine's: on a remote host (--host) only its hsmd is reached
  if (where.host) return undefined
  const backend = where.backend as Backend
  const paths = acrnPaths()
  const found = await locateVm(name, paths, undefined)
  if (!found) return undefined
  const daemon = await runningDaemonVms(backend).catch(() => undefined)
  if (daemon?.some((v) => v.name === name && v.owner !== 'outside process')) return undefined
  if (found.kind !== 'acrn-dm' || !daemon) return ownerOfLocated(name, found, paths)
  // the HSM's view of acrn-dm's VM, when the daemon sees it (the simulation)
  const again = await locateVm(name, paths, daemon)
  return ownerOfLocated(name, again && again.kind !== 'hsmd' ? again : found, paths)
}

/**
 * The owner of a VM named `name`, for a verb hsmd has (start, pause, reset, destroy,
 * show): acrn-dm's side first, else hsmd's, asked when the verb runs (started on demand).
 */
export async function ownerOrHsmd(name: string, where: Where): Promise<VmOwner> {
  return (await acrnDmOwner(name, where)) ?? new HsmdVm(name, acrnPaths())
}

/**
 * The owner of a VM named `name` without starting a daemon: acrn-dm's side first, then a
 * running daemon's (hsmd's own, or another process's VM). Undefined when nobody has it.
 */
export async function locateOwner(name: string, where: Where): Promise<VmOwner | undefined> {
  if (where.host) return undefined
  const acrn = await acrnDmOwner(name, where)
  if (acrn) return acrn
  const daemon = await runningDaemonVms(where.backend as Backend).catch(() => undefined)
  if (!daemon) return undefined
  const found = await locateVm(name, acrnPaths(), daemon)
  return found ? ownerOfLocated(name, found, acrnPaths()) : undefined
}

/** As locateOwner, for acrnctl's verbs: "no VM named" when nobody has it. */
export async function ownerOf(name: string, where: Where): Promise<VmOwner> {
  const owner = await locateOwner(name, where)
  if (!owner) throw noSuchVm(name)
  return owner
}
