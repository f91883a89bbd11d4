// Connection reuse beyond the ssh handshake: once dial-stdio has told us where the host's
// hsmd socket is, the control master also forwards a unix socket here (in the private
// runtime-dir/ssh) to it (`ssh -O forward -L LOCAL:REMOTE`), so later commands reach that
// hsmd as they reach a local one: no new ssh session, no remote hsmctl process. A forward
// is used only after a `daemon.status` probe answers through it (a stale one, hsmd gone,
// a master that exited: the command goes through dial-stdio instead, which starts hsmd
// and sets the forward up again). Hosts that refuse forwarding just keep using dial-stdio.

import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { connectSocket } from '../autostart.js'
import { clientOver, type DaemonClient } from '../client.js'
import type { Backend } from '../paths.js'
import type { SshHost } from './hosts.js'

/** The local end of `host`'s forward for `backend`, in the control dir (none: no reuse). */
export function forwardPath(controlDir: string | undefined, host: SshHost, backend: Backend) {
  if (!controlDir) return undefined
  const id = createHash('sha1')
    .update(`${host.user ?? ''}@${host.host}:${host.port ?? ''}/${backend}`)
    .digest('hex')
  return join(controlDir, `${id.slice(0, 24)}.hsmd`)
}

/** Ask the control master to forward `local` to the host's hsmd socket (fire and forget). */
export function requestForward(
  file: string,
  args: string[],
  local: string,
  remote: string,
  env: NodeJS.ProcessEnv,
): void {
  // args: the session's ssh arguments; the same options and host, with no remote command
  const at = args.indexOf('--')
  const command = [
    ...args.slice(0, at),
    '-O',
    'forward',
    '-L',
    `${local}:${remote}`,
    '--',
    args[at + 1]!,
  ]
  try {
    const child = spawn(file, command, { stdio: 'ignore', env })
    child.on('error', () => {})
    child.unref()
  } catch {
    // no forward: dial-stdio each time
  }
}

/** A client through the forward when hsmd answers there; undefined otherwise. */
export async function throughForward(
  local: string | undefined,
  host: SshHost,
): Promise<DaemonClient | undefined> {
  if (!local) return undefined
  let client: DaemonClient
  try {
    client = clientOver(await connectSocket(local), { label: `hsmd on ${host.label}` })
  } catch {
    return undefined
  }
  try {
    await client.call('daemon.status')
    return client
  } catch {
    client.close()
    return undefined
  }
}
