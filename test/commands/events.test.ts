// `hsmctl events` (issue 14 item 3): every change hsmd makes, once, in order, as it
// happens; --since replays what hsmd kept; the daemon's stop ends the stream with status 0;
// bad flags are refused before the daemon is asked. The changes are made through the CLI
// while a second hsmctl follows them, as a user would in two terminals.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { hsmctl, RUN_JS } from '../support/cli.js'
import { hsmdSession, type Json } from '../support/hsmd-session.js'
import { haveTmux, TmuxSession } from '../support/tmux.js'

const WAIT = 60_000 // a hang guard only: slowness must not fail a test

interface Stream {
  child: ChildProcessWithoutNullStreams
  lines(): string[]
  stderr(): string
  /** Resolves once `n` lines came (fails if the command exits first). */
  until(n: number): Promise<string[]>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

const streams: Stream[] = []
afterEach(() => {
  for (const s of streams.splice(0)) if (s.child.exitCode === null) s.child.kill('SIGKILL')
})

/** `hsmctl events ARGS` in the background; resolves once it says it is following. */
async function follow(env: NodeJS.ProcessEnv, ...args: string[]): Promise<Stream> {
  const child = spawn(process.execPath, [RUN_JS, 'events', ...args], {
    env: { ...process.env, NODE_ENV: undefined, NO_COLOR: '1', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  child.stdin.end()
  let out = ''
  let err = ''
  const waiters = new Set<() => void>()
  const wake = () => waiters.forEach((w) => w())
  child.stdout.setEncoding('utf8').on('data', (d: string) => ((out += d), wake()))
  child.stderr.setEncoding('utf8').on('data', (d: string) => ((err += d), wake()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => (resolve({ code, signal }), wake())),
  )
  const lines = () => out.split('\n').filter((l) => l !== '')
  const wait = (ok: () => boolean, what: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (ok()) {
          waiters.delete(check)
          clearTimeout(guard)
          resolve()
        } else if (child.exitCode !== null || child.signalCode !== null) {
          waiters.delete(check)
          clearTimeout(guard)
          reject(new Error(`events exited before ${what}; stdout: ${out}\nstderr: ${err}`))
        }
      }
      const guard = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`no ${what} within ${WAIT} ms; stdout: ${out}\nstderr: ${err}`))
      }, WAIT)
      waiters.add(check)
      check()
    })
  const s: Stream = {
    child,
    lines,
    stderr: () => err,
    until: async (n) => {
      await wait(() => lines().length >= n, `${n} lines`)
      return lines()
    },
    exited,
  }
  streams.push(s)
  await wait(() => /following events/.test(err), 'start')
  return s
}

const brief = (e: Json) => `${e.type} ${e.action} ${e.vm ?? '-'}`

