// Every VM in one view (issue 12, item 1): hsmd's own (from the daemon), the acrn-dm
// processes found by their monitor sockets (each asked DM_QUERY), the launch scripts
// registered but not running, and the VMs the HSM has that some other process holds. An
// acrn-dm and the HSM's VM it holds are one VM: matched by the holder's pid.

import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Wire } from '../daemon/protocol.js'
import type { VmSummary } from '../vmm/manager.js'
import {
  DEFAULT_MONITOR_TIMEOUT_MS,
  DmMsg,
  MonitorError,
  monitorRequest,
  parseMonitorSocketName,
  suspendModeName,
  type MonitorSocket,
} from './monitor.js'
import type { AcrnPaths } from './paths.js'
import { acrnDmProcess, type ProcessInfo } from './process.js'
import { listRegistry, readSmallFile, registryEntry, type RegistryEntry } from './registry.js'

/** An acrn-dm found by its monitor socket, and what DM_QUERY answered. */
export interface AcrnDmInstance extends MonitorSocket {
  /** The process, or undefined when the pid is gone (a crash leaves the socket behind). */
  process: ProcessInfo | undefined
  /** DM_QUERY's suspend mode, or why it got no answer. */
  query: { mode: number } | { error: MonitorError }
}

/** The monitor sockets in `mngrDir`, exactly parsed; none when it does not exist. */
export function monitorSockets(mngrDir: string): MonitorSocket[] {
  let files: string[]
  try {
    files = readdirSync(mngrDir)
  } catch {
    return []
  }
  return files.flatMap((file) => {
    const parsed = parseMonitorSocketName(file)
    return parsed ? [{ ...parsed, path: join(mngrDir, file) }] : []
  })
}

export interface ScanOptions {
  timeoutMs?: number
  proc?: string
}

/** Ask one acrn-dm its state (DM_QUERY), if its process is still the one that made it. */
export async function inspectMonitor(
  socket: MonitorSocket,
  options: ScanOptions = {},
): Promise<AcrnDmInstance> {
  const process = acrnDmProcess(socket.pid, socket.name, options.proc)
  if (!process) {
    const error = new MonitorError(socket.path, {
      kind: 'connect',
      code: 'ESRCH',
      message: `pid ${socket.pid} is not acrn-dm any more`,
    })
    return { ...socket, process, query: { error } }
  }
  try {
    const reply = await monitorRequest(
      socket.path,
      { msgid: DmMsg.QUERY },
      options.timeoutMs ?? DEFAULT_MONITOR_TIMEOUT_MS,
    )
    return { ...socket, process, query: { mode: reply.value } }
  } catch (e) {
    if (!(e instanceof MonitorError)) throw e
    return { ...socket, process, query: { error: e } }
  }
}

/** Every acrn-dm with a monitor socket, each asked DM_QUERY (all at once). */
export function scanAcrnDm(mngrDir: string, options: ScanOptions = {}): Promise<AcrnDmInstance[]> {
  return Promise.all(monitorSockets(mngrDir).map((s) => inspectMonitor(s, options)))
}

/** What acrn-dm's own options say about its VM: RAM (-m, 256M by default) and vCPUs. */
export function dmOptions(argv: readonly string[]): {
  memory: bigint | null
  vcpus: number | null
} {
  let memory: bigint | null = 256n << 20n
  let vcpus: number | null = null
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!
    const value = (long: string, short?: string) => {
      if (a === long || (short !== undefined && a === short)) return argv[++i]
      if (a.startsWith(`${long}=`)) return a.slice(long.length + 1)
      if (short !== undefined && a.startsWith(short) && a.length > short.length)
        return a.slice(short.length)
      return undefined
    }
    const m = value('--memsize', '-m')
    if (m !== undefined) {
      const parsed = /^(0x[0-9a-f]+|[0-9]+)([gmk])$/i.exec(m)
      const shift = { g: 30n, m: 20n, k: 10n }[parsed?.[2]?.toLowerCase() as 'g' | 'm' | 'k']
      memory = parsed ? BigInt(parsed[1]!) << shift : null
      continue
    }
    const c = value('--cpu_affinity')
    if (c !== undefined) vcpus = c.split(',').filter((x) => x !== '').length
  }
  return { memory, vcpus }
}

