// What the `vm` commands share for acrn-dm's VMs: finding a VM by its exact name among
// acrn-dm's sockets and the launch-script registry before asking hsmd (so that managing
// acrn-dm's VMs never needs a daemon), and launching a registered script, under the device
// shim when the backend is the simulation.

import { UsageError } from '../core/errors.js'
import { acrnPaths } from '../core/acrn-dm/paths.js'
import type { LocatedVm } from '../core/acrn-dm/vms.js'
import type { Verb } from '../core/acrn-dm/owners.js'
import type { Backend } from '../core/daemon/paths.js'
import type { Wire } from '../core/daemon/protocol.js'
import type { HypervisorView, VmSummary } from '../core/vmm/manager.js'
import type { RegistryEntry } from '../core/acrn-dm/registry.js'
import type { DaemonCommand } from './daemon-command.js'

/** The daemon's `vm.list` when a daemon of this backend runs; undefined otherwise. */
export async function runningDaemonVms(backend: Backend): Promise<Wire<VmSummary>[] | undefined> {
  const { connectIfRunning } = await import('../core/daemon/autostart.js')
  const client = await connectIfRunning(backend)
  if (!client) return undefined
  try {
    return await client.call<Wire<VmSummary>[]>('vm.list')
  } finally {
    client.close()
  }
}

/**
 * An acrn-dm VM or registered script named exactly `name`, unless a running hsmd has a VM
 * of its own by that name (hsmd's VMs come first). Undefined: let hsmd answer.
 */
export async function acrnDmVm(name: string, where: Where): Promise<NotHsmd | undefined> {
  // acrn-dm's VMs are this machine's: on a remote host (--host) only its hsmd is reached
  if (where.host) return undefined
  const backend = where.backend
  const { locateVm } = await import('../core/acrn-dm/vms.js')
  const paths = acrnPaths()
  const found = await locateVm(name, paths, undefined)
  if (!found) return undefined
  const daemon = await runningDaemonVms(backend as Backend).catch(() => undefined)
  if (daemon?.some((v) => v.name === name && v.owner !== 'outside process')) return undefined
  if (found.kind !== 'acrn-dm' || !daemon) return found as NotHsmd
  // the HSM's view of acrn-dm's VM, when the daemon sees it (the simulation)
  const again = await locateVm(name, paths, daemon)
  return again && again.kind !== 'hsmd' ? again : (found as NotHsmd)
}

/** Where a command looks for a VM: its --backend, and its --host (none: this machine). */
export interface Where {
  backend: string
  host?: string | undefined
}

/** A located VM that is not hsmd's own. */
export type NotHsmd = Exclude<LocatedVm, { kind: 'hsmd' }>

/**
 * Where a VM named `name` is, for a verb hsmd does not have: acrn-dm's side first, then
 * a running daemon (hsmd's own, or another process's VM). Undefined when nobody has it.
 */
export async function locate(name: string, where: Where): Promise<LocatedVm | undefined> {
  if (where.host) return undefined
  const backend = where.backend
  const acrn = await acrnDmVm(name, where)
  if (acrn) return acrn
  const daemon = await runningDaemonVms(backend as Backend).catch(() => undefined)
  const { locateVm } = await import('../core/acrn-dm/vms.js')
  return daemon ? locateVm(name, acrnPaths(), daemon) : undefined
}

/** The located VM as the verb needs it (acrn-dm's), or the error saying what to do instead. */
export async function requireAcrnDm(
  name: string,
  backend: string,
  verb: Verb,
): Promise<Extract<LocatedVm, { kind: 'acrn-dm' }>> {
  const found = await locate(name, { backend })
  const { noSuchVm, wrongOwner } = await import('../core/acrn-dm/owners.js')
  if (!found) throw noSuchVm(name)
  if (found.kind !== 'acrn-dm') throw wrongOwner(name, found, verb, acrnPaths())
  return found
}

/**
 * hsmd said it has no such VM: if the daemon sees another process's VM of that name, the
 * error says what can be done instead; otherwise hsmd's own error stands.
 */
export async function outsideOr(
  cmd: DaemonCommand,
  name: string,
  verb: Verb,
  error: unknown,
): Promise<never> {
  if (!isNoVm(error)) throw error
  const daemon = await cmd.call<Wire<VmSummary>[]>('vm.list').catch(() => undefined)
  const outside = daemon?.find((v) => v.name === name && v.owner === 'outside process')
  if (outside) {
    const { wrongOwner } = await import('../core/acrn-dm/owners.js')
    throw wrongOwner(name, { kind: 'outside', vm: outside }, verb, acrnPaths())
  }
  throw error
}

/** hsmd's "no VM named" (not another not-found, such as a file). */
export function isNoVm(error: unknown): boolean {
  return (
    (error as { exitCode?: number }).exitCode === 3 &&
    /^no VM named '/.test((error as Error).message)
  )
}

/** `--timeout S` as milliseconds. */
export function timeoutMs(seconds: number): number {
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new UsageError(`${seconds} is not a number of seconds above 0`, { flag: '--timeout' })
  }
  return Math.round(seconds * 1000)
}

/**
 * Launch a registered script in the background and wait until its VM is up. On the
 * simulation its acrn-dm runs under the device shim, against the daemon's simulation.
 */
