// Throwaway SSH "hosts" on this machine, for the --host tests (test/commands/ssh*.test.ts)
// and the ssh benchmark: each is a real OpenSSH server (Debian's openssh-server) on
// 127.0.0.1 at a free port, with its own runtime and state directories, so two ports are
// two hosts with two hsmd. Everything lives in one temporary directory: the host keys,
// a user key, known_hosts, and an ssh_config the client side uses through
// HSMCTL_SSH_COMMAND="ssh -F DIR/ssh_config". A ForceCommand wrapper gives each session
// its host's directories and puts this checkout's bin/run.js on PATH as `hsmctl`.
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const RUN_JS = join(ROOT, 'bin', 'run.js')
export const SSHD = '/usr/sbin/sshd'

/** Why these hosts cannot be made here, or undefined when they can. */
export function sshdMissing() {
  if (spawnSync(SSHD, ['-V'], { stdio: 'ignore' }).error)
    return `no OpenSSH server (${SSHD}): setup.sh installs openssh-server`
  if (spawnSync('ssh', ['-V'], { stdio: 'ignore' }).error)
    return 'no OpenSSH client (ssh): setup.sh installs openssh-client'
  if (spawnSync('ssh-keygen', ['-?'], { stdio: 'ignore' }).error) return 'no ssh-keygen'
  if (process.getuid?.() !== 0)
    return 'sshd runs as root here (privilege separation, a login as the current user)'
  return undefined
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

function keygen(path) {
  const r = spawnSync('ssh-keygen', [
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-C',
    'hsmctl-test',
    '-f',
    path,
  ])
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`)
  return readFileSync(`${path}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ')
}

/**
 * Start `count` hosts. Options: `wrongKey` (indexes of hosts whose known_hosts entry
 * holds another key, as after a reinstall), `noHsmctl` (indexes of hosts without hsmctl
 * on their PATH), `noisy` (indexes of hosts whose login prints a line on stdout), `env`
 * (more variables for the client side).
 * Returns { dir, env, hosts: [{ port, url, env }], stop() }: `env` is what a client
 * process needs (HSMCTL_SSH_COMMAND and its own runtime and state dirs), each host's
 * `env` what a local command needs to reach that host's hsmd directly.
 */
export async function startSshHosts(count, options = {}) {
  const why = sshdMissing()
  if (why) throw new Error(why)
  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-ssh-'))
  chmodSync(dir, 0o700)
  // privilege separation: sshd insists on this directory (root-owned, not group-writable)
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 })
  const hostKey = join(dir, 'host_key')
  const hostPub = keygen(hostKey)
  const otherPub = keygen(join(dir, 'other_host_key'))
  const userPub = keygen(join(dir, 'user_key'))
  writeFileSync(join(dir, 'authorized_keys'), userPub + '\n', { mode: 0o600 })
  mkdirSync(join(dir, 'bin'))
  writeFileSync(
    join(dir, 'bin', 'hsmctl'),
    `#!/bin/sh\nexec '${process.execPath}' '${RUN_JS}' "$@"\n`,
    { mode: 0o755 },
  )
  const wrong = new Set(options.wrongKey ?? [])
  const without = new Set(options.noHsmctl ?? [])
  const noisy = new Set(options.noisy ?? [])
  const hosts = []
  const known = []
  const procs = []
  const stop = async () => {
    for (const h of hosts) {
      // the client's control masters, then each host's hsmd, then the servers
      const control = `ControlPath=${join(clientEnv.HSMCTL_RUNTIME_DIR, 'ssh', '%C')}`
      spawnSync(
        'ssh',
        [
          '-F',
          join(dir, 'ssh_config'),
          '-o',
          control,
          '-O',
          'exit',
          '-p',
          String(h.port),
          '127.0.0.1',
        ],
        {
          stdio: 'ignore',
          env: clientEnv,
          timeout: 10_000,
        },
      )
      spawnSync(process.execPath, [RUN_JS, 'daemon', 'stop'], {
        stdio: 'ignore',
        env: { ...process.env, ...h.env },
        timeout: 30_000,
      })
    }
    // and a local hsmd, had a client command started one by mistake
    spawnSync(process.execPath, [RUN_JS, 'daemon', 'stop'], {
      stdio: 'ignore',
      env: clientEnv,
      timeout: 30_000,
    })
    for (const p of procs) {
      try {
        process.kill(-p.pid, 'SIGTERM')
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true })
  }
  const clientEnv = {
    ...process.env,
    HSMCTL_SSH_COMMAND: `ssh -F ${join(dir, 'ssh_config')}`,
    HSMCTL_RUNTIME_DIR: join(dir, 'client', 'run'),
    HSMCTL_STATE_DIR: join(dir, 'client', 'state'),
    ...options.env,
  }
  try {
    for (let i = 0; i < count; i++) {
      const port = await freePort()
      const home = join(dir, `host${i}`)
      mkdirSync(home)
      const env = {
        HSMCTL_RUNTIME_DIR: join(home, 'run'),
        HSMCTL_STATE_DIR: join(home, 'state'),
        HSMCTL_ACRN_MNGR_DIR: join(home, 'mngr'),
        HSMCTL_ACRN_CONF_DIR: join(home, 'conf'),
      }
      const exports = Object.entries(env)
        .map(([k, v]) => `export ${k}='${v}'`)
        .join('\n')
      writeFileSync(
        join(home, 'session.sh'),
        `#!/bin/sh\n${exports}\n${noisy.has(i) ? 'echo "Welcome to host ' + i + '"\n' : ''}${without.has(i) ? '' : `export PATH='${join(dir, 'bin')}':"$PATH"\n`}exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n`,
        { mode: 0o755 },
      )
      const config = join(home, 'sshd_config')
      writeFileSync(
        config,
        [
          `Port ${port}`,
          'ListenAddress 127.0.0.1',
          `HostKey ${hostKey}`,
          `PidFile ${join(home, 'sshd.pid')}`,
          `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
          'PubkeyAuthentication yes',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'PermitRootLogin prohibit-password',
          // the temp dir is root's but not in the layout StrictModes checks for
          'StrictModes no',
          'UsePAM no',
          'PrintMotd no',
          // a fleet and the benchmark open many sessions over one connection at once
          'MaxSessions 64',
          'MaxStartups 64',
          `ForceCommand ${join(home, 'session.sh')}`,
          'LogLevel INFO',
          '',
        ].join('\n'),
      )
      const proc = spawn(SSHD, ['-D', '-e', '-f', config], {
        detached: true,
        stdio: ['ignore', 'ignore', 'pipe'],
      })
      procs.push(proc)
      await listening(proc, port)
      known.push(`[127.0.0.1]:${port} ${wrong.has(i) ? otherPub : hostPub}`)
      hosts.push({ port, url: `ssh://127.0.0.1:${port}`, env })
    }
  } catch (e) {
    await stop()
    throw e
  }
  writeFileSync(join(dir, 'known_hosts'), known.join('\n') + '\n')
  writeFileSync(
    join(dir, 'ssh_config'),
    [
      'Host *',
      '  User root',
      `  IdentityFile ${join(dir, 'user_key')}`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${join(dir, 'known_hosts')}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  BatchMode yes',
      '  LogLevel ERROR',
      '  ConnectTimeout 20',
      '',
    ].join('\n'),
  )
  return { dir, env: clientEnv, hosts, stop }
}

/** Resolves once sshd said it listens; rejects with its stderr if it exits first. */
function listening(proc, port) {
  return new Promise((resolve, reject) => {
    let err = ''
    proc.stderr.setEncoding('utf8')
    const onData = (chunk) => {
      err += chunk
      if (err.includes(`port ${port}`) && /Server listening/.test(err)) {
        proc.stderr.removeListener('data', onData)
        proc.stderr.resume() // keep draining its log
        resolve()
      }
    }
    proc.stderr.on('data', onData)
    proc.once('exit', (code) => reject(new Error(`sshd exited ${code}: ${err}`)))
    proc.unref()
  })
}
