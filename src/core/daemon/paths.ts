// Where the daemon lives (ARCHITECTURE.md, "Daemon"): one per user and backend, its
// socket in a private runtime directory, its journal in the state directory, both checked
// by private-files.ts. Tests point HSMCTL_RUNTIME_DIR and HSMCTL_STATE_DIR at temp dirs.

import { homedir, tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { DaemonUnreachableError } from '../errors.js'
import {
  checkPrivateDir,
  ensurePrivateDir,
  UnsafePathError,
  type PrivateDir,
} from './private-files.js'

export type Backend = 'sim' | 'native'

export const BACKENDS: readonly Backend[] = ['sim', 'native']

export function runtimeDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HSMCTL_RUNTIME_DIR) return env.HSMCTL_RUNTIME_DIR
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'hsmctl')
  return join(tmpdir(), `hsmctl-${userInfo().uid}`)
}

export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HSMCTL_STATE_DIR) return env.HSMCTL_STATE_DIR
  const base = env.XDG_STATE_HOME || join(homedir(), '.local', 'state')
  return join(base, 'hsmctl')
}

export function socketPath(backend: Backend, env: NodeJS.ProcessEnv = process.env): string {
  return join(runtimeDir(env), `hsmd-${backend}.sock`)
}

export function logPath(backend: Backend, env: NodeJS.ProcessEnv = process.env): string {
  return join(stateDir(env), `hsmd-${backend}.log`)
}

/**
 * Where one backend's daemon keeps its VMs' journal (`vms/`) and console logs
 * (`consoles/`). Each backend has its own: a spec journaled on the simulation, marked
 * autostart, must never be recreated on real hardware by the native daemon.
 */
export function backendStateDir(backend: Backend, env: NodeJS.ProcessEnv = process.env): string {
  return join(stateDir(env), backend)
}

export function backendStatePrivateDir(
  backend: Backend,
  env: NodeJS.ProcessEnv = process.env,
): PrivateDir {
  return {
    path: backendStateDir(backend, env),
    role: `${backend} backend's state directory`,
    variable: 'HSMCTL_STATE_DIR',
  }
}

/** The runtime dir as ensurePrivateDir checks it. */
export function runtimePrivateDir(env: NodeJS.ProcessEnv = process.env): PrivateDir {
  return { path: runtimeDir(env), role: 'runtime directory', variable: 'HSMCTL_RUNTIME_DIR' }
}

export function statePrivateDir(env: NodeJS.ProcessEnv = process.env): PrivateDir {
  return { path: stateDir(env), role: 'state directory', variable: 'HSMCTL_STATE_DIR' }
}

/**
 * Check the daemon's two directories before using them (creating them when `create`):
 * one that is not safe makes the daemon unreachable (exit 5), said with the reason. The
 * client checks too, so that it never talks to a socket in someone else's directory.
 */
export function checkDaemonDirs(env: NodeJS.ProcessEnv = process.env, create = true): void {
  try {
    for (const dir of [runtimePrivateDir(env), statePrivateDir(env)]) {
      if (create) ensurePrivateDir(dir)
      else checkPrivateDir(dir)
    }
  } catch (e) {
    if (e instanceof UnsafePathError) throw new DaemonUnreachableError(e.message, e.hint)
    throw e
  }
}
