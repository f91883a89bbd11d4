// `hsmctl trace exec|env|list` and `ioctl log`, through bin/run.js as a user runs them,
// on the sim backend: vm-sample under the tap stacked on the shim. The traced VM's
// traffic shows in `ioreq watch` by name, and what the tap reported (`--source tap`)
// equals what the simulation saw; its ioctls decode alike from both sides.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { shimPath, tapPath, vmSamplePath } from '../../src/core/native/preflight.js'
import { buildHelper, helperUnavailable } from '../core/native/support.js'
import { assemble } from '../support/assemble.js'
import { hsmctl, ROOT, RUN_JS } from '../support/cli.js'
import { guestCodeUnavailable, hello16 } from '../support/guests.js'
import { expectError, type Json } from '../support/hsmd-session.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-tap-cli-'))
const env = {
  HSMCTL_RUNTIME_DIR: join(dir, 'run'),
  HSMCTL_STATE_DIR: join(dir, 'state'),
  HSMCTL_BACKEND: 'sim',
}
const run = (...args: string[]) => hsmctl(args, env)
const json = (...args: string[]): Json => {
  const r = run(...args, '--json')
  expect(r.code, `hsmctl ${args.join(' ')} --json: ${r.stderr}`).toBe(0)
  return JSON.parse(r.stdout)
}

/**
 * A child whose output is collected, with a way to wait for a line; in a process group of
 * its own, so that a test that fails can end it and the program it runs (end()).
 */
function background(argv: string[], extra: NodeJS.ProcessEnv = {}) {
  const child: ChildProcessWithoutNullStreams = spawn(argv[0]!, argv.slice(1), {
    env: { ...process.env, NODE_ENV: undefined, NO_COLOR: '1', ...env, ...extra },
    detached: true,
  })
  const out = { stdout: '', stderr: '' }
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  const waitFor = async (pattern: RegExp): Promise<RegExpMatchArray> => {
    const deadline = Date.now() + 60_000 // a hang guard only
    for (;;) {
      const m = out.stdout.match(pattern)
      if (m) return m
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`no ${pattern}; stdout:\n${out.stdout}\nstderr:\n${out.stderr}`)
      await new Promise((r) => setTimeout(r, 25))
    }
  }
  const end = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL')
    } catch {
      // the group is gone already
    }
  }
  return { child, out, exited, waitFor, end }
}

/** What both sides decode alike: fds and times are each side's own. */
const comparable = (calls: Json[]) =>
  calls
    .map((c: Json) => JSON.stringify([c.name, c.arg, c.out, c.unreadable, c.result, c.errno]))
    .sort()

/** Rows of `ioreq watch --once --json` as request, count. */
const counts = (sample: Json) =>
  sample.samples[0].rows
    .map((r: Json) => `${r.vm} ${r.type} ${r.addr} ${r.dir} ${r.client} ${r.count}`)
    .sort()