export async function startScript(
  cmd: DaemonCommand,
  entry: RegistryEntry,
  backend: string,
  timeout: number,
): Promise<import('../core/acrn-dm/supervisor.js').Launched> {
  const [{ launchScript }, { stateDir }] = await Promise.all([
    import('../core/acrn-dm/supervisor.js'),
    import('../core/daemon/paths.js'),
  ])
  let env: NodeJS.ProcessEnv = process.env
  let hsmRunning: ((pid: number) => Promise<boolean>) | undefined
  if (backend === 'sim') {
    const { builtShim, shimEnvironment } = await import('../core/native/sim-exec.js')
    const shim = builtShim()
    const serving = await cmd.call<{ socket: string; started: boolean; transport: string }>(
      'sim.serve',
    )
    if (serving.started) {
      process.stderr.write(
        `hsmctl: hsmd serves its simulation to shimmed programs on ${serving.socket} (${serving.transport})\n`,
      )
    }
    env = shimEnvironment(process.env, { shim, socket: serving.socket, transport: 'auto' })
    const { holderPid } = await import('../core/acrn-dm/vms.js')
    hsmRunning = async (pid) =>
      (await cmd.call<Wire<VmSummary>[]>('vm.list')).some(
        (v) => holderPid(v.holder) === pid && v.state === 'running',
      )
  }
  return launchScript({
    entry,
    stateDir: stateDir(),
    mngrDir: acrnPaths().mngrDir,
    env,
    timeoutMs: timeoutMs(timeout),
    ...(hsmRunning ? { hsmRunning } : {}),
  })
}

/** `vm show` of a VM that is not hsmd's: printed, and returned for --json. */
export async function showOther(cmd: DaemonCommand, found: NotHsmd) {
  const [{ describeVm }, { lastExitStatus, logPaths }, { stateDir }, { existsSync }] =
    await Promise.all([
      import('../core/acrn-dm/vms.js'),
      import('../core/acrn-dm/supervisor.js'),
      import('../core/daemon/paths.js'),
      import('node:fs'),
    ])
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
  // the simulated hypervisor's view (vCPUs, interrupt lines, MSIs) when the running
  // daemon's platform has the VM (acrn-dm under `sim exec`)
  const hsmName =
    found.kind === 'outside'
      ? found.vm.name
      : found.kind === 'acrn-dm'
        ? found.hsm?.name
        : undefined
  const view =
    hsmName === undefined
      ? undefined
      : await cmd
          .call<Wire<HypervisorView>>('vm.hypervisor', { name: hsmName })
          .catch(() => undefined)
  if (!cmd.jsonEnabled()) {
    const [{ renderVmDescription }, { hypervisorSections }] = await Promise.all([
      import('../ui/acrn-dm.js'),
      import('../ui/vm.js'),
    ])
    const lines = [renderVmDescription(vm)]
    if (view) hypervisorSections(view, lines)
    process.stdout.write(`${lines.join('\n')}\n`)
  }
  return view ? { ...vm, execution: view.execution, hypervisor: view.hypervisor } : vm
}

/** `vm start` of a VM that is not hsmd's: launch its registered script. */
export async function startOther(
  cmd: DaemonCommand,
  name: string,
  found: NotHsmd,
  backend: string,
  timeout: number,
) {
  if (found.kind !== 'script') {
    const { wrongOwner } = await import('../core/acrn-dm/owners.js')
    throw wrongOwner(name, found, 'start', acrnPaths())
  }
  const launched = await startScript(cmd, found.entry, backend, timeout)
  cmd.log(`started ${name} (acrn-dm pid ${launched.pid}); its output: hsmctl vm log ${name}`)
  return launched
}

/**
 * `vm reset` of an acrn-dm VM, as acrnctl's: stop it (DM_STOP), wait until it is gone,
 * start its registered script again. Refused before anything is stopped when there is no
 * script to start it with.
 */
export async function resetOther(
  cmd: DaemonCommand,
  name: string,
  found: NotHsmd,
  options: { backend: string; force: boolean; timeout: number; confirm: () => Promise<void> },
) {
  const { wrongOwner } = await import('../core/acrn-dm/owners.js')
  if (found.kind !== 'acrn-dm') throw wrongOwner(name, found, 'reset', acrnPaths())
  if (!found.script) {
    throw new UsageError(
      `'${name}' has no registered launch script to start it again; nothing was changed`,
      {
        hint: `register the script that launched it (hsmctl vm add SCRIPT), or stop it alone: hsmctl vm stop ${name}`,
      },
    )
  }
  await options.confirm()
  const { stopVm, targetOf } = await import('../core/acrn-dm/lifecycle.js')
  const stopped = await stopVm(targetOf(found.instance), {
    force: options.force,
    timeoutMs: timeoutMs(options.timeout),
  })
  const started = await startScript(cmd, found.script, options.backend, options.timeout)
  cmd.log(`reset ${name}: acrn-dm pid ${stopped.pid} stopped, pid ${started.pid} started`)
  return { name, stopped, started }
}

/** `vm destroy` of an acrn-dm VM: a forced stop (DM_STOP with force), waited for. */
export async function destroyOther(name: string, found: NotHsmd, timeout: number) {
  const { wrongOwner } = await import('../core/acrn-dm/owners.js')
  if (found.kind !== 'acrn-dm') throw wrongOwner(name, found, 'destroy', acrnPaths())
  const { stopVm, targetOf } = await import('../core/acrn-dm/lifecycle.js')
  const stopped = await stopVm(targetOf(found.instance), {
    force: true,
    timeoutMs: timeoutMs(timeout),
  })
  return { name, vmid: found.hsm?.vmid ?? null, pid: stopped.pid }
}
