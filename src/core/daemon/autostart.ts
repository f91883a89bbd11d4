// Any command starts the daemon on demand (and says so once on stderr), so users never
// have to know it exists until they want to.

import { spawn } from 'node:child_process'
import { closeSync } from 'node:fs'
import { createConnection, type Socket } from 'node:net'
import { dirname, join } from 'node:path'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { DaemonUnreachableError } from '../errors.js'
import { connect, type DaemonClient } from './client.js'
import { checkDaemonDirs, logPath, socketPath, type Backend } from './paths.js'
import { openPrivateFile, UnsafePathError } from './private-files.js'
import { STARTUP_FD_ENV, startupError } from './startup.js'

const RUN_JS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'run.js')

export interface EnsureOptions {
  backend: Backend
  env?: NodeJS.ProcessEnv
  /** Told once when this call had to start the daemon. */
  onStart?: (info: { pid: number; socket: string; log: string }) => void
  /** How long to wait for a starting daemon (ms). */
  timeout?: number
}

function isAbsent(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code
  return code === 'ENOENT' || code === 'ECONNREFUSED'
}

/** Connect to the backend's daemon, starting it first if none is running. */
export function ensureDaemon(options: EnsureOptions): Promise<DaemonClient> {
  return ensureWith(options, connect)
}

/** The same, as the bare socket (`daemon dial-stdio` pipes it to its stdio). */
export function ensureDaemonSocket(options: EnsureOptions): Promise<Socket> {
  return ensureWith(options, connectSocket)
}

/** A connected socket, or the connect error (ENOENT, ECONNREFUSED: no daemon). */
export function connectSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path)
    socket.once('error', reject)
    socket.once('connect', () => {
      socket.removeListener('error', reject)
      resolve(socket)
    })
  })
}

async function ensureWith<T>(
  options: EnsureOptions,
  connect: (path: string) => Promise<T>,
): Promise<T> {
  const env = options.env ?? process.env
  const path = socketPath(options.backend, env)
  checkDaemonDirs(env)
  try {
    return await connect(path)
  } catch (e) {
    if (!isAbsent(e)) throw unreachable(path, e)
  }
  const log = logPath(options.backend, env)
  let fd: number
  try {
    fd = openPrivateFile(log, 'append')
  } catch (e) {
    if (e instanceof UnsafePathError) throw new DaemonUnreachableError(e.message, e.hint)
    throw e
  }
  // fd 3: hsmd's own error if it cannot start (startup.ts), so we print it, not "see the log"
  const child = spawn(process.execPath, [RUN_JS, 'daemon', 'run', '--backend', options.backend], {
    detached: true,
    stdio: ['ignore', fd, fd, 'pipe'],
    env: { ...env, [STARTUP_FD_ENV]: '3' },
  })
  closeSync(fd)
  let exited: number | null = null
  child.once('exit', (code) => (exited = code ?? -1))
  child.unref()
  const startup = child.stdio[3] as Readable
  let report = ''
  let reported = false
  startup.setEncoding('utf8')
  startup.on('data', (chunk: string) => (report += chunk))
  startup.once('close', () => (reported = true))
  startup.once('error', () => (reported = true))
  const deadline = Date.now() + (options.timeout ?? 10_000)
  try {
    for (;;) {
      try {
        const client = await connect(path)
        if (child.pid !== undefined) options.onStart?.({ pid: child.pid, socket: path, log })
        return client
      } catch (e) {
        if (!isAbsent(e)) throw unreachable(path, e)
      }
      // its report is complete once the pipe closed (it may close after the exit event)
      if (exited !== null && (reported || Date.now() > deadline)) {
        // It may have lost a start race to another command's daemon: try that one.
        try {
          return await connect(path)
        } catch {
          throw (
            startupError(report, log) ??
            new DaemonUnreachableError(
              `hsmd exited with status ${exited} while starting`,
              `see ${log}`,
            )
          )
        }
      }
      if (Date.now() > deadline) {
        throw new DaemonUnreachableError(`hsmd did not open ${path} in time`, `see ${log}`)
      }
      await new Promise((r) => setTimeout(r, 25))
    }
  } finally {
    startup.destroy()
  }
}

function unreachable(path: string, e: unknown): DaemonUnreachableError {
  return new DaemonUnreachableError(
    `cannot reach hsmd at ${path}: ${(e as Error).message}`,
    'check the permissions of the runtime directory, or run `hsmctl daemon run` in the foreground',
  )
}

/** Connect only if a daemon runs; undefined otherwise (for `daemon status` and `stop`). */
export async function connectIfRunning(backend: Backend, env: NodeJS.ProcessEnv = process.env) {
  checkDaemonDirs(env, false)
  try {
    return await connect(socketPath(backend, env))
  } catch (e) {
    if (isAbsent(e)) return undefined
    throw unreachable(socketPath(backend, env), e)
  }
}
