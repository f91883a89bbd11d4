// Launching a registered script in the background (`vm start`), as acrnctl's `start` does
// (`bash NAME.sh ARGS`) but without blocking for the VM's lifetime: a small supervisor,
// a bash of its own session (so a terminal's Ctrl-C or hang-up does not reach the VM),
// runs the script with its output in a log and records its exit status. The caller waits
// until the VM is up, or until the script fails, and then reports the script's own words.

import { spawn } from 'node:child_process'
import { closeSync, renameSync, rmSync, writeSync } from 'node:fs'
import { constants } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ensurePrivateDir, openPrivateFile, readPrivateFile } from '../daemon/private-files.js'
import { DeviceModelError, TimeoutError } from '../errors.js'
import { acrnDmProcess, processInfo, vcpuThreadStarted } from './process.js'
import type { RegistryEntry } from './registry.js'
import { monitorSockets } from './vms.js'

/** Where hsmctl keeps the output of the VMs it launched: STATE_DIR/acrn-dm/NAME.log. */
export function logDir(stateDir: string): string {
  return join(stateDir, 'acrn-dm')
}

export function logPaths(stateDir: string, name: string) {
  const dir = logDir(stateDir)
  return { dir, log: join(dir, `${name}.log`), status: join(dir, `${name}.status`) }
}

/**
 * The supervisor: runs the script, keeps its status, and says in the log how it ended.
 * $0 is the script, the rest its arguments; HSMCTL_VM_STATUS is not passed on to it.
 */
const SUPERVISOR = [
  'status_file=$HSMCTL_VM_STATUS',
  'unset HSMCTL_VM_STATUS',
  // line-buffered (stdbuf, coreutils): acrn-dm's stdout to a file would reach the log only
  // in 4 KiB blocks, or at its exit
  'if command -v stdbuf >/dev/null; then stdbuf -oL -eL bash "$0" "$@"; else bash "$0" "$@"; fi',
  's=$?',
  // the log's last line first: whoever sees the status has the whole log
  'printf "hsmctl: %s exited with status %s at %s\\n" "$0" "$s" "$(date -u +%FT%TZ)"',
  'printf "%s\\n" "$s" > "$status_file"',
  'exit "$s"',
].join('\n')

export interface LaunchOptions {
  entry: RegistryEntry
  /** hsmctl's state dir (the log goes to its acrn-dm/). */
  stateDir: string
  mngrDir: string
  /** The script's environment (with the device shim's variables on the simulation). */
  env: NodeJS.ProcessEnv
  /** How long the VM may take to come up (ms). */
  timeoutMs: number
  /** Extra readiness: the HSM runs acrn-dm's VM (the daemon's view), when it can tell. */
  hsmRunning?: (pid: number) => Promise<boolean>
  cwd?: string
}

export interface Launched {
  name: string
  /** The supervisor (leader of the script's session and process group). */
  supervisorPid: number
  /** The acrn-dm the script started. */
  pid: number
  socket: string
  log: string
}

/** The last lines of a log, for an error message. */
export function logTail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

/** The status a launched script ended with, or undefined while it runs (or was not ours). */
export function lastExitStatus(stateDir: string, name: string): number | undefined {
  try {
    const text = readPrivateFile(logPaths(stateDir, name).status).toString('utf8').trim()
    return /^\d+$/.test(text) ? Number(text) : undefined
  } catch {
    return undefined
  }
}

/** Launch a registered script; resolves once its VM is up, rejects with why it is not. */
export async function launchScript(options: LaunchOptions): Promise<Launched> {
  const { entry } = options
  const paths = logPaths(options.stateDir, entry.name)
  ensurePrivateDir({
    path: paths.dir,
    role: 'directory of launched VMs’ logs',
    variable: 'HSMCTL_STATE_DIR',
  })
  // the previous run's log stays as NAME.log.1
  try {
    renameSync(paths.log, `${paths.log}.1`)
  } catch {
    // no previous log
  }
  rmSync(paths.status, { force: true })
  const fd = openPrivateFile(paths.log, 'create')
  const args = entry.args ?? []
  writeSync(
    fd,
    `hsmctl: starting ${entry.name} at ${new Date().toISOString()}: bash ${entry.script}${args.length ? ` ${args.join(' ')}` : ''}\n`,
  )
  const child = spawn('bash', ['-c', SUPERVISOR, entry.script, ...args], {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: { ...options.env, HSMCTL_VM_STATUS: paths.status },
    ...(options.cwd ? { cwd: options.cwd } : {}),
  })
  closeSync(fd)
  let exited: number | null = null
  child.once(
    'exit',
    (code, signal) => (exited = code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)),
  )
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve))
  child.unref()
  const supervisorPid = child.pid
  if (supervisorPid === undefined) throw await spawnError
  const deadline = Date.now() + options.timeoutMs
  const failure = (why: string) => {
    const log = readPrivateFile(paths.log).toString('utf8')
    return new DeviceModelError(
      `${why}; the end of its output:\n${logTail(log)}`,
      `the whole log: hsmctl vm log ${entry.name}`,
    )
  }
  for (;;) {
    // the script's acrn-dm: a monitor socket made by a process of the script's session
    const ours = monitorSockets(options.mngrDir).filter(
      (s) => processInfo(s.pid)?.session === supervisorPid,
    )
    const mine = ours.find((s) => s.name === entry.name && acrnDmProcess(s.pid, s.name))
    if (mine && vcpuThreadStarted(mine.pid) && (await (options.hsmRunning?.(mine.pid) ?? true))) {
      return { name: entry.name, supervisorPid, pid: mine.pid, socket: mine.path, log: paths.log }
    }
    const other = ours.find((s) => s.name !== entry.name)
    if (other) {
      throw failure(
        `${entry.script} started a VM named '${other.name}' (acrn-dm pid ${other.pid}), not '${entry.name}'`,
      )
    }
    if (exited !== null) {
      throw failure(
        `${entry.name}'s launch script exited with status ${exited} before its VM was up`,
      )
    }
    if (Date.now() > deadline) {
      throw new TimeoutError(
        `${entry.name} is not up after ${Math.round(options.timeoutMs / 1000)} s; its launch script still runs (process group ${supervisorPid})${mine ? `, acrn-dm pid ${mine.pid} has not started its vCPU` : ', with no acrn-dm monitor socket yet'}`,
        `see its output: hsmctl vm log ${entry.name}; stop it all with kill -TERM -${supervisorPid}`,
      )
    }
    await sleep(50)
  }
}
