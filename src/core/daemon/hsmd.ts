// hsmd: the long-lived process that holds the /dev/acrn_hsm fds so VMs outlive a single
// command. This module is the daemon's shell: socket, status, orderly stop. The VM
// methods plug in through `methods`.

import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { UsageError } from '../errors.js'
import { checkDaemonDirs, socketPath, type Backend } from './paths.js'
import { listen, type Handler, type RpcServer } from './server.js'

export interface DaemonStatus {
  pid: number
  backend: Backend
  socket: string
  version: string
  startedAt: string
  uptimeSeconds: number
  connections: number
  /** Simulation: the engine guest code executes on, or why nothing executes (issue 10). */
  execution?: { engine: string } | { reason: string }
  /** Where `--metrics` serves Prometheus metrics (`http://127.0.0.1:9410/metrics`). */
  metrics?: string
}

export interface RunningDaemon {
  server: RpcServer
  /** Resolves once the daemon has stopped (by `daemon.stop` or `stop()`). */
  stopped: Promise<void>
  stop(): Promise<void>
  /** When it started (ms since the epoch). */
  startedAt: number
}

export interface DaemonOptions {
  backend: Backend
  env?: NodeJS.ProcessEnv
  /** Extra RPC methods (the VM manager's). */
  methods?: Record<string, Handler>
  /** Simulation: what executes guest code, for `daemon status`. */
  execution?: () => { engine: string } | { reason: string }
  /** Called before the socket closes on stop: pause and destroy VMs, flush journals. */
  onStop?: () => Promise<void>
  /** Where it serves metrics, once it does (`--metrics`). */
  metrics?: () => string | undefined
}

export function packageVersion(): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string })
    .version
}

export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const { backend } = options
  if (backend !== 'sim' && backend !== 'native') {
    throw new UsageError(`unknown backend '${String(backend)}'`, {
      flag: '--backend',
      hint: 'use sim or native',
    })
  }
  const path = socketPath(backend, options.env)
  checkDaemonDirs(options.env)
  const started = Date.now()
  const version = packageVersion()
  let resolveStopped!: () => void
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve))
  let stopping: Promise<void> | undefined
  // eslint-disable-next-line prefer-const -- assigned after listen, used by stop()
  let server: RpcServer
  const stop = () => {
    stopping ??= (async () => {
      try {
        await options.onStop?.()
      } finally {
        await server.close()
        resolveStopped()
      }
    })()
    return stopping
  }
  const status = (): DaemonStatus => ({
    pid: process.pid,
    backend,
    socket: path,
    version,
    startedAt: new Date(started).toISOString(),
    uptimeSeconds: Math.round((Date.now() - started) / 1000),
    connections: server.connections(),
    ...(options.execution ? { execution: options.execution() } : {}),
    ...(options.metrics?.() !== undefined ? { metrics: options.metrics()! } : {}),
  })
  server = await listen(path, {
    ...options.methods,
    'daemon.status': () => status(),
    'daemon.stop': () => {
      // answer first, then stop
      setImmediate(() => void stop())
      return { stopping: true, pid: process.pid }
    },
  })
  return { server, stopped, stop, startedAt: started }
}
