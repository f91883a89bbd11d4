// acrn-dm's VMs managed by hsmctl (issue 12, items 1 and 2), against ACRN's own acrn-dm on
// the simulation and beside ACRN's own acrnctl on the same VMs: each verb has the same
// effect where acrnctl has it, and where acrnctl is wrong (a request for vm10 reaching vm1,
// exit 0 on failure, a half-deleted registration) hsmctl is not. Everything runs in a
// private mount namespace (test/support/acrn-dm.ts), as acrn-dm and acrnctl hard-code
// /run/acrn/mngr and /usr/share/acrn/conf/add; hsmctl finds them at those defaults there.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildHelper } from '../core/native/support.js'
import {
  acrnDmMachineCannot,
  AcrnNamespace,
  buildAcrnDm,
  keepHugepages,
  launchScript,
} from '../support/acrn-dm.js'
import { assembleElf32, assemblerUnavailable } from '../support/assemble.js'
import type { CliResult } from '../support/cli.js'
import { expectError, type Json } from '../support/hsmd-session.js'

const CONF = '/usr/share/acrn/conf/add'
const MNGR = '/run/acrn/mngr'

const cannot = acrnDmMachineCannot ?? assemblerUnavailable
if (cannot) console.warn(`skipping acrn-dm's VMs: ${cannot}`)