describe.skipIf(helperUnavailable)('hsmctl trace and ioctl log (sim backend)', () => {
  beforeAll(() => buildHelper(), 120_000)
  afterAll(() => {
    run('daemon', 'stop')
    rmSync(dir, { recursive: true, force: true })
  })

  it('trace exec runs vm-sample under the tap: its VM by name in ioreq watch, tap equal to sim', async () => {
    const exec = background([process.execPath, RUN_JS, 'trace', 'exec', '--', vmSamplePath()])
    try {
      await exec.waitFor(/Start VM! \[0\]/)
      const vmid = Number((await exec.waitFor(/vmid (\d+)/))[1])
      const name = `outside-${vmid}` // vm-sample names no VM (an empty name, A.1)
      const [vm] = json('vm', 'list')
      expect(vm).toMatchObject({ name, vmid, owner: 'outside process' })
      const sample = vm.holder.match(/^pid (\d+) \(vm-sample\)$/)
      expect(sample).not.toBeNull()
      const pid = Number(sample[1])
      for (const a of [
        ['--pio', '0x3f8', '--write', '0x41', '--size', '1'],
        ['--pio', '0x60', '--read', '--size', '2'],
        ['--pio', '0x3f8', '--write', '0x42', '--size', '1', '--vcpu', '1'],
      ]) {
        const r = run('guest', 'access', name, ...a)
        expect(r.code, r.stderr).toBe(0)
      }
      await exec.waitFor(/value\[0x42\]/)
      // the tap's view, by the VM's name, equals the simulation's (the daemon's trace)
      const filter = [name, '--client', 'default', '--once', '--interval', '0.1']
      const bySim = counts(json('ioreq', 'watch', ...filter))
      expect(bySim).toEqual([
        `${name} pio 0x3f8 write default 2`,
        `${name} pio 0x60 read default 1`,
      ])
      let byTap: string[] = []
      // the tap sends in batches: give it a moment (bounded by the requests, not time)
      for (let i = 0; i < 50 && byTap.join() !== bySim.join(); i++) {
        byTap = counts(json('ioreq', 'watch', ...filter, '--source', 'tap'))
        if (byTap.join() !== bySim.join()) await new Promise((r) => setTimeout(r, 100))
      }
      expect(byTap).toEqual(bySim)
      // the decoded ioctls: the tap's (by default for a traced process) and the simulation's
      const tapCalls: Json[] = json('ioctl', 'log', name)
      const simCalls: Json[] = json('ioctl', 'log', name, '--source', 'sim')
      expect(tapCalls.every((c: Json) => c.source === 'tap' && c.pid === pid)).toBe(true)
      expect(comparable(tapCalls)).toEqual(comparable(simCalls))
      expect(tapCalls[0]).toMatchObject({ name: 'CREATE_VM', out: { vmid }, result: 0 })
      const text = run('ioctl', 'log', '--pid', String(pid))
      expect(text.code, text.stderr).toBe(0)
      expect(text.stdout).toMatch(
        /^CREATE_VM \{vmid=0, vcpu_num=0, uuid="", .*\} => \{vmid=\d+, vcpu_num=\d+\} = 0 <[\d.]+(us|ms)>$/m,
      )
      expect(text.stdout).toMatch(
        /^NOTIFY_REQUEST_FINISH \{vmid=\d+, vcpu=1\} = 0 <[\d.]+(us|ms)>$/m,
      )
      // the whole log: every process, each line with its pid
      expect(run('ioctl', 'log').stdout).toMatch(new RegExp(`^\\[pid ${pid}\\] START_VM = 0 `, 'm'))
      const list = json('trace', 'list')
      expect(list.sessions).toEqual([
        expect.objectContaining({
          pid,
          program: 'vm-sample',
          connected: true,
          dropped: 0,
          ioreqs: 3,
          vms: [{ vmid, name: '' }],
        }),
      ])
      // Ctrl-C reaches the program through trace exec; it ends cleanly, and so does exec
      exec.child.kill('SIGINT')
      expect(await exec.exited, exec.out.stderr).toBe(0)
      expect(exec.out.stdout).toMatch(/Destroy VM! \[0\]\n$/)
      let ended: Json
      for (let i = 0; i < 50; i++) {
        ended = json('trace', 'list').sessions[0]
        if (!ended.connected) break
        await new Promise((r) => setTimeout(r, 100))
      }
      expect(ended).toMatchObject({ connected: false, vms: [], dropped: 0 })
      const last = json('ioctl', 'log', '--pid', String(pid)).at(-1)
      expect(last).toMatchObject({ name: 'DESTROY_VM', result: 0 })
      // the VM is gone: no process holds that name any more
      expectError(run('ioctl', 'log', name), 3, `no VM named '${name}'`, 'hsmctl vm list')
    } finally {
      exec.end()
    }
  }, 300_000)

  it("vm-sample --name with a guest payload on KVM: its traffic by the VM's name, tap equal to sim", async (ctx) => {
    const why = guestCodeUnavailable('vm-sample running a payload under the tap')
    if (why) ctx.skip(why)
    writeFileSync(join(dir, 'hello.bin'), assemble(hello16('Tap')))
    const exec = background([
      process.execPath,
      RUN_JS,
      'trace',
      'exec',
      '--',
      vmSamplePath(),
      '--name',
      'tapvm',
      '--payload',
      join(dir, 'hello.bin'),
    ])
    try {
      // the guest writes T, a, p to COM1, each once the LSR (0x3fd) says it may
      await exec.waitFor(/value\[0x70\]/)
      const [vm] = json('vm', 'list').filter((v: Json) => v.name === 'tapvm')
      expect(vm).toMatchObject({ state: 'running', owner: 'outside process' })
      const filter = ['tapvm', '--once', '--interval', '0.1']
      // the third write's NOTIFY completes it just after vm-sample prints it
      let bySim: string[] = []
      for (let i = 0; i < 50 && !bySim.includes('tapvm pio 0x3f8 write default 3'); i++) {
        bySim = counts(json('ioreq', 'watch', ...filter))
        if (!bySim.includes('tapvm pio 0x3f8 write default 3'))
          await new Promise((r) => setTimeout(r, 100))
      }
      // each byte after the LSR said so (0x3fd), and once more for the closing NUL; and
      // nothing of the first test's VM, whose vmid this one was given (its CREATE_VM
      // started the vmid's statistics afresh)
      expect(bySim).toEqual(['tapvm pio 0x3f8 write default 3', 'tapvm pio 0x3fd read default 4'])
      let byTap: string[] = []
      for (let i = 0; i < 50 && byTap.join() !== bySim.join(); i++) {
        byTap = counts(json('ioreq', 'watch', ...filter, '--source', 'tap'))
        if (byTap.join() !== bySim.join()) await new Promise((r) => setTimeout(r, 100))
      }
      expect(byTap).toEqual(bySim)
      const calls: Json[] = json('ioctl', 'log', 'tapvm')
      expect(calls[0]).toMatchObject({ name: 'CREATE_VM', arg: { uuid: '"tapvm"' } })
      expect(comparable(calls)).toEqual(
        comparable(json('ioctl', 'log', 'tapvm', '--source', 'sim')),
      )
      exec.child.kill('SIGINT')
      expect(await exec.exited, exec.out.stderr).toBe(0)
    } finally {
      exec.end()
    }
  }, 300_000)

  it("sim exec'd vm-sample --name: ioreq tail and record find its VM by that name, like hsmd's own", async () => {
    const exec = background([
      process.execPath,
      RUN_JS,
      'sim',
      'exec',
      '--',
      vmSamplePath(),
      '--name',
      'simvm',
    ])
    const file = join(dir, 'simvm.hsmtrace')
    try {
      await exec.waitFor(/Start VM! \[0\]/)
      const tail = background([process.execPath, RUN_JS, 'ioreq', 'tail', 'simvm', '--count', '2'])
      const record = background([
        process.execPath,
        RUN_JS,
        'ioreq',
        'record',
        file,
        '--vm',
        'simvm',
        '--json',
      ])
      for (const [p, text] of [
        [tail, /following I\/O requests \(2\)/],
        [record, /recording to/],
      ] as const) {
        const deadline = Date.now() + 60_000 // a hang guard only
        while (!text.test(p.out.stderr) && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 25))
      }
      for (const a of [
        ['--pio', '0x3f8', '--write', '0x53', '--size', '1'],
        ['--pio', '0x64', '--read', '--size', '1'],
      ]) {
        const r = run('guest', 'access', 'simvm', ...a)
        expect(r.code, r.stderr).toBe(0)
      }
      expect(await tail.exited, tail.out.stderr).toBe(0)
      const lines = tail.out.stdout.trim().split('\n')
      expect(lines).toHaveLength(2)
      expect(lines[0]).toMatch(/ simvm +vcpu0 +PIO +OUT +0x3f8 .*0x53 .*default/)
      expect(lines[1]).toMatch(/ simvm +vcpu0 +PIO +IN +0x64 .*0xff .*default/)
      // the recorder has both once the daemon's trace holds them (tail saw them there)
      record.child.kill('SIGINT')
      expect(await record.exited, record.out.stderr).toBe(0)
      expect(JSON.parse(record.out.stdout)).toMatchObject({ file, records: 2, dropped: 0 })
      const report = json('ioreq', 'report', file)
      expect(report.rows.map((r: Json) => `${r.vm} ${r.key} ${r.count}`).sort()).toEqual([
        'simvm PIO 0x3f8 OUT 1',
        'simvm PIO 0x64 IN 1',
      ])
      exec.child.kill('SIGINT')
      expect(await exec.exited, exec.out.stderr).toBe(0)
    } finally {
      exec.end()
    }
  }, 300_000)

  it('trace env prints the one line a launch script needs', async () => {
    const r = json('trace', 'env')
    expect(r.preload).toEqual([tapPath(), shimPath()])
    expect(r.env).toMatchObject({
      HSM_TAP_SOCKET: join(dir, 'run', 'hsmd-sim-tap.sock'),
      HSM_SHIM_SOCKET: join(dir, 'run', 'hsmd-sim-shim.sock'),
    })
    const line = run('trace', 'env')
    expect(line.code, line.stderr).toBe(0)
    expect(line.stdout).toBe(r.line + '\n')
    expect(line.stdout).toMatch(/^export LD_PRELOAD="\$\{LD_PRELOAD:\+\$LD_PRELOAD:\}"/)
    // a launch script: the line, then the program (with a preload of its own kept first)
    const script = background(
      ['sh', '-c', `${r.line}; echo "preload $LD_PRELOAD"; exec ${vmSamplePath()}`],
      { LD_PRELOAD: '' },
    )
    try {
      await script.waitFor(/Start VM! \[0\]/)
      expect(script.out.stdout).toContain(`preload ${tapPath()}:${shimPath()}\n`)
      const pid = script.child.pid!
      let session: Json
      for (let i = 0; i < 50 && !session; i++) {
        session = json('trace', 'list').sessions.find((s: Json) => s.pid === pid && s.connected)
        if (!session) await new Promise((r) => setTimeout(r, 100))
      }
      expect(session).toMatchObject({ program: 'vm-sample', ioctls: 5 })
    } finally {
      script.child.kill('SIGINT')
      await script.exited
    }
  }, 120_000)

  it('refuses what it cannot do, with the exit code and a hint', () => {
    expectError(run('ioctl', 'log', 'nosuch'), 3, "no VM named 'nosuch'", 'hsmctl vm list')
    expect(run('ioctl', 'log', '--pid', '0').code).toBe(2)
    expect(run('ioctl', 'log', '--source', 'bogus').code).toBe(2)
    expect(run('ioreq', 'watch', '--source', 'bogus', '--once').code).toBe(2)
    expectError(run('trace', 'exec'), 2, 'PROGRAM is missing', 'trace exec')
    const missing = run('trace', 'exec', '--', join(dir, 'nosuch-program'))
    expect(missing.code, missing.stderr).toBe(127)
    // a pid that is not traced has no calls: an empty log, not an error
    expect(json('ioctl', 'log', '--pid', '999999')).toEqual([])
  })

  it('ioctl log --follow ends quietly when its reader goes away', async () => {
    const pipeline = background([
      'sh',
      '-c',
      `"${process.execPath}" "${RUN_JS}" ioctl log --follow | head -n 1; echo done`,
    ])
    await pipeline.waitFor(/^\[pid \d+\] CREATE_VM /)
    // head is gone; the next calls it would print end it (EPIPE, status 141, silently)
    const probe = run('trace', 'exec', '--', join(ROOT, 'helper', 'build', 'tap-probe'))
    expect(probe.code, probe.stderr).toBe(0)
    expect(await pipeline.exited).toBe(0)
    expect(pipeline.out.stdout).toMatch(/\ndone\n$/)
    expect(pipeline.out.stderr).toBe('')
  }, 120_000)
})
