// acrn-dm for the tests (test/support/acrn-dm.ts) and the benchmarks (acrn-dm, boot): its
// build through scripts/build-acrn-dm.js, and a mount namespace for acrn-dm and acrnctl
// runs of their own: a tmpfs on /run (so /run/acrn/mngr is private), an overlay
// on /usr/share whose changes go to DIR/upper, and a tmpfs on /usr/share/acrn/conf (which
// takes chattr). It lives as long as its holder process; programs enter it with nsenter.

import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, URL } from 'node:url'

const BUILD = fileURLToPath(new URL('../build-acrn-dm.js', import.meta.url))

/**
 * acrn-dm built (or taken from the cache): its path and acrnctl's, or why it cannot be
 * built here (the build script's exit 3: no apt-get, not Debian); another failure throws.
 */
export function acrnDmBuild() {
  const r = spawnSync(process.execPath, [BUILD], { encoding: 'utf8', timeout: 1_500_000 })
  if (r.status === 3) return { unavailable: r.stderr.trim() }
  if (r.status !== 0) throw new Error(`build-acrn-dm.js failed (${r.status}):\n${r.stderr}`)
  const path = r.stdout.trim().split('\n').pop()
  return { path, acrnctl: join(dirname(path), 'acrnctl') }
}

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