describe.skipIf(cannot)('acrn-dm’s VMs, beside acrnctl', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-acrn-vms-'))
  const env = { HSMCTL_RUNTIME_DIR: join(dir, 'run'), HSMCTL_STATE_DIR: join(dir, 'state') }
  let build: { acrnDm: string; acrnctl: string } | undefined
  let unavailable: string | undefined
  let ns: AcrnNamespace
  let restoreHugepages: (() => void) | undefined
  const guest = join(dir, 'guest.elf')
  const script = join(dir, 'launch.sh')

  const hsmctl = (...args: string[]): CliResult => ns.hsmctl(args, env)
  const json = (...args: string[]): Json => {
    // --json is hsmctl's only before a `--` (after it, the words are a script's arguments)
    const end = args.indexOf('--')
    const r = hsmctl(
      ...(end < 0 ? [...args, '--json'] : [...args.slice(0, end), '--json', ...args.slice(end)]),
    )
    expect(r.code, `hsmctl ${args.join(' ')}: ${r.stderr}`).toBe(0)
    return JSON.parse(r.stdout)
  }
  const acrnctl = (...args: string[]): CliResult => ns.run(build!.acrnctl, args)
  const list = (): Json[] => json('vm', 'list')
  const vmRow = (name: string): Json | undefined => list().find((v: Json) => v.name === name)
  const sockets = () => ns.sh(`ls -U ${MNGR} 2>/dev/null`).stdout.split('\n').filter(Boolean)
  /** Running: there, and not a zombie (an exited acrn-dm its parent has not reaped yet). */
  const pidAlive = (pid: number) =>
    ns.sh(`kill -0 ${pid} && ! grep -q '^[0-9]* (.*) Z ' /proc/${pid}/stat`).code === 0
  /** acrnctl list as {name: state}. */
  const acrnctlList = (): Record<string, string> =>
    Object.fromEntries(
      acrnctl('list')
        .stdout.split('\n')
        .map((l) => /^(\S+)\t\t(\S+)$/.exec(l))
        .filter((m) => m !== null)
        .map((m) => [m[1]!, m[2]!]),
    )
  /** Register a launch script for NAME (with hsmctl) and start it; its acrn-dm pid. */
  const up = (name: string, source = script): number => {
    if (!vmRow(name)) expect(hsmctl('vm', 'add', source, '--', name).code).toBe(0)
    const started = json('vm', 'start', name)
    return started.pid
  }

  beforeAll(() => {
    buildHelper()
    const built = buildAcrnDm()
    if ('unavailable' in built) {
      unavailable = built.unavailable
      return
    }
    build = { acrnDm: built.path, acrnctl: built.acrnctl }
    restoreHugepages = keepHugepages()
    // COM1 gets an 'H', then the vCPU halts
    writeFileSync(
      guest,
      assembleElf32("_start: mov $0x3f8, %dx\nmov $'H', %al\nout %al, (%dx)\n1: hlt\njmp 1b"),
    )
    writeFileSync(script, launchScript(build.acrnDm, guest))
    ns = AcrnNamespace.open()
  }, 1_800_000)

  afterAll(() => {
    if (ns) {
      // the acrn-dm processes this file started, by the pids their sockets name
      for (const s of sockets()) {
        const pid = /\.monitor\.(\d+)\.socket$/.exec(s)?.[1]
        if (pid) ns.sh(`kill -KILL ${pid}`)
      }
      hsmctl('daemon', 'stop')
      ns.close()
    }
    restoreHugepages?.()
    rmSync(dir, { recursive: true, force: true })
  })

  it('vm add registers a script as acrnctl add does, without running it; each lists the other’s', (ctx) => {
    if (unavailable) ctx.skip(unavailable)
    // hsmctl's entry, read by acrnctl
    const added = json('vm', 'add', script, '--', 'vma')
    expect(added).toMatchObject({
      name: 'vma',
      script: `${CONF}/vma.sh`,
      args: ['vma'],
      nameFrom: { line: 4 },
    })
    expect(ns.sh(`cmp ${script} ${CONF}/vma.sh && cat ${CONF}/vma.args`).stdout).toBe('vma\n')
    expect(acrnctlList()).toEqual({ vma: 'stopped' })
    // acrnctl's entry (it runs the script to learn the name), read by hsmctl
    const r = acrnctl('add', script, 'vmb')
    expect(r.stdout).toContain('vmb added')
    expect(vmRow('vmb')).toMatchObject({
      owner: 'script',
      state: 'stopped',
      script: { args: ['vmb'] },
    })
    // no VM ran for either: no socket, and the daemon's HSM has no VM
    expect(sockets()).toEqual([])
    expect(list().filter((v: Json) => v.owner !== 'script')).toEqual([])
  })

  it('vm add refuses a duplicate and an unreadable name, changing nothing', (ctx) => {
    if (unavailable) ctx.skip(unavailable)
    const before = ns.sh(`ls ${CONF}`).stdout
    expectError(hsmctl('vm', 'add', script, '--', 'vma'), 4, "'vma' is registered already")
    const odd = join(dir, 'odd.sh')
    writeFileSync(odd, `${build!.acrnDm} -m 128M --cpu_affinity 1 $(hostname)\n`)
    expectError(
      hsmctl('vm', 'add', odd),
      2,
      /line 1: a command substitution \$\(\.\.\.\) runs a command/,
      /--name NAME/,
    )
    expect(ns.sh(`ls ${CONF}`).stdout).toBe(before)
  })

  it('vm start returns once the VM runs, supervised with a log; acrnctl sees it started', (ctx) => {
    if (unavailable) ctx.skip(unavailable)
    const started = json('vm', 'start', 'vma')
    expect(started).toMatchObject({
      name: 'vma',
      socket: `${MNGR}/vma.monitor.${started.pid}.socket`,
    })
    // it returned with the VM already running in the HSM, held by that acrn-dm
    expect(vmRow('vma')).toMatchObject({
      owner: `acrn-dm (pid ${started.pid})`,
      state: 'running',
      vcpus: 1,
      memory: '0x8000000',
      acrnDm: { pid: started.pid, mode: 0, modeName: 'NONE', hsmState: 'running' },
      script: { path: `${CONF}/vma.sh`, args: ['vma'] },
    })
    expect(acrnctlList().vma).toBe('started')
    const shown = json('vm', 'show', 'vma')
    expect(shown.commandLine.at(-1)).toBe('vma')
    expect(shown.log.path).toBe(join(env.HSMCTL_STATE_DIR, 'acrn-dm', 'vma.log'))
    const log = hsmctl('vm', 'log', 'vma')
    expect(log.stdout).toMatch(
      /^hsmctl: starting vma at .*: bash \/usr\/share\/acrn\/conf\/add\/vma\.sh vma\n/,
    )
    expect(log.stdout).toContain('add_cpu') // acrn-dm's own output
    expectError(hsmctl('vm', 'start', 'vma'), 4, "'vma' runs already")
  })

  it('vm start of a failing script fails with its own error text; acrnctl start exits 0', (ctx) => {
    if (unavailable) ctx.skip(unavailable)
    // acrn-dm without --cpu_affinity builds no MP table and exits 1
    const bad = join(dir, 'bad.sh')
    writeFileSync(bad, launchScript(build!.acrnDm, guest).replace('--cpu_affinity 1 ', ''))
    expect(hsmctl('vm', 'add', bad, '--', 'vmbad').code).toBe(0)
    const r = hsmctl('vm', 'start', 'vmbad')
    expectError(
      r,
      6,
      "vmbad's launch script exited with status 1 before its VM was up",
      'hsmctl vm log vmbad',
    )
    expect(r.stderr).toContain('Invalid guest_pcpu_bitmask')
    expect(json('vm', 'show', 'vmbad').log.lastExitStatus).toBe(1)
    // acrnctl blocks for the script's life and then exits 0: system()'s 256 truncated
    const a = acrnctl('start', 'vmbad')
    expect(ns.sh(`bash ${CONF}/vmbad.sh vmbad >/dev/null 2>&1; echo $?`).stdout).toBe('1\n')
    expect(a.code).toBe(0)
  })

  it('names are exact: acrnctl stop -f vm10 stops vm1, hsmctl vm stop vm10 stops vm10', (ctx) => {
    if (unavailable) ctx.skip(unavailable)
    const vm10 = up('vm10')
    const vm1 = up('vm1')
    // libacrn-mngr takes the first entry whose text before '.' prefixes the name: vm1's
    // socket must come first in the directory for acrnctl to go wrong (tmpfs lists newest first)
    expect(sockets().findIndex((s) => s.startsWith('vm1.'))).toBeLessThan(
      sockets().findIndex((s) => s.startsWith('vm10.')),
    )
    expect(acrnctl('stop', '-f', 'vm10').code).toBe(0)
    // acrn-dm vm1 powers off; vm10 runs on
    expect(json('vm', 'list').find((v: Json) => v.name === 'vm10').acrnDm.pid).toBe(vm10)
    for (let i = 0; pidAlive(vm1) && i < 600; i++) ns.sh('sleep 0.05') // hang guard
    expect(pidAlive(vm1)).toBe(false)
    expect(pidAlive(vm10)).toBe(true)
    // hsmctl: exactly vm10, waited for until gone, and vm1 (started again) untouched
    const vm1again = up('vm1')
    const stopped = json('vm', 'stop', 'vm10', '--force', '--yes')
    expect(stopped).toMatchObject({ name: 'vm10', pid: vm10, force: true })
    expect(pidAlive(vm10)).toBe(false)
    expect(sockets().some((s) => s.startsWith('vm10.'))).toBe(false)
    expect(vmRow('vm10')).toMatchObject({ owner: 'script', state: 'stopped' })
    expect(vmRow('vm1')).toMatchObject({ owner: `acrn-dm (pid ${vm1again})`, state: 'running' })
    expectError(hsmctl('vm', 'stop', 'vm1x'), 3, "no VM named 'vm1x'")
  })

  it('an unforced stop without stop hooks is refused by both, and hsmctl says why', (ctx) => {
    if (unavailable) ctx.skip(unavailable)
    const pid = vmRow('vm1').acrnDm.pid
    const a = acrnctl('stop', 'vm1')
    expect(a.code).toBe(255)
    expect(a.stdout).toContain('errno(-1)')
    expectError(
      hsmctl('vm', 'stop', 'vm1'),
      6,
      'has no stop hook: DM_STOP answered -1',
      '--pm_notify_channel',
    )
    expect(pidAlive(pid)).toBe(true)
    // --force asks first, off a terminal it needs --yes (and changes nothing)
    expectError(hsmctl('vm', 'stop', 'vm1', '--force'), 2, '--yes is required')
    expect(pidAlive(pid)).toBe(true)
  })

  it('vm suspend without hooks is refused with the reason; vm resume answers NONE', (ctx) => {
    if (unavailable) ctx.skip(unavailable)
    expectError(hsmctl('vm', 'suspend', 'vm1'), 6, 'has no suspend hook: DM_SUSPEND answered -1')
    expect(json('vm', 'resume', 'vm1')).toEqual({ name: 'vm1', mode: 'NONE' })
    expect(vmRow('vm1').state).toBe('running')
  })

  it('vm blkrescan fills a nodisk virtio-blk once; acrnctl exits 0 when acrn-dm refuses', (ctx) => {
    if (unavailable) ctx.skip(unavailable)
    const blk = join(dir, 'blk.sh')
    writeFileSync(blk, launchScript(build!.acrnDm, guest, ' -s 3,virtio-blk,nodisk'))
    const disk = join(dir, 'disk.img')
    writeFileSync(disk, Buffer.alloc(1 << 20))
    up('vmblk', blk)
    expect(json('vm', 'blkrescan', 'vmblk', `3,${disk}`)).toEqual({
      name: 'vmblk',
      slot: 3,
      path: disk,
    })
    // a second time acrn-dm refuses (the slot has a file): acrnctl says so and exits 0
    const a = acrnctl('blkrescan', 'vmblk', `3,${disk}`)
    expect(a.stdout).toContain('Unable to rescan virtio-blk device in vm. errno(-1)')
    expect(a.code).toBe(0)
    expectError(hsmctl('vm', 'blkrescan', 'vmblk', `3,${disk}`), 6, 'DM_BLKRESCAN 3,')
    expectError(
      hsmctl('vm', 'blkrescan', 'vmblk', `4,${disk}`),
      6,
      'slot 4 is not a virtio-blk device (slot 3 is)',
    )
    expectError(hsmctl('vm', 'blkrescan', 'vm1', `3,${disk}`), 6, 'it has no virtio-blk device')
    expectError(hsmctl('vm', 'blkrescan', 'vm1', '3'), 2, "'3' is not SLOT,PATH")
    expectError(hsmctl('vm', 'blkrescan', 'vm1', `3,${dir}/none.img`), 3, 'does not exist')
  })

  it('vm reset stops and starts again from the script, as acrnctl reset (which needs stop hooks)', (ctx) => {
    if (unavailable) ctx.skip(unavailable)
    const before = vmRow('vm1').acrnDm.pid
    // acrnctl's reset is an unforced stop: refused without hooks, VM untouched; hsmctl's too
    expect(acrnctl('reset', 'vm1').code).toBe(255)
    expectError(hsmctl('vm', 'reset', 'vm1', '--yes'), 6, 'has no stop hook')
    expect(vmRow('vm1').acrnDm.pid).toBe(before)
    const reset = json('vm', 'reset', 'vm1', '--yes', '--force')
    expect(reset.stopped.pid).toBe(before)
    expect(pidAlive(before)).toBe(false)
    expect(vmRow('vm1')).toMatchObject({
      owner: `acrn-dm (pid ${reset.started.pid})`,
      state: 'running',
    })
  })

  it('vm destroy powers an acrn-dm VM off; vm pause says what to do instead', (ctx) => {
    if (unavailable) ctx.skip(unavailable)
    const pid = vmRow('vmblk').acrnDm.pid
    expectError(
      hsmctl('vm', 'pause', 'vmblk'),
      4,
      "'vmblk' is acrn-dm's VM",
      'hsmctl vm suspend vmblk',
    )
    expect(json('vm', 'destroy', 'vmblk', '--yes')).toMatchObject({ name: 'vmblk', pid })
    expect(pidAlive(pid)).toBe(false)
    expect(vmRow('vmblk')).toMatchObject({ state: 'stopped' })
  })

  it('vm del deletes both files or neither; acrnctl del half-deletes', (ctx) => {
    if (unavailable) ctx.skip(unavailable)
    // not while it runs (acrnctl agrees)
    expectError(hsmctl('vm', 'del', 'vm1', '--yes'), 4, "'vm1' runs")
    expect(acrnctl('del', 'vm1').stdout).toContain("can't delete vm1(started)")
    // an args file that cannot be removed (immutable): acrnctl removes the script, leaves it
    ns.sh(`chattr +i ${CONF}/vmb.args`)
    expect(acrnctl('del', 'vmb').code).toBe(0)
    expect(ns.sh(`ls ${CONF}/vmb.sh ${CONF}/vmb.args 2>/dev/null`).stdout).toBe(
      `${CONF}/vmb.args\n`,
    )
    expect(vmRow('vmb')).toBeUndefined() // gone from both lists, half of it still there
    // hsmctl: nothing is deleted, and it says why
    ns.sh(`chattr +i ${CONF}/vmbad.args`)
    const r = hsmctl('vm', 'del', 'vmbad', '--yes')
    expectError(r, 6, /cannot delete .*vmbad\.args; nothing was deleted: EPERM/)
    expect(ns.sh(`ls ${CONF}/vmbad.sh ${CONF}/vmbad.args`).code).toBe(0)
    expect(vmRow('vmbad')).toMatchObject({ owner: 'script' })
    ns.sh(`chattr -i ${CONF}/vmbad.args ${CONF}/vmb.args`)
    expect(json('vm', 'del', 'vmbad', '--yes').removed).toEqual([
      `${CONF}/vmbad.sh`,
      `${CONF}/vmbad.args`,
    ])
    expect(vmRow('vmbad')).toBeUndefined()
    expectError(hsmctl('vm', 'del', 'vmbad', '--yes'), 3, "no VM named 'vmbad'")
  })

  it('a VM whose holder hsmctl cannot talk to: each verb says what can be done instead', (ctx) => {
    if (unavailable) ctx.skip(unavailable)
    // acrn-dm whose sockets hsmctl looks for elsewhere: the HSM's VM, held by acrn-dm
    const elsewhere = {
      ...env,
      HSMCTL_ACRN_MNGR_DIR: '/run/acrn/elsewhere',
      HSMCTL_ACRN_CONF_DIR: '/run/acrn/noconf',
    }
    const row = ns.hsmctl(['vm', 'list', '--json'], elsewhere)
    const vm1 = (JSON.parse(row.stdout) as Json[]).find((v) => v.name === 'vm1')
    expect(vm1).toMatchObject({
      owner: 'outside process',
      holder: expect.stringMatching(/^pid \d+ \(acrn-dm\)$/),
    })
    const pid = /^pid (\d+)/.exec(vm1.holder)![1]
    for (const verb of ['stop', 'suspend', 'resume', 'start', 'pause']) {
      const r = ns.hsmctl(['vm', verb, 'vm1'], elsewhere)
      expectError(
        r,
        4,
        `'vm1' (vmid ${vm1.vmid}) is held by pid ${pid} (acrn-dm), which hsmctl cannot talk to`,
        /no monitor socket in \/run\/acrn\/elsewhere.*HSMCTL_ACRN_MNGR_DIR/,
      )
    }
    // vm show gives the HSM's view of it
    const shown = JSON.parse(ns.hsmctl(['vm', 'show', 'vm1', '--json'], elsewhere).stdout)
    expect(shown).toMatchObject({
      name: 'vm1',
      owner: 'outside process',
      vmid: vm1.vmid,
      state: 'running',
    })
  })

  it('vm list --json has one row per VM with its owner', (ctx) => {
    if (unavailable) ctx.skip(unavailable)
    expect(hsmctl('vm', 'create', 'own', '--memory', '1M').code).toBe(0)
    const rows = list().map((v: Json) => [v.name, v.owner.replace(/\d+/, 'N'), v.state])
    expect(rows).toEqual([
      ['own', 'hsmd', 'created'],
      ['vm1', 'acrn-dm (pid N)', 'running'],
      ['vm10', 'script', 'stopped'],
      ['vma', 'acrn-dm (pid N)', 'running'],
      ['vmblk', 'script', 'stopped'],
    ])
    expect(acrnctlList()).toEqual({
      vm1: 'started',
      vm10: 'stopped',
      vma: 'started',
      vmblk: 'stopped',
    })
    // hsmd's own VM is still hsmd's: vm show answers as before
    expect(json('vm', 'show', 'own')).toMatchObject({ name: 'own', state: 'created' })
  })
})
