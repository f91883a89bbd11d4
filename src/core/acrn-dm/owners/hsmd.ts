// hsmd's own VMs (and the specs it journals): every verb is the daemon's, asked over its
// socket. A name hsmd does not have may be another process's VM the daemon sees: then the
// error says what can be done instead of hsmd's "no VM named".

import { ConflictError, type HsmctlError } from '../../errors.js'
import type { Wire } from '../../daemon/protocol.js'
import type { ForgottenVm, VmDetails, VmSummary } from '../../vmm/manager.js'
import type { AcrnPaths } from '../paths.js'
import {
  Owner,
  type Destroyed,
  type Reset,
  type Shown,
  type Started,
  type Verb,
  type VerbContext,
} from './owner.js'

const INSTEAD: Partial<Record<Verb, (n: string) => string>> = {
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

export class HsmdVm extends Owner {
  readonly kind = 'hsmd'

  /** `vm`: the daemon's row when it was listed; undefined when the daemon is to be asked. */
  constructor(
    name: string,
    private readonly paths: AcrnPaths,
    readonly vm?: Wire<VmSummary>,
  ) {
    super(name)
  }

  get takenBy(): string {
    return `hsmd's ${this.vm?.owner === 'journal' ? 'journaled ' : ''}VM`
  }

  refusal(verb: Verb): HsmctlError {
    return new ConflictError(
      `'${this.name}' is hsmd's own VM (vmid ${this.vm?.vmid ?? '-'}), not acrn-dm's`,
      INSTEAD[verb]?.(this.name) ?? 'see hsmctl vm --help',
    )
  }

  override async show(ctx: VerbContext): Promise<Shown> {
    try {
      return { by: 'hsmd', vm: await ctx.call<Wire<VmDetails>>('vm.show', { name: this.name }) }
    } catch (e) {
      // another owner's VM of that name, seen by the daemon or appeared since
      if (!isNoVm(e)) throw e
      const { locateOwner } = await import('./locate.js')
      const other = await locateOwner(this.name, ctx)
      if (!other || other.kind === 'hsmd') throw e
      return other.show(ctx)
    }
  }

  /** START_VM, or a journaled VM recreated from its journal first (`recreated`). */
  override async start(ctx: VerbContext): Promise<Started> {
    const vm = await this.ask<Wire<VmDetails> & { recreated?: boolean }>(ctx, 'start', 'vm.start')
    return { by: 'hsmd', vm }
  }

  override async pause(ctx: VerbContext): Promise<Wire<VmDetails>> {
    return this.ask<Wire<VmDetails>>(ctx, 'pause', 'vm.pause')
  }

  override async reset(ctx: VerbContext): Promise<Reset> {
    await ctx.confirm(`Reset VM '${this.name}'? Its vCPUs restart from their reset state.`)
    return { by: 'hsmd', vm: await this.ask<Wire<VmDetails>>(ctx, 'reset', 'vm.reset') }
  }

  /** Destroyed, or (a VM only journaled) forgotten. */
  override async destroy(ctx: VerbContext): Promise<Destroyed> {
    const result = await this.ask<{ name: string; vmid: number } | ForgottenVm>(
      ctx,
      'destroy',
      'vm.destroy',
    )
    return { by: 'hsmd', result }
  }

  /** The daemon's verb; its "no VM named" becomes another process's refusal when it has one. */
  private async ask<T>(ctx: VerbContext, verb: Verb, method: string): Promise<T> {
    try {
      return await ctx.call<T>(method, { name: this.name })
    } catch (e) {
      if (!isNoVm(e)) throw e
      const daemon = await ctx.call<Wire<VmSummary>[]>('vm.list').catch(() => undefined)
      const outside = daemon?.find((v) => v.name === this.name && v.owner === 'outside process')
      if (!outside) throw e
      const { OutsideVm } = await import('./outside.js')
      throw new OutsideVm(this.name, this.paths, outside).refusal(verb)
    }
  }
}

/** hsmd's "no VM named" (not another not-found, such as a file). */
export function isNoVm(error: unknown): boolean {
  return (
    (error as { exitCode?: number }).exitCode === 3 &&
    /^no VM named '/.test((error as Error).message)
  )
}