/** One row of `vm list`: hsmd's own rows as the daemon gives them, the others alike. */
export interface VmListEntry extends Omit<Wire<VmSummary>, 'state' | 'owner' | 'memory'> {
  /**
   * hsmd's states (created, running, paused, journaled), the HSM's for another process's
   * VM, and for acrn-dm's: its own mode when not running (suspended, resetting,
   * powering-off, halted, triple-fault), `not-answering`, `gone` (the socket of an exited
   * acrn-dm); `stopped` for a registered script.
   */
  state: string
  vcpus: number | null
  /** Bytes, a hex string as every 64-bit value in JSON; null when unknown. */
  memory: string | null
  /** `hsmd`, `journal`, `acrn-dm (pid N)`, `script`, `outside process`. */
  owner: string
  /** An acrn-dm VM: its process and monitor socket. */
  acrnDm?: {
    pid: number
    socket: string
    /** DM_QUERY's suspend mode and its name, null without an answer. */
    mode: number | null
    modeName: string | null
    /** Why DM_QUERY got no answer. */
    error?: string
    /** The HSM's state of the VM (created, running, paused), when the daemon sees it. */
    hsmState?: string
  }
  /** A registered launch script (also for a running VM started from it). */
  script?: { path: string; args: string[] | null }
}

const MODE_STATES: Record<number, string> = {
  1: 'resetting',
  2: 'resetting',
  3: 'powering-off',
  4: 'suspended',
  5: 'halted',
  6: 'triple-fault',
}

/** The pid in a holder as the daemon words it, `pid 1234 (vm-sample)`. */
export function holderPid(holder: string | undefined): number | undefined {
  const m = holder === undefined ? null : /^pid (\d+)\b/.exec(holder)
  return m ? Number(m[1]) : undefined
}

export interface VmViews {
  /** The daemon's `vm.list` (hsmd's VMs, journaled ones, other processes' VMs). */
  daemon: Wire<VmSummary>[]
  acrnDm: AcrnDmInstance[]
  /** Registered scripts, with RAM and vCPUs from their acrn-dm options when they read. */
  registry: (RegistryEntry & { options?: ReturnType<typeof dmOptions> })[]
}

/** Read the acrn-dm side: sockets (queried) and the registry. */
export async function readAcrnViews(
  paths: AcrnPaths,
  options: ScanOptions = {},
): Promise<Omit<VmViews, 'daemon'>> {
  const [acrnDm, registry] = await Promise.all([
    scanAcrnDm(paths.mngrDir, options),
    Promise.resolve().then(() => listRegistry(paths.confDir)),
  ])
  return { acrnDm, registry: await withScriptOptions(registry) }
}

/** Registered scripts with RAM and vCPUs from their acrn-dm options, where they read. */
export async function withScriptOptions(registry: RegistryEntry[]): Promise<VmViews['registry']> {
  if (registry.length === 0) return registry
  // the script reader only when there are scripts (vm list's start-up is its fast path)
  const { readLaunchScript } = await import('./launch-script.js')
  return registry.map((r) => {
    const text = readSmallFile(r.script)
    try {
      return text === undefined
        ? r
        : { ...r, options: dmOptions(readLaunchScript(text, r.args ?? []).argv) }
    } catch {
      return r
    }
  })
}

const hexBytes = (n: bigint | null) => (n === null ? null : `0x${n.toString(16)}`)

/** The merged view, sorted by name. */
export function mergeVms(views: VmViews): VmListEntry[] {
  const rows: VmListEntry[] = []
  const registered = new Map(views.registry.map((r) => [r.name, r]))
  const outside = views.daemon.filter((v) => v.owner === 'outside process')
  const claimed = new Set<Wire<VmSummary>>()
  const running = new Set<string>()
  for (const v of views.daemon) if (v.owner !== 'outside process') rows.push({ ...v })
  for (const dm of views.acrnDm) {
    if (!dm.process) continue
    running.add(dm.name)
    // the HSM's VM this acrn-dm holds: by pid, else (holder unknown) by name
    const hsm =
      outside.find((v) => holderPid(v.holder) === dm.pid) ??
      outside.find((v) => v.holder === undefined && v.name === dm.name)
    if (hsm) claimed.add(hsm)
    const fromArgs = dmOptions(dm.process.argv)
    const mode = 'mode' in dm.query ? dm.query.mode : null
    const state =
      mode === null
        ? dm.query && 'error' in dm.query && dm.query.error.failure.kind === 'connect'
          ? 'unknown'
          : 'not-answering'
        : mode === 0
          ? (hsm?.state ?? 'running')
          : (MODE_STATES[mode] ?? `mode-${mode}`)
    const script = registered.get(dm.name)
    rows.push({
      name: dm.name,
      vmid: hsm?.vmid ?? null,
      state,
      vcpus: hsm?.vcpus ?? fromArgs.vcpus,
      memory: hsm?.memory ?? hexBytes(fromArgs.memory),
      owner: `acrn-dm (pid ${dm.pid})`,
      uptimeSeconds: dm.process.uptimeSeconds,
      acrnDm: {
        pid: dm.pid,
        socket: dm.path,
        mode,
        modeName: mode === null ? null : suspendModeName(mode),
        ...('error' in dm.query ? { error: dm.query.error.message } : {}),
        ...(hsm ? { hsmState: hsm.state } : {}),
      },
      ...(script ? { script: { path: script.script, args: script.args ?? null } } : {}),
    })
  }
  for (const r of views.registry) {
    if (running.has(r.name)) continue
    const opts = r.options ?? { memory: null, vcpus: null }
    rows.push({
      name: r.name,
      vmid: null,
      state: 'stopped',
      vcpus: opts.vcpus,
      memory: hexBytes(opts.memory),
      owner: 'script',
      uptimeSeconds: null,
      script: { path: r.script, args: r.args ?? null },
    })
  }
  // the socket of an acrn-dm that exited without removing it (it crashed)
  for (const dm of views.acrnDm) {
    if (dm.process || running.has(dm.name) || registered.has(dm.name)) continue
    rows.push({
      name: dm.name,
      vmid: null,
      state: 'gone',
      vcpus: null,
      memory: null,
      owner: `acrn-dm (pid ${dm.pid})`,
      uptimeSeconds: null,
      acrnDm: {
        pid: dm.pid,
        socket: dm.path,
        mode: null,
        modeName: null,
        error: 'the process is gone',
      },
    })
  }
  for (const v of outside) if (!claimed.has(v)) rows.push({ ...v })
  return rows.sort((a, b) => a.name.localeCompare(b.name))
}

