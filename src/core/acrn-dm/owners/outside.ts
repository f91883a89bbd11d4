// A VM of the HSM that another process holds and hsmctl cannot talk to: the HSM binds a
// VM to the fd that created it (spec §1.5, §2.3), so only that process can change it.
// `vm show` shows the HSM's view; every other verb says what can be done instead.

import { ConflictError, type HsmctlError } from '../../errors.js'
import type { Wire } from '../../daemon/protocol.js'
import type { VmSummary } from '../../vmm/manager.js'
import type { AcrnPaths } from '../paths.js'
import { holderPid } from '../vms.js'
import { describe } from './describe.js'
import { Owner, type Shown, type Verb, type VerbContext } from './owner.js'

export class OutsideVm extends Owner {
  readonly kind = 'outside'

  constructor(
    name: string,
    private readonly paths: AcrnPaths,
    readonly vm: Wire<VmSummary>,
  ) {
    super(name)
  }

  get takenBy(): string {
    return `the HSM's VM ${this.vm.vmid} held by ${this.vm.holder ?? 'another process'}`
  }

  refusal(verb: Verb): HsmctlError {
    const holder = this.vm.holder
    const pid = holderPid(holder)
    const isAcrnDm = holder !== undefined && /\(acrn-dm\)$/.test(holder)
    const instead = isAcrnDm
      ? `it is an acrn-dm with no monitor socket in ${this.paths.mngrDir}: if it runs in another mount namespace or its sockets are elsewhere, set HSMCTL_ACRN_MNGR_DIR; else end it with kill -INT ${pid} (acrn-dm tears its VM down on SIGINT)`
      : verb === 'stop' || verb === 'destroy' || verb === 'reset'
        ? pid !== undefined
          ? `end that process: kill -INT ${pid} (acrn-dm and vm-sample pause and destroy their VM on SIGINT); the VM goes with its fd`
          : 'end the process that holds it; the VM goes with its fd'
        : 'only that process can; to manage a VM with hsmctl, create it with hsmd (hsmctl vm create) or launch it from a registered script (hsmctl vm add, hsmctl vm start)'
    return new ConflictError(
      `'${this.name}' (vmid ${this.vm.vmid ?? '-'}) is held by ${holder ?? 'another process'}, which hsmctl cannot talk to: the HSM binds a VM to the fd that created it, so only that process can ${verb} it`,
      instead,
    )
  }

  override show(ctx: VerbContext): Promise<Shown> {
    return describe(ctx, { kind: 'outside', vm: this.vm }, this.vm.name)
  }
}
