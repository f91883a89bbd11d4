// The client side of `--host ssh://...`: the system's ssh client (so keys, the agent,
// known_hosts, ~/.ssh/config and ProxyJump all work) runs `hsmctl daemon dial-stdio` on
// the far side, and the daemon client speaks its JSON lines over ssh's stdin and stdout
// (client.ts's clientOver). Connections are reused through an ssh control master in a
// private directory under the runtime dir, kept HSMCTL_SSH_PERSIST seconds (default 60,
// 0 for none), so a command after the first costs one session, not a handshake.
//
// When ssh ends before answering, its exit status and stderr say which part failed: ssh
// itself (255: connection, host key, login), the remote shell (127: no hsmctl there) or
// the remote hsmctl (its error arrives as a JSON line from dial-stdio, rebuilt here).

import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { Duplex } from 'node:stream'
import { DaemonUnreachableError, HsmctlError } from '../../errors.js'
import { clientOver, type DaemonClient } from '../client.js'
import { runtimeDir, runtimePrivateDir, type Backend } from '../paths.js'
import { ensurePrivateDir, UnsafePathError } from '../private-files.js'
import type { DialNotice } from './dial-stdio.js'
import { forwardPath, requestForward, throughForward } from './forward.js'
import { sshTarget, type SshHost } from './hosts.js'

export interface SshOptions {
  backend: Backend
  env?: NodeJS.ProcessEnv
  /** Start hsmd there when none runs (false: only reach a running one). */
  start?: boolean
  /** A line the remote hsmctl said on stderr ("started the hsmd daemon ..."). */
  onRemoteMessage?: (text: string) => void
}

export interface SshClient extends DaemonClient {
  /** Settles once dial-stdio said whether it reached hsmd; rejects as calls would. */
  readonly ready: Promise<DialNotice>
}

/** Longest unix socket path (sun_path) less what ssh appends while creating it. */
const MAX_CONTROL_DIR = 108 - 1 - 40 - 18

/** The ssh command line that runs `hsmctl daemon dial-stdio` on `host`. */
export function sshCommand(
  host: SshHost,
  remote: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): { file: string; args: string[] } {
  // HSMCTL_SSH_COMMAND: the ssh program and options, words split on spaces (as the
  // tests use it: `ssh -F /tmp/x/ssh_config`)
  const words = (env.HSMCTL_SSH_COMMAND ?? 'ssh').trim().split(/\s+/)
  const file = words[0] || 'ssh'
  const args = [...words.slice(1), '-T', ...reuse(env)]
  if (host.port !== undefined) args.push('-p', String(host.port))
  if (host.user !== undefined) args.push('-l', host.user)
  args.push('--', host.host, ...remote)
  return { file, args }
}

/** ssh options for connection reuse: a control master in runtime-dir/ssh, or none. */
function reuse(env: NodeJS.ProcessEnv): string[] {
  const dir = controlDir(env)
  if (!dir) return ['-o', 'ControlMaster=no', '-o', 'ControlPath=none']
  try {
    ensurePrivateDir(runtimePrivateDir(env))
    ensurePrivateDir({ path: dir, role: 'ssh control directory', variable: 'HSMCTL_RUNTIME_DIR' })
  } catch (e) {
    if (e instanceof UnsafePathError) throw new DaemonUnreachableError(e.message, e.hint)
    throw e
  }
  return [
    '-o',
    'ControlMaster=auto',
    '-o',
    `ControlPath=${dir}/%C`,
    '-o',
    `ControlPersist=${Number(env.HSMCTL_SSH_PERSIST ?? '60')}`,
    // a forward's socket left by an earlier master is replaced (forward.ts)
    '-o',
    'StreamLocalBindUnlink=yes',
  ]
}

/** Where control masters and forwards live; undefined when reuse is off. */
function controlDir(env: NodeJS.ProcessEnv): string | undefined {
  const persist = env.HSMCTL_SSH_PERSIST ?? '60'
  if (!/^\d+$/.test(persist) || Number(persist) === 0) return undefined
  const dir = join(runtimeDir(env), 'ssh')
  return dir.length > MAX_CONTROL_DIR ? undefined : dir
}

/**
 * A client to `host`'s hsmd: through the control master's forward when one answers
 * (forward.ts), otherwise a new session running dial-stdio (which starts hsmd there).
 */
export async function connectRemote(host: SshHost, options: SshOptions): Promise<DaemonClient> {
  const env = options.env ?? process.env
  const forwarded = await throughForward(forwardPath(controlDir(env), host, options.backend), host)
  return forwarded ?? connectSsh(host, options)
}

/** The remote command: this backend's daemon, started there unless `start` is false. */
export function dialCommand(backend: Backend, start: boolean): string[] {
  return ['hsmctl', 'daemon', 'dial-stdio', '--backend', backend, ...(start ? [] : ['--no-start'])]
}

