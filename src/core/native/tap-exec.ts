// `hsmctl trace exec|env`: a program's environment with the tap (helper/TAP.md) preloaded
// and pointed at hsmd's tap socket, stacked on the device shim when the daemon serves its
// simulation (the tap first, so that its "real device" is the shim).

import { existsSync } from 'node:fs'
import { DaemonUnreachableError } from '../errors.js'
import { BUILD_HINT, tapPath } from './preflight.js'
import type { ShimTransport } from './sim-exec.js'

/** libhsm-tap.so, built: its path; else an error with the build hint. */
export function builtTap(): string {
  const path = tapPath()
  if (!existsSync(path)) {
    throw new DaemonUnreachableError(`the tap is not built: ${path} does not exist`, BUILD_HINT)
  }
  return path
}

export interface TapSetup {
  tap: string
  /** hsmd's tap socket (HSM_TAP_SOCKET). */
  socket: string
  /** On the simulation: the shim and the socket the daemon serves it on. */
  shim?: { path: string; socket: string; transport: ShimTransport }
}

/** The variables the tap (and the shim under it) read, without LD_PRELOAD. */
function variables(setup: TapSetup): Record<string, string> {
  return {
    HSM_TAP_SOCKET: setup.socket,
    ...(setup.shim
      ? { HSM_SHIM_SOCKET: setup.shim.socket, HSM_SHIM_TRANSPORT: setup.shim.transport }
      : {}),
  }
}

/** The libraries to preload, in order: the tap, then the shim it passes calls to. */
export function tapLibraries(setup: TapSetup): string[] {
  return setup.shim ? [setup.tap, setup.shim.path] : [setup.tap]
}

/**
 * The program's environment: LD_PRELOAD keeps what it had first (a sanitizer's runtime
 * must stay first), then the tap, then the shim.
 */
export function tapEnvironment(env: NodeJS.ProcessEnv, setup: TapSetup): NodeJS.ProcessEnv {
  const ours = tapLibraries(setup)
  // ld.so takes colons or spaces between the libraries
  const kept = (env.LD_PRELOAD ?? '').split(/[: ]/).filter((l) => l !== '' && !ours.includes(l))
  return { ...env, LD_PRELOAD: [...kept, ...ours].join(':'), ...variables(setup) }
}

/** A word as sh reads it back unchanged. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_/.:+=,@%-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}

/**
 * One line for a launch script (sh): exports the variables, and adds the libraries to
 * whatever LD_PRELOAD holds when the line runs.
 */
export function tapEnvLine(setup: TapSetup): string {
  const libraries = shellQuote(tapLibraries(setup).join(':'))
  const rest = Object.entries(variables(setup)).map(([k, v]) => `${k}=${shellQuote(v)}`)
  return ['export', `LD_PRELOAD="\${LD_PRELOAD:+$LD_PRELOAD:}"${libraries}`, ...rest].join(' ')
}

/** What the daemon answers that `trace exec|env` needs. */
interface DaemonCalls {
  call<T>(method: string, params?: Record<string, unknown>): Promise<T>
}

/**
 * Ask the daemon where taps connect and, on the simulation, to serve its simulation to
 * shimmed programs (if it does not already): `said` gets one line when it starts to.
 */
export async function tapSetup(
  client: DaemonCalls,
  options: {
    backend: 'sim' | 'native'
    transport: ShimTransport
    shim: () => string
    said: (line: string) => void
  },
): Promise<TapSetup> {
  const tap = builtTap()
  const shimLibrary = options.backend === 'sim' ? options.shim() : undefined
  const { socket } = await client.call<{ socket: string }>('tap.list')
  if (shimLibrary === undefined) return { tap, socket }
  const serving = await client.call<{ socket: string; started: boolean; transport: string }>(
    'sim.serve',
  )
  if (serving.started) {
    options.said(
      `hsmctl: hsmd serves its simulation to shimmed programs on ${serving.socket} (${serving.transport})`,
    )
  }
  return {
    tap,
    socket,
    shim: { path: shimLibrary, socket: serving.socket, transport: options.transport },
  }
}
