// A running acrn-dm's VM: acrnctl's verbs, sent to exactly its monitor socket
// (core/acrn-dm/lifecycle.ts, the mngr_msg protocol of ../shared/acrn-dm/README.md).

import { ConflictError, UsageError, type HsmctlError } from '../../errors.js'
import type { Wire } from '../../daemon/protocol.js'
import type { VmSummary } from '../../vmm/manager.js'
import {
  blkrescanVm,
  resumeVm,
  stopVm,
  suspendVm,
  targetOf,
  type StopResult,
} from '../lifecycle.js'
import type { RegistryEntry } from '../registry.js'
import type { AcrnDmInstance } from '../vms.js'
import { describe } from './describe.js'
import {
  Owner,
  timeoutMs,
  type Destroyed,
  type Reset,
  type Shown,
  type Verb,
  type VerbContext,
} from './owner.js'
import { launchRegistered } from './script.js'

export class AcrnDmVm extends Owner {
  readonly kind = 'acrn-dm'

  /** `hsm`: the HSM's view of its VM when the daemon sees it; `script`: its registration. */
  constructor(
    name: string,
    readonly instance: AcrnDmInstance,
    readonly hsm?: Wire<VmSummary>,
    readonly script?: RegistryEntry,
  ) {
    super(name)
  }

  get takenBy(): string {
    return `acrn-dm pid ${this.instance.pid} runs it`
  }

  refusal(verb: Verb): HsmctlError {
    const { name } = this
    const who = `acrn-dm pid ${this.instance.pid}`
    const instead: Partial<Record<Verb, string>> = {
      start: `it runs already; to start it again: hsmctl vm reset ${name} --yes`,
      del: this.script
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

  override show(ctx: VerbContext): Promise<Shown> {
    return describe(
      ctx,
      { kind: 'acrn-dm', instance: this.instance, ...this.located() },
      this.hsm?.name,
    )
  }

  /** DM_STOP, waited for until its acrn-dm has exited; forced, it powers the VM off. */
  override async stop(
    ctx: VerbContext,
    options: { force: boolean; timeoutMs: number },
  ): Promise<StopResult> {
    if (options.force) {
      await ctx.confirm(`Power off VM '${this.name}' without a guest shutdown?`)
    }
    return stopVm(targetOf(this.instance), options)
  }

  override suspend() {
    return suspendVm(targetOf(this.instance))
  }

  override resume(reason: number) {
    return resumeVm(targetOf(this.instance), reason)
  }

  override blkrescan(rescan: { slot: number; path: string }) {
    return blkrescanVm(targetOf(this.instance), rescan)
  }

  /**
   * As acrnctl's: stop it (DM_STOP), wait until it is gone, start its registered script
   * again. Refused before anything is stopped when there is no script to start it with.
   */
  override async reset(
    ctx: VerbContext,
    options: { force: boolean; timeoutSeconds: number },
  ): Promise<Reset> {
    const { name } = this
    if (!this.script) {
      throw new UsageError(
        `'${name}' has no registered launch script to start it again; nothing was changed`,
        {
          hint: `register the script that launched it (hsmctl vm add SCRIPT), or stop it alone: hsmctl vm stop ${name}`,
        },
      )
    }
    await ctx.confirm(`Reset VM '${name}'? Its acrn-dm is stopped and started again.`)
    const stopped = await stopVm(targetOf(this.instance), {
      force: options.force,
      timeoutMs: timeoutMs(options.timeoutSeconds),
    })
    const started = await launchRegistered(ctx, this.script, options.timeoutSeconds)
    return { by: 'acrn-dm', result: { name, stopped, started } }
  }

  /** A forced stop (DM_STOP with force), waited for. */
  override async destroy(): Promise<Destroyed> {
    const stopped = await stopVm(targetOf(this.instance), { force: true, timeoutMs: 30_000 })
    return {
      by: 'acrn-dm',
      result: { name: this.name, vmid: this.hsm?.vmid ?? null, pid: stopped.pid },
    }
  }

  private located() {
    return {
      ...(this.hsm ? { hsm: this.hsm } : {}),
      ...(this.script ? { script: this.script } : {}),
    }
  }
}