/** A daemon client to `host`'s hsmd; calls may be made at once (they are pipelined). */
export function connectSsh(host: SshHost, options: SshOptions): SshClient {
  const env = options.env ?? process.env
  const { file, args } = sshCommand(host, dialCommand(options.backend, options.start ?? true), env)
  const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env })
  const seen: Seen = { stderr: '', notice: false }
  let noticed: (n: DialNotice) => void = () => {}
  let failed: (e: Error) => void = () => {}
  const ready = new Promise<DialNotice>((resolve, reject) => {
    noticed = resolve
    failed = reject
  })
  ready.catch(() => {})
  const stream = childStream(child, seen)
  watchStderr(child, seen, host, options.onRemoteMessage)
  const client = clientOver(stream, {
    label: `hsmd on ${host.label}`,
    lost: (why) => {
      const error = failure(host, seen, why)
      failed(error)
      return error
    },
    connectionError: (error) => {
      const named = onHost(host, error)
      failed(named)
      return named
    },
    onNotice: (result) => {
      const notice = result as DialNotice
      if (notice?.dial !== 'hsmd') return
      seen.notice = true
      noticed(notice)
      // later commands reach this hsmd through the master, with no session of their own
      const local = forwardPath(controlDir(env), host, options.backend)
      if (notice.running && notice.socket && local)
        requestForward(file, args, local, notice.socket, env)
    },
  })
  void client.closed.then(() => failed(failure(host, seen, 'closed')))
  return {
    ready,
    closed: client.closed,
    call: (method, params) => client.call(method, params),
    close() {
      client.close()
      // the session ends on its own once dial-stdio sees our end; do not wait for it
      child.unref()
      for (const s of [child.stdin, child.stdout, child.stderr])
        (s as unknown as { unref?: () => void } | null)?.unref?.()
    },
  }
}

/** A client when hsmd runs on `host`, undefined when it does not (never starts it). */
export async function connectSshIfRunning(
  host: SshHost,
  options: Omit<SshOptions, 'start'>,
): Promise<DaemonClient | undefined> {
  const env = options.env ?? process.env
  const forwarded = await throughForward(forwardPath(controlDir(env), host, options.backend), host)
  if (forwarded) return forwarded
  const client = connectSsh(host, { ...options, start: false })
  try {
    const notice = await client.ready
    if (notice.running) return client
  } catch (e) {
    client.close()
    throw e
  }
  client.close()
  return undefined
}

interface Seen {
  /** The tail of ssh's stderr (ssh's own messages and the remote's). */
  stderr: string
  /** dial-stdio answered: ssh and the remote hsmctl both worked. */
  notice: boolean
  exit?: { code: number | null; signal: NodeJS.Signals | null }
  spawnError?: NodeJS.ErrnoException
}

/** ssh's stdin and stdout as one duplex stream that closes when ssh has exited. */
function childStream(child: ChildProcess, seen: Seen): Duplex {
  const stdin = child.stdin!
  stdin.on('error', () => {}) // EPIPE once ssh is gone: its exit says why
  const stream = new Duplex({
    read() {},
    write(chunk, encoding, done) {
      if (stdin.destroyed) done()
      else stdin.write(chunk, encoding, () => done())
    },
    final(done) {
      stdin.end()
      done()
    },
  })
  child.stdout!.on('data', (chunk: Buffer) => stream.push(chunk))
  child.once('error', (e: NodeJS.ErrnoException) => {
    seen.spawnError = e
    stream.push(null)
    stream.destroy()
  })
  child.once('close', (code, signal) => {
    seen.exit = { code, signal }
    stream.push(null)
    stream.destroy()
  })
  return stream
}

/** Keep the tail of ssh's stderr; pass on the remote hsmctl's own messages. */
function watchStderr(
  child: ChildProcess,
  seen: Seen,
  host: SshHost,
  onMessage: ((text: string) => void) | undefined,
): void {
  let partial = ''
  child.stderr!.setEncoding('utf8')
  child.stderr!.on('data', (chunk: string) => {
    seen.stderr = (seen.stderr + chunk).slice(-8192)
    partial += chunk
    let nl: number
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl)
      partial = partial.slice(nl + 1)
      if (line.startsWith('hsmctl: ')) onMessage?.(`hsmctl: ${host.label}: ${line.slice(8)}`)
    }
  })
}

/** dial-stdio's error (it could not start or reach hsmd there), naming the host; the class and exit code stay. */
function onHost(host: SshHost, error: Error): Error {
  Object.defineProperty(error, 'message', { value: `hsmd on ${host.label}: ${error.message}` })
  return error
}

