// One backend's own state directory (STATE/sim, STATE/native): its journal and console
// logs. Earlier versions shared STATE/vms between both daemons, so a spec made on the simulation and
// marked autostart was recreated on real hardware by the native daemon. The simulation's
// daemon adopts such a shared journal (the default backend, and recreating a spec there
// is harmless); the native daemon never reads it and says so in its log.

import { lstatSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { DaemonUnreachableError } from '../errors.js'
import { backendStatePrivateDir, stateDir, type Backend } from './paths.js'
import { ensurePrivateDir, UnsafePathError } from './private-files.js'

const SHARED = ['vms', 'consoles'] as const

/** The backend's state directory, created 0700 (and the shared one adopted by the sim). */
export function backendState(
  backend: Backend,
  env: NodeJS.ProcessEnv,
  log: ((line: string) => void) | undefined,
): string {
  const own = backendStatePrivateDir(backend, env)
  try {
    ensurePrivateDir(own)
  } catch (e) {
    if (e instanceof UnsafePathError) throw new DaemonUnreachableError(e.message, e.hint)
    throw e
  }
  for (const name of SHARED) {
    const shared = join(stateDir(env), name)
    if (!isPlainDir(shared)) continue
    const mine = join(own.path, name)
    if (backend !== 'sim') {
      log?.(
        `${shared} is the journal shared by both backends by earlier hsmctl versions: the sim daemon adopts it; this daemon does not read it`,
      )
      continue
    }
    if (lstatOrUndefined(mine)) {
      log?.(`${shared} left as it is: ${mine} exists (move what you need from one to the other)`)
      continue
    }
    renameSync(shared, mine)
    log?.(`adopted ${shared} as ${mine}: each backend now has its own`)
  }
  return own.path
}

function lstatOrUndefined(path: string) {
  try {
    return lstatSync(path)
  } catch {
    return undefined
  }
}

/** A real directory, not a link to one (a planted link is never adopted). */
function isPlainDir(path: string): boolean {
  return lstatOrUndefined(path)?.isDirectory() === true
}
