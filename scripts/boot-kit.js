#!/usr/bin/env node
// The Linux boot of issue 11 item 5, shared by `npm run test:boot` (test/boot/) and
// `npm run bench -- boot`: Debian's kernel (the vmlinuz of `linux-image-amd64`), an
// initramfs built here from Debian's `busybox-static` whose /init prints a marker line on
// the serial console and powers off, and QEMU booting the two (the peer the acrn-dm boot is
// measured against). Nothing is installed on the host: both packages are fetched with
// `apt-get download` and unpacked with `dpkg-deb` into .cache/boot/ (ignored), once per
// package version (`apt-cache show` names the version without the network).
//
//   node scripts/boot-kit.js DIR      the kernel and DIR/initrd.cpio.gz; JSON on stdout:
//                                     {kernel, initrd, marker, kernelPackage}
//   node scripts/boot-kit.js qemu kvm|tcg KERNEL INITRD MARKER BUDGET_S
//                                     one QEMU boot, bounded; JSON {reached, ms, serial, ...}
//   node scripts/boot-kit.js peer KERNEL INITRD MARKER BUDGET_S KERNEL_PACKAGE
//                                     QEMU+KVM's verdict on this machine (peerProbe: a
//                                     failure is reused for a week under the same machine key)
//
// Exit status: 0 done, 1 failed, 3 it cannot be done here (no apt-get / dpkg-deb, no package
// candidate, no QEMU): the reason on stderr.
import { spawn, spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout, clearTimeout } from 'node:timers'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const cacheDir = join(root, '.cache', 'boot')

/** The kernel command line both QEMU and acrn-dm boot with (console on COM1, verbose). */
export const CMDLINE = 'console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1 rdinit=/init'

