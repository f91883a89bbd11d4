// Where the daemon lives (ARCHITECTURE.md, "Daemon"): one per user and backend, its
// socket in a 0700 runtime directory, its journal in the state directory. Tests point
// HSMCTL_RUNTIME_DIR and HSMCTL_STATE_DIR at temp dirs.

import { mkdirSync, statSync, chmodSync } from 'node:fs'
import { homedir, tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'

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
 * Create a private directory (0700) or check that an existing one is ours and private:
 * the socket inside grants full control of the VMs.
 */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const st = statSync(dir)
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`)
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    throw new Error(
      `${dir} belongs to uid ${st.uid}, not to you; refusing to put the hsmd socket there`,
    )
  }
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700)
}
