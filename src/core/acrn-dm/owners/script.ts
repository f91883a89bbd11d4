// A launch script registered with `vm add` or acrnctl (NAME.sh and NAME.args), not
// running: `vm start` launches it as a supervised process with its output in a log, and
// `vm del` removes its registration, both files or neither.

import { ConflictError, NotFoundError, type HsmctlError } from '../../errors.js'
import type { Backend } from '../../daemon/paths.js'
import type { Wire } from '../../daemon/protocol.js'
import type { VmSummary } from '../../vmm/manager.js'
import type { AcrnPaths } from '../paths.js'
import type { RegistryEntry } from '../registry.js'
import type { Launched } from '../supervisor.js'
import type { AcrnDmInstance } from '../vms.js'
import { describe } from './describe.js'
import { Owner, timeoutMs, type Shown, type Started, type Verb, type VerbContext } from './owner.js'

export class ScriptVm extends Owner {
  readonly kind = 'script'
  readonly takenBy = undefined

  /** `stale`: the socket a crashed acrn-dm of this name left behind. */
  constructor(
    name: string,
    private readonly paths: AcrnPaths,
    readonly entry: RegistryEntry,
    readonly stale?: AcrnDmInstance,
  ) {
    super(name)
  }

  refusal(verb: Verb): HsmctlError {
    if (verb === 'log') {
      return new NotFoundError(
        `'${this.name}' has no log: hsmctl has not started it here`,
        `start it: hsmctl vm start ${this.name}`,
      )
    }
    return new ConflictError(
      `'${this.name}' is not running: it is a registered launch script (${this.entry.script})`,
      `start it first: hsmctl vm start ${this.name}`,
    )
  }

  override show(ctx: VerbContext): Promise<Shown> {
    const stale = this.stale ? { stale: this.stale } : {}
    return describe(ctx, { kind: 'script', entry: this.entry, ...stale }, undefined)
  }

  override async start(ctx: VerbContext, options: { timeoutSeconds: number }): Promise<Started> {
    return {
      by: 'script',
      launched: await launchRegistered(ctx, this.entry, options.timeoutSeconds),
    }
  }

  override async del(ctx: VerbContext): Promise<{ name: string; removed: string[] }> {
    await ctx.confirm(`Delete the registration of '${this.name}' (${this.entry.script})?`)
    const { removeFromRegistry } = await import('../registry.js')
    return { name: this.name, ...removeFromRegistry(this.paths.confDir, this.name) }
  }
}

/**
 * Launch a registered script in the background and wait until its VM is up. On the
 * simulation its acrn-dm runs under the device shim, against the daemon's simulation.
 */
export async function launchRegistered(
  ctx: VerbContext,
  entry: RegistryEntry,
  timeoutSeconds: number,
): Promise<Launched> {
  const [{ launchScript }, { stateDir }, { acrnPaths }] = await Promise.all([
    import('../supervisor.js'),
    import('../../daemon/paths.js'),
    import('../paths.js'),
  ])
  let env: NodeJS.ProcessEnv = process.env
  let hsmRunning: ((pid: number) => Promise<boolean>) | undefined
  if ((ctx.backend as Backend) === 'sim') {
    const { builtShim, shimEnvironment } = await import('../../native/sim-exec.js')
    const shim = builtShim()
    const serving = await ctx.call<{ socket: string; started: boolean; transport: string }>(
      'sim.serve',
    )
    if (serving.started) {
      ctx.note(
        `hsmd serves its simulation to shimmed programs on ${serving.socket} (${serving.transport})`,
      )
    }
    env = shimEnvironment(process.env, { shim, socket: serving.socket, transport: 'auto' })
    const { holderPid } = await import('../vms.js')
    hsmRunning = async (pid) =>
      (await ctx.call<Wire<VmSummary>[]>('vm.list')).some(
        (v) => holderPid(v.holder) === pid && v.state === 'running',
      )
  }
  return launchScript({
    entry,
    stateDir: stateDir(),
    mngrDir: acrnPaths().mngrDir,
    env,
    timeoutMs: timeoutMs(timeoutSeconds),
    ...(hsmRunning ? { hsmRunning } : {}),
  })
}