export class Cannot extends Error {}

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 600_000, ...options })
  if (r.error?.code === 'ENOENT') throw new Cannot(`${cmd} is not installed`)
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}\n${r.stderr}`)
  return r.stdout
}

/** `Field: value` of the candidate of a Debian package, from apt's lists (no network). */
function candidate(pkg) {
  const show = () =>
    spawnSync('apt-cache', ['show', '--no-all-versions', pkg], { encoding: 'utf8' })
  let r = show()
  if (r.error?.code === 'ENOENT') throw new Cannot('apt-cache is not installed (not Debian?)')
  if (r.status !== 0 || !/^Version:/m.test(r.stdout)) {
    // a fresh container has no package lists yet
    if (process.getuid?.() === 0) spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore' })
    r = show()
    if (r.status !== 0 || !/^Version:/m.test(r.stdout))
      throw new Cannot(`apt has no candidate for ${pkg} (run apt-get update)`)
  }
  const field = (name) => r.stdout.match(new RegExp(`^${name}: (.*)$`, 'm'))?.[1]?.trim()
  return { version: field('Version'), depends: field('Depends') ?? '' }
}

/** `apt-get download PKG=VERSION`, `dpkg-deb --fsys-tarfile | tar -x MEMBERS` into `into`. */
function fetchPackage(pkg, version, into, members) {
  const tmp = mkdtempSync(join(cacheDir, 'dl-'))
  try {
    // apt's sandbox user must be able to write where it downloads
    spawnSync('chmod', ['0777', tmp])
    run('apt-get', ['download', '-qq', `${pkg}=${version}`], { cwd: tmp })
    const deb = run('sh', ['-c', 'ls *.deb'], { cwd: tmp }).trim()
    const unpacked = join(tmp, 'x')
    mkdirSync(unpacked)
    run('sh', [
      '-c',
      'deb=$1 into=$2; shift 2; dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$into" --wildcards "$@"',
      'x',
      join(tmp, deb),
      unpacked,
      ...members,
    ])
    rmSync(into, { recursive: true, force: true })
    renameSync(unpacked, into)
  } catch (e) {
    if (e instanceof Error && /ENOENT|not found/.test(e.message) && !(e instanceof Cannot))
      throw new Cannot(e.message)
    throw e
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}

/** Debian's kernel (vmlinuz of linux-image-amd64's dependency) and busybox-static, cached. */
export function fetchParts() {
  mkdirSync(cacheDir, { recursive: true })
  // linux-image-amd64 is a metapackage: Depends: linux-image-6.1.0-57-amd64 (= 6.1.192-3)
  const meta = candidate('linux-image-amd64')
  const m = meta.depends.match(/(linux-image-[^\s,]+)\s*\(=\s*([^)\s]+)\)/)
  if (!m)
    throw new Error(`linux-image-amd64 ${meta.version}: no kernel in Depends: ${meta.depends}`)
  const [, kpkg, kver] = m
  const kdir = join(cacheDir, `${kpkg}_${kver}`)
  const release = kpkg.replace(/^linux-image-/, '')
  const kernel = join(kdir, 'boot', `vmlinuz-${release}`)
  if (!existsSync(kernel)) fetchPackage(kpkg, kver, kdir, ['./boot/vmlinuz-*', './boot/config-*'])
  const bb = candidate('busybox-static')
  const bdir = join(cacheDir, `busybox-static_${bb.version.replace(/:/g, '%3a')}`)
  const busybox = join(bdir, 'bin', 'busybox')
  if (!existsSync(busybox)) fetchPackage('busybox-static', bb.version, bdir, ['./bin/busybox'])
  return { kernel, kernelPackage: `${kpkg} ${kver}`, busybox, busyboxVersion: bb.version }
}

/** One newc cpio entry (the format the kernel unpacks an initramfs from). */
function cpioEntry(name, { mode, data = Buffer.alloc(0), rdevMajor = 0, rdevMinor = 0 }, ino) {
  const hex = (n) => n.toString(16).padStart(8, '0')
  const nameBytes = Buffer.from(`${name}\0`)
  const header = Buffer.from(
    '070701' +
      [ino, mode, 0, 0, 1, 0, data.length, 0, 0, rdevMajor, rdevMinor, nameBytes.length, 0]
        .map(hex)
        .join(''),
  )
  const pad = (n) => Buffer.alloc((4 - (n % 4)) % 4)
  const head = Buffer.concat([header, nameBytes])
  return Buffer.concat([head, pad(head.length), data, pad(data.length)])
}

/**
 * The /init script: the marker on the console, then a wait for one line from the console
 * (so that whoever booted it can look at a quiet guest: the bench and the tests send it),
 * then power-off (busybox `poweroff -f`: reboot(2) with LINUX_REBOOT_CMD_POWER_OFF, which
 * the kernel does through ACPI S5). If the power-off returns, it says so; init exiting
 * then panics the kernel (panic=-1: reboot).
 */
function initScript(marker) {
  return [
    '#!/bin/busybox sh',
    '/bin/busybox mount -t proc proc /proc',
    `echo "${marker} $(/bin/busybox uname -r) up $(/bin/busybox cut -d' ' -f1 /proc/uptime)s"`,
    'read -r line',
    'echo "init: got \'$line\', powering off"',
    '/bin/busybox poweroff -f',
    '/bin/busybox sleep 2',
    'echo "init: poweroff -f returned"',
    '',
  ].join('\n')
}

/** The initramfs (gzip'd newc cpio) holding busybox and an /init that prints `marker`. */
export function buildInitramfs(busybox, marker) {
  const S_IFDIR = 0o040000
  const S_IFREG = 0o100000
  const S_IFLNK = 0o120000
  const S_IFCHR = 0o020000
  const entries = [
    ['bin', { mode: S_IFDIR | 0o755 }],
    ['dev', { mode: S_IFDIR | 0o755 }],
    // the kernel opens /dev/console for init's stdio before anything could mount devtmpfs
    ['dev/console', { mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 }],
    ['proc', { mode: S_IFDIR | 0o755 }],
    ['sys', { mode: S_IFDIR | 0o755 }],
    ['bin/busybox', { mode: S_IFREG | 0o755, data: readFileSync(busybox) }],
    ['bin/sh', { mode: S_IFLNK | 0o777, data: Buffer.from('busybox') }],
    ['init', { mode: S_IFREG | 0o755, data: Buffer.from(initScript(marker)) }],
  ]
  const parts = entries.map(([name, e], i) => cpioEntry(name, e, i + 1))
  parts.push(cpioEntry('TRAILER!!!', { mode: 0 }, 0))
  return gzipSync(Buffer.concat(parts), { level: 6 })
}

/** A fresh marker: only this initramfs's /init can print it. */
export function newMarker() {
  return `HSMCTL-BOOT-MARKER-${randomBytes(6).toString('hex')}`
}

/** Kernel and DIR/initrd.cpio.gz with a fresh marker. */
export function prepare(dir) {
  const parts = fetchParts()
  const marker = newMarker()
  const initrd = join(dir, 'initrd.cpio.gz')
  mkdirSync(dir, { recursive: true })
  writeFileSync(initrd, buildInitramfs(parts.busybox, marker))
  return {
    kernel: parts.kernel,
    initrd,
    marker,
    kernelPackage: parts.kernelPackage,
    cmdline: CMDLINE,
  }
}

/**
 * QEMU boots the kernel and initramfs, with KVM (`kvm`) or TCG, on a machine as bare as
 * acrn-dm's (one vCPU, 256 MiB, COM1 on stdio, no other default device), within
 * `budgetMs`. Resolves {reached, ms (to the marker), exitMs, serial, exitCode, why}. The
 * process is killed at the budget: nothing is left running.
 */
export function bootQemu({ kvm, kernel, initrd, marker, budgetMs, cmdline = CMDLINE }) {
  const args = [
    ...(kvm ? ['-enable-kvm'] : ['-accel', 'tcg']),
    '-m',
    '256M',
    '-smp',
    '1',
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-serial',
    'stdio',
    '-monitor',
    'none',
    '-no-reboot',
    '-kernel',
    kernel,
    '-initrd',
    initrd,
    '-append',
    cmdline,
  ]
  return new Promise((resolve, reject) => {
    const start = performance.now()
    let child
    try {
      child = spawn('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', 'pipe'] })
    } catch (e) {
      reject(e)
      return
    }
    let serial = ''
    let stderr = ''
    let ms
    const timer = setTimeout(() => child.kill('SIGKILL'), budgetMs)
    child.stdout.on('data', (d) => {
      serial += d.toString('latin1')
      // the whole marker line: a line sent before its end is echoed into it
      if (ms === undefined && new RegExp(`${marker} [^\\n]*\\n`).test(serial)) {
        ms = performance.now() - start
        // /init waits for a line on its console before it powers off
        child.stdin.end('poweroff\n')
      }
    })
    child.stderr.on('data', (d) => (stderr += d.toString('latin1')))
    child.stdin.on('error', () => {}) // QEMU gone before the line was taken
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(
        e.code === 'ENOENT'
          ? new Cannot('qemu-system-x86_64 is not installed (qemu-system-x86)')
          : e,
      )
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const exitMs = performance.now() - start
      resolve({
        reached: ms !== undefined,
        ms,
        exitMs,
        serial,
        exitCode: code,
        why:
          ms !== undefined
            ? undefined
            : signal === 'SIGKILL'
              ? `QEMU ${kvm ? '-enable-kvm' : 'TCG'} did not reach the init marker within ${budgetMs / 1000} s`
              : `QEMU exited ${code} before the init marker: ${stderr.trim().split('\n').slice(-3).join(' / ')}`,
        args,
      })
    })
  })
}

/**
 * What decides whether QEMU+KVM can boot the kit on this machine: the kernel package, the
 * command line, QEMU's version, the host kernel, the CPU (model and flags) and every KVM
 * module with its parameters. A probe's result is reused only under the same key.
 */
export function machineKey(kernelPackage) {
  const parts = [`kernel ${kernelPackage}`, `cmdline ${CMDLINE}`]
  const qemu = spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' })
  parts.push(`qemu ${qemu.stdout?.split('\n')[0] ?? qemu.error?.message}`)
  parts.push(`host ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}`)
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8').split('\n\n')[0] ?? ''
  for (const f of ['vendor_id', 'model name', 'flags'])
    parts.push(`${f} ${cpuinfo.match(new RegExp(`^${f}\\s*: (.*)$`, 'm'))?.[1] ?? ''}`)
  for (const mod of readdirSync('/sys/module')
    .filter((m) => /^kvm/.test(m))
    .sort()) {
    const dir = `/sys/module/${mod}/parameters`
    const params = existsSync(dir) ? readdirSync(dir).sort() : []
    for (const param of params) {
      let value
      try {
        value = readFileSync(`${dir}/${param}`, 'utf8').trim()
      } catch {
        value = '?'
      }
      parts.push(`${mod}.${param}=${value}`)
    }
    parts.push(`module ${mod}`)
  }
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 16)
}

/** A week: then the probe runs again even if nothing in the key changed. */
const PROBE_CACHE_MS = 7 * 24 * 3600 * 1000

/**
 * QEMU+KVM's verdict on this machine: the boot itself, or, where a probe under the same
 * machineKey found within a week that it cannot boot the kit, that result again (`cached`:
 * when it was probed). Only a failure is kept: a boot that works is quick to repeat and
 * its time is wanted fresh. HSMCTL_BOOT_PROBE=fresh ignores the cache.
 */
export async function peerProbe({ kernel, initrd, marker, kernelPackage, budgetMs }) {
  const file = join(cacheDir, `peer-${machineKey(kernelPackage)}.json`)
  if (process.env.HSMCTL_BOOT_PROBE !== 'fresh' && existsSync(file)) {
    const saved = JSON.parse(readFileSync(file, 'utf8'))
    if (saved.budgetMs === budgetMs && Date.now() - Date.parse(saved.at) < PROBE_CACHE_MS)
      return { ...saved.result, cached: saved.at }
  }
  const result = await bootQemu({ kvm: true, kernel, initrd, marker, budgetMs })
  mkdirSync(cacheDir, { recursive: true })
  if (result.reached) rmSync(file, { force: true })
  else writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), budgetMs, result }))
  return result
}

/** The last `n` lines of a console, for a report of how far a boot got. */
export function tail(text, n = 15) {
  return text.replace(/\r/g, '').trimEnd().split('\n').slice(-n).join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [cmd, ...rest] = process.argv.slice(2)
  try {
    if (cmd === 'peer') {
      const [kernel, initrd, marker, budget, kernelPackage] = rest
      const r = await peerProbe({
        kernel,
        initrd,
        marker,
        kernelPackage,
        budgetMs: Number(budget) * 1000,
      })
      process.stdout.write(`${JSON.stringify(r)}\n`)
    } else if (cmd === 'qemu') {
      const [mode, kernel, initrd, marker, budget] = rest
      const r = await bootQemu({
        kvm: mode === 'kvm',
        kernel,
        initrd,
        marker,
        budgetMs: Number(budget) * 1000,
      })
      process.stdout.write(`${JSON.stringify(r)}\n`)
    } else if (cmd && !cmd.startsWith('-')) {
      process.stdout.write(`${JSON.stringify(prepare(cmd))}\n`)
    } else {
      process.stderr.write(
        'usage: boot-kit.js DIR | boot-kit.js qemu kvm|tcg KERNEL INITRD MARKER BUDGET_S\n',
      )
      process.exit(2)
    }
  } catch (e) {
    process.stderr.write(`boot-kit: ${e instanceof Error ? e.message : e}\n`)
    process.exit(e instanceof Cannot ? 3 : 1)
  }
}
