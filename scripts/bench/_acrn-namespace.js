// A mount namespace for acrn-dm and acrnctl runs of their own (test/support/acrn-dm.ts and
// `npm run bench -- acrn-dm`): a tmpfs on /run (so /run/acrn/mngr is private), an overlay
// on /usr/share whose changes go to DIR/upper, and a tmpfs on /usr/share/acrn/conf (which
// takes chattr). It lives as long as its holder process; programs enter it with nsenter.

import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'

/** Make the namespace (DIR holds its overlay's dirs); resolves to its holder's pid. */
export function privateAcrnNamespace(dir) {
  mkdirSync(join(dir, 'upper'))
  mkdirSync(join(dir, 'work'))
  const script = [
    'set -e',
    'mount -t tmpfs tmpfs /run',
    `mount -t overlay overlay -o lowerdir=/usr/share,upperdir=${dir}/upper,workdir=${dir}/work /usr/share`,
    'mkdir -p /usr/share/acrn/conf',
    'mount -t tmpfs tmpfs /usr/share/acrn/conf',
    'exec sleep 2147483647',
  ].join('\n')
  const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], {
    stdio: 'ignore',
  })
  child.unref()
  // ready once its mounts are made (unshare execs sh, which execs sleep: one pid)
  const pid = child.pid
  const deadline = Date.now() + 30_000 // a hang guard only
  for (;;) {
    const mounts = spawnSync(
      'nsenter',
      ['-t', String(pid), '-m', '--', 'cat', '/proc/self/mounts'],
      {
        encoding: 'utf8',
      },
    )
    if (mounts.status === 0 && / \/usr\/share\/acrn\/conf tmpfs /.test(mounts.stdout)) return pid
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`unshare could not make a private mount namespace (${child.exitCode})`)
    }
    spawnSync('sleep', ['0.05'])
  }
}