const lastLine = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('Warning: Permanently added'))
    .pop() ?? ''

/** Why the session ended before (or while) hsmd answered: ssh, the remote shell or hsmctl. */
export function failure(host: SshHost, seen: Seen, why: string): HsmctlError {
  const who = host.label
  const detail = lastLine(seen.stderr)
  if (seen.spawnError) {
    return seen.spawnError.code === 'ENOENT'
      ? new DaemonUnreachableError(
          `cannot reach ${who}: there is no ssh client on this machine`,
          'install the OpenSSH client (Debian: openssh-client), or name one in HSMCTL_SSH_COMMAND',
        )
      : new DaemonUnreachableError(
          `cannot reach ${who}: ssh could not run: ${seen.spawnError.message}`,
          'check HSMCTL_SSH_COMMAND and the ssh client',
        )
  }
  const code = seen.exit?.code
  if (!seen.notice && why !== 'closed' && why.includes('not JSON'))
    // before dial-stdio's first line: the remote shell printed something of its own
    return new DaemonUnreachableError(
      `ssh reached ${who}, but something there printed text before hsmctl could answer`,
      `a login script on ${who} (~/.bashrc, ~/.profile) writes to stdout in non-interactive sessions; make it quiet there (check: ssh ${sshTarget(host)} true | head)`,
    )
  if (seen.notice || code === 0 || code === undefined) {
    // hsmd was reached: it went away, or sent something we cannot read
    return new DaemonUnreachableError(
      why === 'closed' ? `the connection to hsmd on ${who} closed` : `hsmd on ${who}: ${why}`,
      `see \`hsmctl --host ssh://${who} daemon status\` and the daemon log on ${who}`,
    )
  }
  if (code === 255) return sshFailure(host, seen.stderr, detail)
  if (code === 127)
    return new DaemonUnreachableError(
      `ssh reached ${who}, but hsmctl is not installed there (the remote shell found no \`hsmctl\`)${detail ? `: ${detail}` : ''}`,
      `install hsmctl on ${who} and put it on the PATH of non-interactive ssh sessions (check: ssh ${sshTarget(host)} hsmctl --version)`,
    )
  if (code === 126)
    return new DaemonUnreachableError(
      `ssh reached ${who}, but its hsmctl cannot be executed${detail ? `: ${detail}` : ''}`,
      `check the hsmctl installation on ${who} (ssh ${sshTarget(host)} hsmctl --version)`,
    )
  if (/dial-stdio/.test(seen.stderr) && /not found|not a hsmctl command/i.test(seen.stderr))
    return new DaemonUnreachableError(
      `the hsmctl on ${who} is too old for --host: it has no \`daemon dial-stdio\``,
      `upgrade hsmctl on ${who} to this version`,
    )
  return new DaemonUnreachableError(
    `the remote hsmctl on ${who} failed (exit ${code ?? seen.exit?.signal})${detail ? `: ${detail}` : ''}`,
    `run it there to see why: ssh ${sshTarget(host)} hsmctl daemon dial-stdio </dev/null`,
  )
}

function sshFailure(host: SshHost, stderr: string, detail: string): HsmctlError {
  const who = host.label
  const said = detail ? `: ${detail}` : ''
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED/.test(stderr))
    return new DaemonUnreachableError(
      `ssh refused ${who}: its host key is not the one in known_hosts${said}`,
      `if the host was reinstalled, remove the old key (ssh-keygen -R ${host.host}) and check the new one; otherwise someone may be in the middle`,
    )
  if (/Host key verification failed|No .* host key is known/i.test(stderr))
    return new DaemonUnreachableError(
      `ssh could not verify the host key of ${who}${said}`,
      `add the host's key to known_hosts first (connect once with: ssh ${sshTarget(host)}), or fix the entry in known_hosts`,
    )
  if (/Permission denied|Too many authentication failures|authentication/i.test(stderr))
    return new DaemonUnreachableError(
      `ssh could not log in to ${who}${said}`,
      'check the user (ssh://user@host), your keys (ssh-add -l) and authorized_keys there',
    )
  if (/Could not resolve hostname|Name or service not known/i.test(stderr))
    return new DaemonUnreachableError(
      `ssh cannot resolve the host name of ${who}${said}`,
      'check the host name, or define it in ~/.ssh/config',
    )
  if (
    /Connection refused|timed out|No route to host|Network is unreachable|Connection closed/i.test(
      stderr,
    )
  )
    return new DaemonUnreachableError(
      `ssh could not connect to ${who}${said}`,
      'check that the host is up and that sshd listens on that port',
    )
  return new DaemonUnreachableError(
    `ssh to ${who} failed${said}`,
    `try it by hand to see why: ssh -v ${sshTarget(host)} true`,
  )
}
