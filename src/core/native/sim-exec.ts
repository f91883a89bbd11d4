// `hsmctl sim exec PROGRAM [ARGS...]`: run a program with libhsm-shim.so preloaded and its
// /dev/acrn_hsm served by hsmd's simulation (helper/SHIM.md), as `strace PROGRAM` runs
// one: stdio passed through, the signals hsmctl gets passed on, and the program's exit
// status returned (128 + N when signal N killed it, as a shell reports it).

import { spawn, type ChildProcess } from 'node:child_process'
import { constants as fsConstants, existsSync } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import { constants as osConstants } from 'node:os'
import { delimiter, join } from 'node:path'
import {
  DaemonUnreachableError,
  NotExecutableError,
  ProgramNotFoundError,
  UsageError,
} from '../errors.js'
import { BUILD_HINT, shimPath } from './preflight.js'

export const SHIM_TRANSPORTS = ['auto', 'ring', 'socket'] as const
export type ShimTransport = (typeof SHIM_TRANSPORTS)[number]

const execHint = 'hsmctl sim exec [--transport auto|ring|socket] -- PROGRAM [ARGS...]'

/** The signals passed on to the program (it gets the terminal's own Ctrl-C directly too). */
export const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/**
 * The split of `sim exec`'s argv: its own flags, then PROGRAM and its arguments (after
 * `--`, or from the first word that is not a flag: a program's flags are its own).
 */
export function splitExecArgv(
  argv: readonly string[],
  flagsWithValue: readonly string[],
): { own: string[]; program: string | undefined; args: string[] } {
  const own: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!
    if (word === '--') return { own, program: argv[i + 1], args: argv.slice(i + 2) }
    if (!word.startsWith('-') || word === '-') {
      return { own, program: word, args: argv.slice(i + 1) }
    }
    own.push(word)
    if (flagsWithValue.includes(word) && i + 1 < argv.length) own.push(argv[++i]!)
  }
  return { own, program: undefined, args: [] }
}

/** libhsm-shim.so, built: its path; else an error with the build hint. */
export function builtShim(env: NodeJS.ProcessEnv = process.env): string {
  const path = shimPath(env)
  if (!existsSync(path)) {
    throw new DaemonUnreachableError(
      `the device shim is not built: ${path} does not exist`,
      BUILD_HINT,
    )
  }
  return path
}

/**
 * Where PROGRAM is, as sh finds it: a name with a slash as it is, else the first
 * executable file of that name on PATH. Not found: 127; found but not executable: 126.
 */
export async function findProgram(program: string, env: NodeJS.ProcessEnv): Promise<string> {
  if (program === '') throw new UsageError('PROGRAM is empty', { hint: execHint })
  const candidates = program.includes('/')
    ? [program]
    : (env.PATH ?? '/usr/local/bin:/usr/bin:/bin')
        .split(delimiter)
        .map((dir) => join(dir === '' ? '.' : dir, program))
  let denied: string | undefined
  for (const path of candidates) {
    const st = await stat(path).catch(() => undefined)
    if (!st) continue
    if (st.isFile() && (await executable(path))) return path
    denied ??= st.isDirectory() ? `${path} is a directory` : `${path}: permission denied`
    // sh keeps looking on PATH, and reports the first it could not run at the end
  }
  if (denied) {
    throw new NotExecutableError(
      `${program}: cannot execute: ${denied}`,
      'check its mode (chmod +x)',
    )
  }
  throw new ProgramNotFoundError(
    program.includes('/') ? `${program}: no such file` : `${program}: command not found`,
    program.includes('/')
      ? 'check the path'
      : `it is not on PATH; give its path (./${program}) or add its directory to PATH`,
  )
}

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, fsConstants.X_OK)
    return true
  } catch {
    return false
  }
}

/**
 * The program's environment: LD_PRELOAD keeps what it had (a sanitizer's runtime must
 * stay first) and gets the shim after it; HSM_SHIM_SOCKET names the server.
 */
export function shimEnvironment(
  env: NodeJS.ProcessEnv,
  options: { shim: string; socket: string; transport: ShimTransport },
): NodeJS.ProcessEnv {
  // ld.so takes colons or spaces between the libraries
  const preload = (env.LD_PRELOAD ?? '')
    .split(/[: ]/)
    .filter((lib) => lib !== '' && lib !== options.shim)
  return {
    ...env,
    LD_PRELOAD: [...preload, options.shim].join(':'),
    HSM_SHIM_SOCKET: options.socket,
    HSM_SHIM_TRANSPORT: options.transport,
  }
}

/** How a program ended, as its exit status: its code, or 128 + the signal's number. */
export function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code
  const n = signal ? osConstants.signals[signal] : undefined
  return n === undefined ? 1 : 128 + n
}

/**
 * Run `path` (argv[0] `program`) with stdio passed through and FORWARDED_SIGNALS passed
 * on while it runs; resolves with its exit status.
 */
export function runProgram(
  path: string,
  program: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<number> {
  return new Promise((resolve, reject) => {
    // The handlers come first: a signal sent as soon as the program is seen running (on a
    // loaded machine, before this thread ran on past spawn) killed hsmctl by default and
    // left the program running, orphaned. Node runs them on a later turn, when `child` is set.
    const running: { child?: ChildProcess } = {}
    const forward = (signal: NodeJS.Signals) => () => {
      const child = running.child
      // it may have exited a moment ago: nothing to pass on
      if (child && child.exitCode === null && child.signalCode === null) child.kill(signal)
    }
    const handlers = FORWARDED_SIGNALS.map((s) => [s, forward(s)] as const)
    for (const [s, h] of handlers) process.on(s, h)
    const child = spawn(path, args, { argv0: program, env, stdio: 'inherit' })
    running.child = child
    const done = () => {
      for (const [s, h] of handlers) process.off(s, h)
    }
    child.once('error', (e: NodeJS.ErrnoException) => {
      done()
      // it changed between the look on PATH and the exec
      if (e.code === 'ENOENT') reject(new ProgramNotFoundError(`${program}: ${e.message}`))
      else reject(new NotExecutableError(`${program}: cannot execute: ${e.message}`))
    })
    child.once('exit', (code, signal) => {
      done()
      resolve(exitStatus(code, signal))
    })
  })
}