/** Where a VM named so lives, by owner; the first that has the name wins, in this order. */
export type LocatedVm =
  /** hsmd's own (or journaled): the daemon's verbs apply. */
  | { kind: 'hsmd'; vm: Wire<VmSummary> }
  /** A running acrn-dm, with the HSM's view of its VM and its registered script if any. */
  | { kind: 'acrn-dm'; instance: AcrnDmInstance; hsm?: Wire<VmSummary>; script?: RegistryEntry }
  /** A registered launch script with no acrn-dm running. */
  | { kind: 'script'; entry: RegistryEntry; stale?: AcrnDmInstance }
  /** A VM of the HSM whose holder hsmctl cannot talk to. */
  | { kind: 'outside'; vm: Wire<VmSummary> }
  /** Only the socket of an acrn-dm that exited without removing it. */
  | { kind: 'gone'; instance: AcrnDmInstance }

/**
 * Find the VM named exactly `name`: hsmd's, else an acrn-dm's (asked DM_QUERY), else a
 * registered script, else another process's VM the daemon sees. `daemon` is the daemon's
 * `vm.list`, or undefined when no daemon runs.
 */
export async function locateVm(
  name: string,
  paths: AcrnPaths,
  daemon: Wire<VmSummary>[] | undefined,
  options: ScanOptions = {},
): Promise<LocatedVm | undefined> {
  const own = daemon?.find((v) => v.name === name && v.owner !== 'outside process')
  if (own) return { kind: 'hsmd', vm: own }
  const sockets = monitorSockets(paths.mngrDir).filter((s) => s.name === name)
  const instances = await Promise.all(sockets.map((s) => inspectMonitor(s, options)))
  const live = instances.find((i) => i.process)
  const script = registryEntry(paths.confDir, name)
  const outside = daemon?.filter((v) => v.owner === 'outside process') ?? []
  if (live) {
    const hsm =
      outside.find((v) => holderPid(v.holder) === live.pid) ??
      outside.find((v) => v.holder === undefined && v.name === name)
    return {
      kind: 'acrn-dm',
      instance: live,
      ...(hsm ? { hsm } : {}),
      ...(script ? { script } : {}),
    }
  }
  if (script)
    return { kind: 'script', entry: script, ...(instances[0] ? { stale: instances[0] } : {}) }
  const other = outside.find((v) => v.name === name)
  if (other) return { kind: 'outside', vm: other }
  if (instances[0]) return { kind: 'gone', instance: instances[0] }
  return undefined
}

/** `vm show` of a VM that is not hsmd's: what the HSM, the monitor socket and the registry know. */
export interface VmDescription extends VmListEntry {
  /** acrn-dm's command line (from /proc), for an acrn-dm VM. */
  commandLine?: string[]
  /** The log of a script hsmctl launched, and how its last run ended. */
  log?: { path: string; lastExitStatus: number | null }
}

export async function describeVm(
  found: Exclude<LocatedVm, { kind: 'hsmd' }>,
  extra: { log?: { path: string; lastExitStatus: number | null } } = {},
): Promise<VmDescription> {
  const registry =
    found.kind === 'acrn-dm' && found.script
      ? [found.script]
      : found.kind === 'script'
        ? [found.entry]
        : []
  const acrnDm = found.kind === 'acrn-dm' || found.kind === 'gone' ? [found.instance] : []
  const daemon =
    found.kind === 'outside' ? [found.vm] : found.kind === 'acrn-dm' && found.hsm ? [found.hsm] : []
  const [row] = mergeVms({ daemon, acrnDm, registry: await withScriptOptions(registry) })
  return {
    ...row!,
    ...(found.kind === 'acrn-dm' ? { commandLine: found.instance.process?.argv ?? [] } : {}),
    ...(extra.log ? { log: extra.log } : {}),
  }
}
