// The Linux boot's kit for test/boot (issue 11 item 5), through scripts/boot-kit.js (which
// `npm run bench -- boot` shares): Debian's kernel and a busybox initramfs with a fresh
// init marker, and QEMU booting them, the peer that says whether this machine's /dev/kvm
// can boot Linux at all.

import { spawn, spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { ROOT } from './cli.js'

const KIT = join(ROOT, 'scripts', 'boot-kit.js')

export interface BootKit {
  kernel: string
  initrd: string
  marker: string
  kernelPackage: string
  /** The kernel command line both boots get. */
  cmdline: string
}

/**
 * The kernel (cached in .cache/boot) and DIR/initrd.cpio.gz, or why it cannot be had here
 * (no apt-get or dpkg-deb, no package lists): under HSMCTL_CI=1 that is a failure, since
 * setup.sh provides both on CI's Debian.
 */
export function bootKit(dir: string): BootKit | { unavailable: string } {
  const r = spawnSync(process.execPath, [KIT, dir], { encoding: 'utf8', timeout: 900_000 })
  if (r.status === 3) {
    const unavailable = r.stderr.trim()
    if (process.env.HSMCTL_CI === '1') throw new Error(`HSMCTL_CI=1: ${unavailable}`)
    return { unavailable }
  }
  if (r.status !== 0) throw new Error(`boot-kit.js failed (${r.status}): ${r.stderr}`)
  return JSON.parse(r.stdout) as BootKit
}

export interface QemuBoot {
  reached: boolean
  /** ms from QEMU's start to the marker on its serial console */
  ms?: number
  exitMs: number
  serial: string
  exitCode: number | null
  why?: string
  args: string[]
  /** When the probe whose failure this is ran (peerProbe's cache), if not now. */
  cached?: string
}

/**
 * One QEMU boot of the kit (`kvm`: -enable-kvm, else TCG), killed at `budgetS`; `peer`:
 * QEMU+KVM's verdict, a failure probed on this machine within a week reused (boot-kit.js,
 * peerProbe). Rejects with `unavailable` set where QEMU is not installed.
 */
export function bootQemu(
  kit: BootKit,
  mode: 'peer' | 'tcg' | 'kvm',
  budgetS: number,
): Promise<QemuBoot> {
  return new Promise((resolve, reject) => {
    const args =
      mode === 'peer'
        ? ['peer', kit.kernel, kit.initrd, kit.marker, String(budgetS), kit.kernelPackage]
        : ['qemu', mode, kit.kernel, kit.initrd, kit.marker, String(budgetS)]
    const child = spawn(process.execPath, [KIT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('close', (code) => {
      if (code === 0) resolve(JSON.parse(out) as QemuBoot)
      else reject(Object.assign(new Error(err.trim()), { unavailable: code === 3 }))
    })
  })
}

/** The last `n` lines of a console (CRs and terminal escapes dropped), for messages. */
export function lastLines(text: string, n = 12): string {
  // eslint-disable-next-line no-control-regex
  const plain = text.replace(/\r|\x1b\[[0-9;?]*[A-Za-z]|\x1b[a-z]/g, '')
  const lines = plain.trimEnd().split('\n')
  return lines.slice(-n).join('\n')
}