describe('events under create/start/pause/reset/destroy, devices and eventfds', () => {
  const s = hsmdSession('events')
  const ok = (...args: string[]) => {
    const r = s.run(...args)
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0)
    return r
  }

  it('every change exactly once, in order, numbered', async () => {
    // the stream runs past what the sequence makes: an extra or a repeated event would
    // push the marker VM's creation out of the last place
    const expected = [
      'vm created ev1',
      'ioreq-client created ev1',
      'vm started ev1',
      'vm paused ev1',
      'vm reset ev1',
      'vm started ev1',
      'vm paused ev1', // destroy pauses a running VM first (A.3)
      'ioreq-client destroyed ev1',
      'vm destroyed ev1',
      'vm created marker',
    ]
    const stream = await follow(s.env, '--json', '--count', String(expected.length))
    ok('vm', 'create', 'ev1', '--memory', '1M')
    ok('vm', 'start', 'ev1')
    ok('vm', 'pause', 'ev1')
    ok('vm', 'reset', 'ev1', '--yes')
    ok('vm', 'start', 'ev1')
    ok('vm', 'show', 'ev1') // a query changes nothing: no event
    ok('vm', 'destroy', 'ev1', '--yes')
    ok('vm', 'create', 'marker')
    expect(await stream.exited).toEqual({ code: 0, signal: null })
    const events = stream.lines().map((l) => JSON.parse(l) as Json)
    expect(events.map(brief)).toEqual(expected)
    // the stable schema: these keys, nothing else
    for (const e of events) {
      expect(Object.keys(e)).toEqual(['seq', 'time', 'type', 'action', 'vm', 'vmid', 'attributes'])
      expect(Number.isNaN(Date.parse(e.time))).toBe(false)
    }
    const seqs = events.map((e) => e.seq as number)
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i))
    expect(events[0].attributes).toEqual({ owner: 'hsmd', vcpus: events[0].attributes.vcpus })
    expect(events.filter((e) => e.vm === 'ev1').every((e) => e.vmid === events[0].vmid)).toBe(true)
    expect(events.at(-1).vmid).toBe(s.vm('marker').vmid)
    ok('vm', 'destroy', 'marker', '--yes')
  })

  it('devices and eventfds added and removed, with what identifies them', async () => {
    ok('vm', 'create', 'dev', '--memory', '1M')
    const stream = await follow(
      s.env,
      '--json',
      '--vm',
      'dev',
      '--type',
      'device',
      '--type',
      'eventfd',
      '--count',
      '10',
    )
    ok('vdev', 'create', 'dev', '--legacy-id', '1', '--io', '0x2f8:8')
    ok('ioeventfd', 'add', 'dev', '--pio', '--addr', '0x1000', '--len', '4')
    ok('irqfd', 'add', 'dev', '--msi-addr', '0xfee00000', '--msi-data', '0x30')
    ok(
      'mmiodev',
      'assign',
      'dev',
      '--dev-name',
      'MSFT0101',
      '--res',
      '0xfed40000:0xfed40000:0x5000',
    )
    ok(
      'mmiodev',
      'deassign',
      'dev',
      '--dev-name',
      'MSFT0101',
      '--res',
      '0xfed40000:0xfed40000:0x5000',
    )
    ok('ptdev', 'assign', 'dev', '--phys', '00:14.0', '--virt', '00:03.0')
    ok('ptdev', 'deassign', 'dev', '--phys', '00:14.0', '--yes')
    ok('irqfd', 'remove', 'dev', '--id', '2')
    ok('ioeventfd', 'remove', 'dev', '--id', '1')
    ok('vdev', 'destroy', 'dev', '--legacy-id', '1', '--io', '0x2f8:8')
    expect(await stream.exited).toEqual({ code: 0, signal: null })
    const events = stream.lines().map((l) => JSON.parse(l) as Json)
    expect(events.map((e) => [e.type, e.action, e.attributes])).toEqual([
      ['vdev', 'created', { vendor: '0x0', device: '0x0', legacyId: 1, slot: '0x0' }],
      ['ioeventfd', 'added', { id: 1, space: 'pio', addr: '0x1000', len: 4 }],
      ['irqfd', 'added', { id: 2, msiAddr: '0xfee00000', msiData: '0x30' }],
      ['mmiodev', 'assigned', { name: 'MSFT0101', gpa: '0xfed40000' }],
      ['mmiodev', 'deassigned', { name: 'MSFT0101', gpa: '0xfed40000' }],
      ['ptdev', 'assigned', { phys: '00:14.0', virt: '00:03.0' }],
      ['ptdev', 'deassigned', { phys: '00:14.0', virt: '00:03.0' }],
      ['irqfd', 'removed', { id: 2, msiAddr: '0xfee00000', msiData: '0x30' }],
      ['ioeventfd', 'removed', { id: 1, space: 'pio', addr: '0x1000', len: 4 }],
      ['vdev', 'destroyed', { vendor: '0x0', device: '0x0', legacyId: 1, slot: '0x0' }],
    ])
    expect(new Set(events.map((e) => e.vm))).toEqual(new Set(['dev']))
  })

  it('a refused change is no event', async () => {
    const stream = await follow(s.env, '--json', '--count', '1')
    expect(s.run('vm', 'start', 'nosuch').code).toBe(3)
    expect(s.run('vm', 'create', 'dev').code).toBe(4) // the name is taken
    ok('vm', 'create', 'after-refusals')
    expect(await stream.exited).toEqual({ code: 0, signal: null })
    expect(stream.lines().map((l) => brief(JSON.parse(l)))).toEqual(['vm created after-refusals'])
  })

  it('--since replays the kept events, from that time on, then follows', async () => {
    const all = hsmctl(['events', '--since', '1h', '--json', '--count', '3'], s.env)
    expect(all.code, all.stderr).toBe(0)
    const first = all.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Json)
    expect(first.map(brief)).toEqual([
      'daemon started -',
      'vm created ev1',
      'ioreq-client created ev1',
    ])
    expect(first[0].attributes).toMatchObject({ backend: 'sim', pid: expect.any(Number) })
    // a timestamp: only what came at or after it
    const at = new Date().toISOString()
    ok('vm', 'destroy', 'after-refusals', '--yes')
    const later = hsmctl(['events', '--since', at, '--type', 'vm', '--count', '1'], s.env)
    expect(later.code, later.stderr).toBe(0)
    expect(later.stdout).toMatch(
      /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} vm +destroyed +after-refusals +vmid=\d+ owner=hsmd$/m,
    )
  })

  it('bad flags: a clear error, status 2, and the daemon is not asked', () => {
    const fresh = mkdtempSync(join(tmpdir(), 'hsmctl-events-bad-'))
    const env = {
      HSMCTL_RUNTIME_DIR: join(fresh, 'run'),
      HSMCTL_STATE_DIR: join(fresh, 'state'),
      HSMCTL_BACKEND: 'sim',
    }
    const cases: [string[], RegExp, RegExp][] = [
      [
        ['--type', 'vms'],
        /--type: 'vms' is not an event type/,
        /one of daemon, vm, .*device, eventfd/,
      ],
      [['--since', 'yesterday'], /--since: 'yesterday' is not a duration or a time/, /10m/],
      [['--since', '25:00'], /--since: '25:00' is not a time of day/, /14:05/],
      [['--since', '2099-01-01'], /--since: '2099-01-01' is in the future/, /duration back/],
      [['--count', '0'], /count/i, /./],
    ]
    for (const [args, message, hint] of cases) {
      const r = hsmctl(['events', ...args], env)
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2)
      expect(r.stderr).toMatch(message)
      expect(r.stderr).toMatch(hint)
      expect(r.stdout).toBe('')
    }
    expect(existsSync(join(fresh, 'run', 'hsmd-sim.sock'))).toBe(false)
  })

  it('ends quietly with status 141 at its next event once its reader has gone (as SIGPIPE would)', async () => {
    const stream = await follow(s.env, '--type', 'vm')
    ok('vm', 'create', 'pipe1')
    await stream.until(1)
    stream.child.stdout.destroy() // as `head -n 1` does after its line
    ok('vm', 'destroy', 'pipe1', '--yes')
    expect(await stream.exited).toEqual({ code: 141, signal: null })
    expect(stream.stderr()).not.toMatch(/EPIPE|Error|at .*\.js:\d+/)
  })
})

