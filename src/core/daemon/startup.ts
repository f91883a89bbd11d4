// How a daemon started on demand tells the command that started it why it could not start:
// the starter passes a pipe as fd HSMCTL_STARTUP_FD, and hsmd writes its error there (the
// same JSON-RPC error object the socket would carry) before it exits, or closes the pipe
// once it listens. So `daemon start --backend native` prints hsmd's own error and hint
// (a missing device, a permission) rather than "see the log".

import { closeSync, writeSync } from 'node:fs'
import { DaemonUnreachableError } from '../errors.js'
import { errorToRpc, rpcToError, stringify, type RpcErrorObject } from './protocol.js'

export const STARTUP_FD_ENV = 'HSMCTL_STARTUP_FD'

/** The fd of the starter's pipe, taken out of the environment (hsmd's children get none). */
function takeStartupFd(env: NodeJS.ProcessEnv): number | undefined {
  const value = env[STARTUP_FD_ENV]
  delete env[STARTUP_FD_ENV]
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined
}

/**
 * hsmd's side, called once: `error` is why it could not start, or undefined once it
 * listens. Without a starter's pipe (run by hand) it does nothing.
 */
export function reportStartup(error: unknown, env: NodeJS.ProcessEnv = process.env): void {
  const fd = takeStartupFd(env)
  if (fd === undefined) return
  try {
    if (error !== undefined) writeSync(fd, stringify(errorToRpc(error)) + '\n')
    closeSync(fd)
  } catch {
    // the starter went away: nobody to tell
  }
}

/**
 * The starter's side: the error hsmd reported on the pipe, if it reported one. An error
 * outside hsmctl's family (a bug) says so and points at the log.
 */
export function startupError(report: string, log: string): Error | undefined {
  const line = report.split('\n').find((l) => l.trim() !== '')
  if (line === undefined) return undefined
  try {
    const error = JSON.parse(line) as RpcErrorObject
    if (typeof error?.message !== 'string') return undefined
    if (error.data === undefined)
      return new DaemonUnreachableError(`hsmd could not start: ${error.message}`, `see ${log}`)
    return rpcToError(error)
  } catch {
    return undefined
  }
}
