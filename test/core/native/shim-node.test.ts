// What a shimmed program sees when it looks at the device before opening it (helper/SHIM.md,
// "The device node"): helper/stat-probe.c calls every stat- and access-like function on
// /dev/acrn_hsm, /dev/acrn_vhm and an open placeholder fd. Where the test may make device
// nodes (root), the probe also makes a real one with the same mode, owner and numbers and
// asks the kernel the same questions: the shim's answers must be the kernel's, as root and
// as nobody. Elsewhere the answers are checked against §1.1/§1.3 directly.

import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { shimPath } from '../../../src/core/native/preflight.js'
import { SimServer } from '../../../src/core/native/sim-server.js'
import { createSimPlatform } from '../../../src/index.js'
import { buildHelper, helperUnavailable, ROOT } from './support.js'

const PROBE = join(ROOT, 'helper', 'build', 'stat-probe')
const dir = mkdtempSync(join(tmpdir(), 'hsmctl-shim-node-'))
// nobody must reach the reference node
chmodSync(dir, 0o755)
afterAll(() => rmSync(dir, { recursive: true, force: true }))

interface Line {
  call: string
  label: string
  fields: Record<string, string>
}

function parse(out: string): Line[] {
  const lines: Line[] = []
  for (const text of out.split('\n')) {
    const [call, label, ...rest] = text.split(' ')
    if (!call || !label || rest.length === 0 || !rest[0]!.startsWith('rc=')) continue
    const fields: Record<string, string> = {}
    for (const kv of rest) {
      const at = kv.indexOf('=')
      fields[kv.slice(0, at)] = kv.slice(at + 1)
    }
    lines.push({ call, label, fields })
  }
  return lines
}

/** What a file's own identity is: where it lives and its inode (and statx's mask). */
const WHERE = ['dev', 'ino', 'mask']
const without = (f: Record<string, string>, keys: string[]) =>
  Object.fromEntries(Object.entries(f).filter(([k]) => !keys.includes(k)))

function runProbe(socket: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(PROBE, [dir, '--drop'], {
      env: { ...process.env, LD_PRELOAD: shimPath(), HSM_SHIM_SOCKET: socket },
    })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    child.on('close', (code) => resolve({ code, out }))
  })
}

