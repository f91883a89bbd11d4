// What to say when a verb meets a VM whose owner cannot do it: hsmd's VMs have no acrn-dm,
// a registered script is not running, and a VM another process holds can be changed only
// by that process (the HSM binds a VM to the fd that created it, spec §1.5, §2.3).

import { ConflictError, NotFoundError, type HsmctlError } from '../errors.js'
import type { AcrnPaths } from './paths.js'
import { holderPid, type LocatedVm } from './vms.js'

export type Verb =
  | 'start'
  | 'stop'
  | 'suspend'
  | 'resume'
  | 'reset'
  | 'blkrescan'
  | 'del'
  | 'destroy'
  | 'pause'
  | 'log'

const HSMD_INSTEAD: Partial<Record<Verb, (n: string) => string>> = {
  stop: (n) =>
    `hsmd's VMs have no acrn-dm to stop: pause it (hsmctl vm pause ${n}) or destroy it (hsmctl vm destroy ${n} --yes)`,
  suspend: (n) => `hsmd's VMs have no suspend: pause it (hsmctl vm pause ${n})`,
  resume: (n) =>
    `hsmd's VMs have no suspend to resume from: a paused one runs again after hsmctl vm reset ${n} --yes and hsmctl vm start ${n}`,
  blkrescan: () => `hsmd's VMs have no virtio-blk device to rescan`,
  del: (n) =>
    `only launch scripts are registered; hsmd's VM goes with hsmctl vm destroy ${n} --yes`,
  log: (n) => `hsmd keeps its VMs' serial output: hsmctl vm console ${n}`,
}

/** The verb cannot apply to this VM: the error that says what can be done instead. */
export function wrongOwner(
  name: string,
  found: LocatedVm,
  verb: Verb,
  paths: AcrnPaths,
): HsmctlError {
  switch (found.kind) {
    case 'hsmd': {
      const instead = HSMD_INSTEAD[verb]?.(name) ?? 'see hsmctl vm --help'
      return new ConflictError(
        `'${name}' is hsmd's own VM (vmid ${found.vm.vmid ?? '-'}), not acrn-dm's`,
        instead,
      )
    }
    case 'script':
      return new ConflictError(
        `'${name}' is not running: it is a registered launch script (${found.entry.script})`,
        verb === 'del' ? undefined : `start it first: hsmctl vm start ${name}`,
      )
    case 'acrn-dm': {
      const who = `acrn-dm pid ${found.instance.pid}`
      const instead: Partial<Record<Verb, string>> = {
        start: `it runs already; to start it again: hsmctl vm reset ${name} --yes`,
        del: found.script
          ? `stop it first (hsmctl vm stop ${name}), then delete its registration`
          : `it runs without a registered launch script (nothing to delete); stop it with hsmctl vm stop ${name}`,
        pause: `acrn-dm's VMs are paused by acrn-dm itself; suspend the guest (hsmctl vm suspend ${name}) or stop it (hsmctl vm stop ${name})`,
        log: `it was not started by hsmctl here (acrnctl, another user, or by hand), so hsmctl has no log of it`,
      }
      return new ConflictError(
        verb === 'start'
          ? `'${name}' runs already (${who})`
          : verb === 'del'
            ? `'${name}' runs (${who})`
            : `'${name}' is acrn-dm's VM (${who})`,
        instead[verb] ?? 'see hsmctl vm --help',
      )
    }
    case 'outside': {
      const holder = found.vm.holder
      const pid = holderPid(holder)
      const isAcrnDm = holder !== undefined && /\(acrn-dm\)$/.test(holder)
      const instead = isAcrnDm
        ? `it is an acrn-dm with no monitor socket in ${paths.mngrDir}: if it runs in another mount namespace or its sockets are elsewhere, set HSMCTL_ACRN_MNGR_DIR; else end it with kill -INT ${pid} (acrn-dm tears its VM down on SIGINT)`
        : verb === 'stop' || verb === 'destroy' || verb === 'reset'
          ? pid !== undefined
            ? `end that process: kill -INT ${pid} (acrn-dm and vm-sample pause and destroy their VM on SIGINT); the VM goes with its fd`
            : 'end the process that holds it; the VM goes with its fd'
          : 'only that process can; to manage a VM with hsmctl, create it with hsmd (hsmctl vm create) or launch it from a registered script (hsmctl vm add, hsmctl vm start)'
      return new ConflictError(
        `'${name}' (vmid ${found.vm.vmid ?? '-'}) is held by ${holder ?? 'another process'}, which hsmctl cannot talk to: the HSM binds a VM to the fd that created it, so only that process can ${verb} it`,
        instead,
      )
    }
    case 'gone':
      return new NotFoundError(
        `'${name}' is gone: acrn-dm pid ${found.instance.pid} exited without removing its monitor socket (it crashed)`,
        `remove the socket left behind: rm ${found.instance.path}`,
      )
  }
}

/** No VM of that name anywhere. */
export function noSuchVm(name: string): NotFoundError {
  return new NotFoundError(
    `no VM named '${name}'`,
    'see hsmctl vm list (names are matched exactly)',
  )
}
