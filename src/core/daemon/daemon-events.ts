// The daemon's own events: `daemon started` first of all, `daemon stopping` when asked to
// stop, `daemon stopped` last. The stop is also kept in the backend's state dir
// (STATE/sim/last-stop.json) so that the next hsmd can replay it (`hsmctl events --since
// 1h` shows the restart) and number its events on from it.

import { closeSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { EventBus, type HsmEvent } from './events.js'
import { openPrivateFile, readPrivateFile } from './private-files.js'
import { backendStateDir, type Backend } from './paths.js'

export function lastStopPath(backend: Backend, env: NodeJS.ProcessEnv = process.env): string {
  return join(backendStateDir(backend, env), 'last-stop.json')
}

function readLastStop(path: string): HsmEvent | undefined {
  try {
    const event = JSON.parse(readPrivateFile(path).toString('utf8')) as HsmEvent
    const valid =
      Number.isSafeInteger(event.seq) &&
      event.seq > 0 &&
      event.type === 'daemon' &&
      event.action === 'stopped' &&
      !Number.isNaN(Date.parse(event.time))
    return valid
      ? { ...event, vm: null, vmid: null, attributes: event.attributes ?? {} }
      : undefined
  } catch {
    return undefined // none yet, or unreadable: the numbering starts again at 1
  }
}

export interface DaemonEvents {
  bus: EventBus
  /** Whether `daemon stopping` and `daemon stopped` were emitted. */
  state(): { stopping: boolean; stopped: boolean }
  /** Emit `daemon stopping` (VMs are destroyed after it). */
  stop(): void
  /** Emit `daemon stopped` and keep it; the socket closes after this. */
  stopped(): void
}

export function daemonEvents(options: {
  backend: Backend
  env?: NodeJS.ProcessEnv
  version: string
  log?: (line: string) => void
}): DaemonEvents {
  const path = lastStopPath(options.backend, options.env)
  const previous = readLastStop(path)
  const bus = new EventBus()
  if (previous) bus.remember(previous)
  const attributes = { pid: process.pid, backend: options.backend, version: options.version }
  bus.emit({ type: 'daemon', action: 'started', attributes })
  let stopping = false
  let stopped = false
  return {
    bus,
    state: () => ({ stopping, stopped }),
    stop() {
      if (stopping) return
      stopping = true
      bus.emit({ type: 'daemon', action: 'stopping', attributes })
    },
    stopped() {
      if (stopped) return
      stopping = stopped = true
      const event = bus.emit({ type: 'daemon', action: 'stopped', attributes })
      try {
        const fd = openPrivateFile(path, 'replace')
        try {
          writeSync(fd, JSON.stringify(event) + '\n')
        } finally {
          closeSync(fd)
        }
      } catch (e) {
        options.log?.(`events: could not keep the stop in ${path}: ${(e as Error).message}`)
      }
    },
  }
}
