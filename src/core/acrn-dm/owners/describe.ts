// `vm show` of a VM that is not hsmd's: what the HSM, the monitor socket and the registry
// know, the log of a script hsmctl launched, and the simulated hypervisor's view when the
// daemon's platform has the VM.

import { existsSync } from 'node:fs'
import type { Wire } from '../../daemon/protocol.js'
import { stateDir } from '../../daemon/paths.js'
import type { HypervisorView } from '../../vmm/manager.js'
import { lastExitStatus, logPaths } from '../supervisor.js'
import { describeVm, type LocatedVm } from '../vms.js'
import type { Shown, VerbContext } from './owner.js'

/** `hsmName`: the HSM's name of the VM, when the daemon sees it (acrn-dm under `sim exec`). */
export async function describe(
  ctx: VerbContext,
  found: Exclude<LocatedVm, { kind: 'hsmd' }>,
  hsmName: string | undefined,
): Promise<Shown> {
  const name =
    found.kind === 'script'
      ? found.entry.name
      : found.kind === 'outside'
        ? found.vm.name
        : found.instance.name
  const { log } = logPaths(stateDir(), name)
  const last = lastExitStatus(stateDir(), name)
  const vm = await describeVm(
    found,
    existsSync(log) ? { log: { path: log, lastExitStatus: last ?? null } } : {},
  )
  const view =
    hsmName === undefined
      ? undefined
      : await ctx
          .call<Wire<HypervisorView>>('vm.hypervisor', { name: hsmName })
          .catch(() => undefined)
  return { by: 'other', vm, ...(view ? { view } : {}) }
}
