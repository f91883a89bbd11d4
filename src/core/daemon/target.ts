// Which hsmd a command talks to: this machine's (a unix socket) or a remote host's (ssh,
// ssh/transport.ts). One entry point, so commands, the shell and the watch views reach
// either the same way.

import { connectIfRunning, ensureDaemon } from './autostart.js'
import type { DaemonClient } from './client.js'
import type { Backend } from './paths.js'
import type { SshHost } from './ssh/hosts.js'

export interface DaemonTarget {
  backend: Backend
  /** A remote host; none: this machine. */
  host?: SshHost | undefined
  env?: NodeJS.ProcessEnv
}

export interface OpenOptions {
  /** Told once when hsmd was started for this call (locally: its pid and socket). */
  onStart?: (info: { pid: number; socket: string; log: string }) => void
  /** What a remote hsmctl said on stderr, already naming its host. */
  onRemoteMessage?: (text: string) => void
}

/** A client to the target's hsmd, starting it there when none runs. */
export async function openDaemon(
  target: DaemonTarget,
  options: OpenOptions = {},
): Promise<DaemonClient> {
  if (!target.host) {
    return ensureDaemon({
      backend: target.backend,
      ...(target.env ? { env: target.env } : {}),
      ...(options.onStart ? { onStart: options.onStart } : {}),
    })
  }
  const { connectRemote } = await import('./ssh/transport.js')
  return connectRemote(target.host, {
    backend: target.backend,
    ...(target.env ? { env: target.env } : {}),
    ...(options.onRemoteMessage ? { onRemoteMessage: options.onRemoteMessage } : {}),
  })
}

/** A client when the target's hsmd runs; undefined when it does not (never starts it). */
export async function openIfRunning(target: DaemonTarget): Promise<DaemonClient | undefined> {
  if (!target.host) return connectIfRunning(target.backend, target.env)
  const { connectSshIfRunning } = await import('./ssh/transport.js')
  return connectSshIfRunning(target.host, {
    backend: target.backend,
    ...(target.env ? { env: target.env } : {}),
  })
}