describe.skipIf(helperUnavailable)('the device node under libhsm-shim.so', () => {
  let out = ''
  let lines: Line[] = []
  const hostHadDevice = existsSync('/dev/acrn_hsm')

  beforeAll(async () => {
    buildHelper()
    const platform = createSimPlatform()
    const server = await SimServer.listen(join(dir, 's.sock'), { platform })
    try {
      const r = await runProbe(server.path)
      out = r.out
      expect(r.code, out).toBe(0)
    } finally {
      await server.close()
    }
    lines = parse(out)
  }, 120_000)

  const of = (call: string, label: string) => {
    const l = lines.find((x) => x.call === call && x.label === label)
    if (!l) throw new Error(`no ${call} ${label} in the probe's output:\n${out}`)
    return l.fields
  }
  const calls = (label: string) => lines.filter((l) => l.label === label)

  it('stat, lstat, fstatat, statx and the __xstat family report a 0600 root misc device', () => {
    const dev = out.match(/^dir dev=(\d+:\d+) mask=([0-9a-f]+)$/m)
    expect(dev, out).not.toBeNull()
    const misc = new Set(
      readFileSync('/proc/misc', 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => Number(l.trim().split(/\s+/)[0])),
    )
    const stats = calls('device').filter((l) => l.fields.mode !== undefined)
    expect([...new Set(stats.map((l) => l.call.replace('@nobody', '')))].sort()).toEqual(
      [
        '__fxstatat',
        '__lxstat',
        '__xstat',
        'fstatat',
        'fstatat-dirfd',
        'fstatat-nofollow',
        'fstatat64',
        'lstat',
        'lstat64',
        'stat',
        'stat64',
        'statx',
        'statx-nofollow',
      ].sort(),
    )
    const first = stats[0]!.fields
    for (const { call, fields } of stats) {
      // §1.1 step 3: a misc device (major 10), dynamic minor; §1.3: devtmpfs makes it 0600 root:root
      expect({ call, ...without(fields, ['mask']) }).toEqual({
        call,
        rc: '0',
        errno: '0',
        mode: '20600',
        nlink: '1',
        uid: '0',
        gid: '0',
        rdev: first.rdev,
        size: '0',
        blksize: '4096',
        blocks: '0',
        dev: dev![1],
        ino: first.ino,
      })
    }
    const [major, minor] = first.rdev!.split(':').map(Number)
    expect(major).toBe(10)
    // the dynamic minor the kernel would give: one no other misc device has (unless it is ours)
    const own = readFileSync('/proc/misc', 'utf8').match(/^\s*(\d+) acrn_hsm$/m)
    if (own) expect(minor).toBe(Number(own[1]))
    else expect(misc.has(minor!)).toBe(false)
    // statx fills what the kernel fills for a file of /dev's file system
    expect(of('statx', 'device').mask).toBe(dev![2])
  })

  it('fstat and AT_EMPTY_PATH calls on the placeholder fd report the same node', () => {
    const node = without(of('stat', 'device'), [])
    for (const call of ['fstat', 'fstat64', '__fxstat', 'fstatat-empty', 'statx-empty']) {
      expect({ call, ...without(of(call, 'device-fd'), ['mask']) }).toEqual({ call, ...node })
    }
    expect(of('faccessat-empty-X', 'device-fd')).toEqual({ rc: '-1', errno: 'EACCES' })
  })

  it('/dev/acrn_vhm, the legacy name, is missing for open, stat and access alike', () => {
    expect(of('open', 'legacy')).toEqual({ rc: '-1', errno: 'ENOENT' })
    expect(of('open', 'device')).toEqual({ rc: '0', errno: '0' })
    const legacy = calls('legacy')
    expect(legacy.length).toBeGreaterThan(30)
    for (const { call, fields } of legacy) {
      // flags and modes the kernel rejects are EINVAL before any lookup
      const invalid = /badflags|reserved|^(access|faccessat|faccessat-eaccess)-bad(@|$)/.test(call)
      expect({ call, ...fields }).toEqual({
        call,
        rc: '-1',
        errno: invalid ? 'EINVAL' : 'ENOENT',
      })
    }
  })

  it('answers as the kernel does for a real node with the same mode, owner and numbers', () => {
    const ref = out.match(/^ref unavailable (\w+)$/m)
    if (ref) {
      // No mknod here (not root): §1.3's rules directly. Without CAP_DAC_OVERRIDE only
      // the owner, root, may read or write; nobody may execute (no x bit).
      expect(process.getuid?.()).not.toBe(0)
      for (const l of calls('device').filter((x) => x.call.includes('access'))) {
        const mode = l.call.split('-').pop()
        // glibc's euidaccess drops unknown mode bits; the kernel refuses them (EINVAL)
        const ok = mode === 'F' || (mode === 'bad' && /^e(uid)?access/.test(l.call))
        const invalid = (mode === 'bad' || mode === 'badflags') && !ok
        expect({ call: l.call, ...l.fields }).toEqual({
          call: l.call,
          rc: ok ? '0' : '-1',
          errno: ok ? '0' : invalid ? 'EINVAL' : 'EACCES',
        })
      }
      return
    }
    // The kernel's own answers, as root and (dropped) as nobody.
    const compared = new Set<string>()
    for (const [label, refLabel] of [
      ['device', 'ref'],
      ['device-fd', 'ref-fd'],
    ] as const) {
      for (const l of lines.filter((x) => x.label === refLabel)) {
        const mine = of(l.call, label)
        expect({ call: l.call, ...without(mine, WHERE) }).toEqual({
          call: l.call,
          ...without(l.fields, WHERE),
        })
        compared.add(l.call)
      }
    }
    expect(compared.has('access-R@nobody')).toBe(true)
    expect(compared.has('euidaccess-bad')).toBe(true)
    expect(compared.has('fstat@nobody')).toBe(true)
    expect(compared.size).toBeGreaterThan(60)
  })

  it('passes other paths through and makes no file on the host', () => {
    expect(out).toMatch(/^passthrough rc=0 ino=(\d+) kernel-rc=0 kernel-ino=\1$/m)
    expect(existsSync('/dev/acrn_hsm')).toBe(hostHadDevice)
    if (!hostHadDevice) expect(() => statSync('/dev/acrn_vhm')).toThrow(/ENOENT/)
  })
})
