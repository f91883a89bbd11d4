// The hypervisor's VMs that another process holds: an acrn-dm, a program under the device
// shim (`sim exec`, `--serve-sim`), or one such a program orphaned (spec §1.5). hsmd lists
// them, shows the hypervisor's view of them and, on the simulation, has their vCPUs trap
// a guest access (their holder serves it); only their holder can change them.

import { UsageError } from '../../errors.js'
import type { Journal, JournalEntry } from '../journal.js'
import type { VmSummary } from '../listing.js'
import type { HypervisorVm, VmmPlatform } from '../platform.js'
import type { HsmdVms } from './hsmd.js'
import type { RunningVm, VmOwner } from './owner.js'

export class OutsideVms implements VmOwner {
  readonly kind = 'outside process'

  constructor(
    private readonly platform: VmmPlatform,
    private readonly journal: Journal,
    private readonly hsmd: HsmdVms,
  ) {}

  /**
   * By name: the one CREATE_VM gave (A.1) when neither hsmd nor the journal has it, else
   * `outside-VMID`.
   */
  byName(entries: readonly JournalEntry[] = this.journal.list()): Map<string, HypervisorVm> {
    const out = new Map<string, HypervisorVm>()
    const own = new Set(this.hsmd.all().map((vm) => vm.vmid))
    const journaled = new Set(entries.map((e) => e.name))
    for (const vm of this.platform.hypervisorVms?.() ?? []) {
      if (own.has(vm.vmid)) continue
      const free = (n: string) => n !== '' && !this.hsmd.has(n) && !journaled.has(n) && !out.has(n)
      out.set(free(vm.name) ? vm.name : `outside-${vm.vmid}`, vm)
    }
    return out
  }

  rows(entries: readonly JournalEntry[]): VmSummary[] {
    return [...this.byName(entries)].map(([name, vm]) => ({
      name,
      vmid: vm.vmid,
      state: vm.state,
      vcpus: vm.vcpus,
      memory: vm.memory,
      owner: 'outside process',
      uptimeSeconds: null,
      ...(vm.holder ? { holder: vm.holder } : {}),
    }))
  }

  running(name: string): RunningVm | undefined {
    const vm = this.byName().get(name)
    if (!vm) return undefined
    return {
      vmid: vm.vmid,
      // its vCPU traps, the program that holds it serves the access
      checkGuestAccess: () => {
        if (vm.state !== 'running') {
          throw new UsageError(`'${name}' is ${vm.state}, not running`, {
            hint: 'the program that holds it starts it',
          })
        }
      },
    }
  }
}
