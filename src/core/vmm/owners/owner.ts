// Who holds a VM that hsmd sees, each kind behind one interface (issue 12 item 4). The HSM
// binds a VM to the fd that created it (spec §1.5, §2.3), so the owner decides what hsmd
// can do with it:
//   hsmd.ts       hsmd's own VMs: every verb (lifecycle.ts, memory.ts, ...) works on them;
//   journaled.ts  VMs only in the journal: a spec an earlier daemon held, none running;
//   outside.ts    the hypervisor's VMs another process holds (acrn-dm's, a program under
//                 the device shim): listed, the hypervisor's view, guest accesses.
// acrn-dm's VMs are outside VMs to hsmd: the CLI manages them through acrn-dm's monitor
// socket (core/acrn-dm), never through hsmd; core/acrn-dm/owners/ says what each verb
// does instead on the owners it cannot change.

import type { JournalEntry } from '../journal.js'
import type { VmSummary } from '../listing.js'
import type { HsmdVms } from './hsmd.js'
import type { JournaledVms } from './journaled.js'
import type { OutsideVms } from './outside.js'

export interface VmOwner {
  /** What `vm list`'s owner column says of its VMs. */
  readonly kind: VmSummary['owner']
  /** Its VMs as `vm list` rows; `entries`: the journal, read once per listing. */
  rows(entries: readonly JournalEntry[]): VmSummary[]
  /** Its VM named so that the hypervisor runs; undefined when it has none of that name. */
  running(name: string): RunningVm | undefined
}

/** A VM of the hypervisor, as its owner knows it. */
export interface RunningVm {
  readonly vmid: number
  /** Refuses a guest access the VM cannot take now (not running, no such vCPU). */
  checkGuestAccess(vcpu: number): void
}

/** The first owner that runs a VM named so (hsmd's own first), or undefined. */
export function findRunning(
  owners: readonly VmOwner[],
  name: string,
): (RunningVm & { owner: VmOwner }) | undefined {
  for (const owner of owners) {
    const vm = owner.running(name)
    if (vm) return { ...vm, owner }
  }
  return undefined
}

/** hsmd's owners, in the order a name is looked up: hsmd's own, the journal's, outside. */
export interface VmOwners {
  readonly hsmd: HsmdVms
  readonly journaled: JournaledVms
  readonly outside: OutsideVms
}

export function inLookupOrder(owners: VmOwners): readonly VmOwner[] {
  return [owners.hsmd, owners.journaled, owners.outside]
}