describe('the daemon stopping ends the stream; the next daemon replays the stop', () => {
  const s = hsmdSession('events-stop')

  it('followers see stopping, its VMs destroyed, stopped, and exit 0', async () => {
    expect(s.run('vm', 'create', 'st1', '--memory', '1M').code).toBe(0)
    expect(s.run('vm', 'start', 'st1').code).toBe(0)
    const stream = await follow(s.env)
    // one that does not follow the daemon's events still learns it stopped
    const vmsOnly = await follow(s.env, '--type', 'vm', '--json')
    const stopped = s.run('daemon', 'stop')
    expect(stopped.code, stopped.stderr).toBe(0)
    expect(await stream.exited).toEqual({ code: 0, signal: null })
    expect(await vmsOnly.exited).toEqual({ code: 0, signal: null })
    const kinds = stream.lines().map((l) => l.split(/ +/).slice(2, 5).join(' '))
    expect(kinds).toEqual([
      'daemon stopping -',
      'vm paused st1',
      'ioreq-client destroyed st1',
      'vm destroyed st1',
      'daemon stopped -',
    ])
    expect(vmsOnly.lines().map((l) => brief(JSON.parse(l)))).toEqual([
      'vm paused st1',
      'vm destroyed st1',
    ])
    expect(stream.stderr() + vmsOnly.stderr()).not.toMatch(/Error/)
  })

  it('--since after a restart: the previous stop, then this start, numbered on', () => {
    const r = hsmctl(
      ['events', '--since', '1h', '--type', 'daemon', '--json', '--count', '2'],
      s.env,
    )
    expect(r.code, r.stderr).toBe(0)
    const [stop, start] = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Json)
    expect([brief(stop), brief(start)]).toEqual(['daemon stopped -', 'daemon started -'])
    expect(start.seq).toBe(stop.seq + 1)
    expect(start.attributes.pid).not.toBe(stop.attributes.pid)
  })

  afterAll(() => s.run('daemon', 'stop'))
})

if (!haveTmux) {
  if (process.env.HSMCTL_CI === '1')
    throw new Error('tmux is missing (Debian: apt-get install tmux)')
  console.warn('\n*** SKIPPED the events-in-the-shell test: tmux is not installed ***\n')
}

describe.skipIf(!haveTmux)('events in the interactive shell', () => {
  const s = hsmdSession('events-shell')
  let anchor: TmuxSession | undefined
  let shell: TmuxSession | undefined
  beforeAll(() => void (anchor = new TmuxSession('sleep 3600', {})))
  afterAll(() => {
    shell?.kill()
    anchor?.kill()
  })

  it(
    'runs in the foreground, prints changes, and Ctrl-C gives the prompt back',
    { timeout: 4 * WAIT },
    async () => {
      const env = Object.fromEntries(
        Object.entries(s.env).filter(([, v]) => v !== undefined),
      ) as Record<string, string>
      shell = new TmuxSession(`trap : INT; ${process.execPath} ${RUN_JS} shell`, env)
      const PROMPT = /hsmctl\(sim, \d+ VMs?\)>$/m
      await shell.waitFor(PROMPT, WAIT)
      shell.type('events --type vm')
      shell.keys('Enter')
      await shell.waitFor(/following events; Ctrl-C stops/, WAIT)
      expect(s.run('vm', 'create', 'sh1').code).toBe(0)
      await shell.waitFor(/vm +created +sh1 +vmid=\d+ owner=hsmd/, WAIT)
      shell.keys('C-c')
      await shell.waitFor(/hsmctl\(sim, 1 VM\)>$/m, WAIT)
      shell.type('vm list')
      shell.keys('Enter')
      const screen = await shell.waitFor(/sh1 .*created/, WAIT)
      expect(screen).not.toMatch(/Error|EPIPE/)
    },
  )
})
