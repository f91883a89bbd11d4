// scripts/bench/_lib.js, the benchmarks' machinery: rounds interleave the measures, each
// figure's ratio is taken round by round and judged by its median, and the runner refuses
// names it does not know. (The benchmarks themselves are timing, not tests: npm run bench.)
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { beforeAll, describe, expect, it, vi } from 'vitest'
import { ROOT } from '../core/native/support.js'

interface Series extends Array<number> {
  load: number[]
}
interface Figure {
  met: boolean
  ratio: { median: number; min: number; max: number; rounds: number[] }
  value: { median: number }
  floor: { median: number; label: string }
  load: { min: number; max: number }
}
interface Lib {
  rounds(
    measures: Record<string, () => number | Promise<number>>,
    options?: { count?: number; warmup?: number },
  ): Promise<Record<string, Series>>
  derive(fn: (...v: number[]) => number, ...series: Series[]): Series
  median(values: number[]): number
  human(n: number): string
  runCommand(cmd: string, args: string[]): { wallMs: number; cpuMs: number }
  Report: new (options?: { json?: boolean }) => {
    section(name: string, title: string): void
    figure(spec: object): Figure
    unmeasurable(spec: object): Figure
    check(label: string, ok: boolean, detail?: string): void
    note(text: string): void
    summary(): void
    readonly failed: number
  }
}

let lib: Lib
beforeAll(async () => {
  const url = pathToFileURL(join(ROOT, 'scripts', 'bench', '_lib.js')).href
  lib = (await import(url)) as Lib
})

describe('bench rounds', () => {
  it('calls each measure once per round, in turn, and drops the warm-up rounds', async () => {
    const calls: string[] = []
    let a = 0
    let b = 10
    const s = await lib.rounds(
      { a: () => (calls.push('a'), ++a), b: () => (calls.push('b'), ++b) },
      { count: 3, warmup: 1 },
    )
    expect(calls).toEqual(['a', 'b', 'a', 'b', 'a', 'b', 'a', 'b'])
    expect([...s.a!]).toEqual([2, 3, 4])
    expect([...s.b!]).toEqual([12, 13, 14])
    expect(s.a!.load).toHaveLength(3)
    expect(s.a!.load).toBe(s.b!.load)
  })

  it('refuses a measure that gives no positive number', async () => {
    await expect(lib.rounds({ bad: () => 0 }, { count: 1, warmup: 0 })).rejects.toThrow(
      /measure 'bad' gave 0/,
    )
  })

  it('derives a series round by round, keeping the rounds’ load', async () => {
    const s = await lib.rounds({ d: () => 100, p: () => 400 }, { count: 2, warmup: 0 })
    const both = lib.derive((d, p) => 1 / (1 / d! + 1 / p!), s.d!, s.p!)
    expect([...both]).toEqual([80, 80])
    expect(both.load).toBe(s.d!.load)
  })
})

describe('bench report', () => {
  const series = (values: number[]) => Object.assign([...values], { load: values.map(() => 2) })

  it('takes the ratio round by round and judges its median against the target', () => {
    const print = vi.spyOn(console, 'log').mockImplementation(() => {})
    try {
      const report = new lib.Report()
      report.section('demo', 'a demonstration')
      // the median ratio (0.5) is not the ratio of the medians (200 / 300)
      const value = series([100, 200, 300])
      const floor = series([400, 400, 300])
      const rate = report.figure({
        label: 'a rate',
        unit: 'calls/s',
        value,
        floor,
        floorLabel: 'a bare loop',
        target: { atLeast: 0.5 },
      })
      expect(rate.ratio.rounds).toEqual([0.25, 0.5, 1])
      expect(rate.ratio).toMatchObject({ median: 0.5, min: 0.25, max: 1 })
      expect(rate.met).toBe(true)
      expect(rate.load).toEqual({ median: 2, min: 2, max: 2 })
      const time = report.figure({
        label: 'a time',
        unit: 'ms',
        value: series([30, 31, 29]),
        floor: series([10, 10, 10]),
        floorLabel: 'node -e 0',
        target: { atMost: 2.5 },
      })
      expect(time.ratio.median).toBeCloseTo(3)
      expect(time.met).toBe(false)
      report.check('counts exact', true)
      expect(report.failed).toBe(1)
      report.check('file identical', false, 'differs at byte 7')
      expect(report.failed).toBe(2)
      report.summary()
      const out = print.mock.calls.map((c) => String(c[0])).join('\n')
      expect(out).toMatch(
        /a rate\s+calls\/s\s+200 \(100–300\)\s+400 \(300–400\)\s+0\.500 \(0\.250–1\.00\)\s+>= 0\.5\s+met\s+3\s+2\.0–2\.0/,
      )
      expect(out).toMatch(
        /a time\s+ms\s+30\.0 \(29\.0–31\.0\)\s+10\.0 \(10\.0–10\.0\)\s+3\.00 \(2\.90–3\.10\)\s+<= 2\.5\s+MISSED/,
      )
      expect(out).toContain('    floor: a bare loop')
      expect(out).toContain('check: file identical: FAILED (differs at byte 7)')
      expect(out).toContain(
        '1 of 2 targets met (MISSED: demo: a time), 1 of 2 checks ok (FAILED: demo: file identical)',
      )
    } finally {
      print.mockRestore()
    }
  })

  it('lists a figure this machine cannot measure with its reason, with no number and no verdict', () => {
    const print = vi.spyOn(console, 'log').mockImplementation(() => {})
    try {
      const report = new lib.Report()
      report.section('demo', 'a demonstration')
      report.figure({
        label: 'a time',
        unit: 'ms',
        value: series([30, 31, 29]),
        floor: series([10, 10, 10]),
        floorLabel: 'node -e 0',
        target: { atMost: 2.5 },
      })
      report.unmeasurable({
        label: 'a boot',
        unit: 'ms',
        floorLabel: 'the peer',
        target: { atMost: 3 },
        why: 'the peer cannot run here',
      })
      expect(report.failed).toBe(1)
      report.summary()
      const out = print.mock.calls.map((c) => String(c[0])).join('\n')
      expect(out).toMatch(/a boot\s+ms\s+not measurable\s+<= 3\s+n\/a/)
      expect(out).toContain('    not measurable on this machine: the peer cannot run here')
      expect(out).toContain('0 of 1 targets met (1 not measurable here) (MISSED: demo: a time)')
    } finally {
      print.mockRestore()
    }
  })

  it('refuses a value and a floor of different rounds', () => {
    const report = new lib.Report()
    expect(() =>
      report.figure({
        label: 'x',
        unit: 'ms',
        value: series([1, 2]),
        floor: series([1]),
        floorLabel: 'y',
        target: { atMost: 1 },
      }),
    ).toThrow(/value and floor rounds differ/)
  })

  it('writes three significant digits with k and M', () => {
    expect([0.15, 29.04, 999, 98_240, 1_250_000].map((n) => lib.human(n))).toEqual([
      '0.150',
      '29.0',
      '999',
      '98.2k',
      '1.25M',
    ])
  })

  it('runCommand gives the CPU time of the command it ran, and fails with it', () => {
    // a busy loop of at least 50 ms of CPU
    const busy =
      'const end = process.cpuUsage().user + 50000; while (process.cpuUsage().user < end);'
    const t = lib.runCommand(process.execPath, ['-e', busy])
    expect(t.cpuMs).toBeGreaterThanOrEqual(50)
    expect(t.wallMs).toBeGreaterThan(0)
    expect(() => lib.runCommand(process.execPath, ['-e', 'process.exit(3)'])).toThrow(/exited 3/)
  })
})

// The hang guard (runGuarded, as bench.js runs every benchmark): in a process of its own,
// since it kills the process's children. Three benchmarks hang three ways (awaiting a child,
// blocked in spawnSync, awaiting nothing that will come); the fourth must still run.
const HANGS = `
const { Report, runGuarded, step } = await import(process.argv[1])
const { spawn, spawnSync } = await import('node:child_process')
const report = new Report()
const pids = []
await runGuarded(report, 'awaits', '', async () => {
  step('a child')
  const c = spawn('sleep', ['60'])
  pids.push(c.pid)
  await new Promise((_, reject) => c.on('exit', (code, sig) => reject(new Error(String(sig)))))
})
await runGuarded(report, 'blocks', '', () => {
  step('spawnSync')
  spawnSync('sleep', ['60'])
})
await runGuarded(report, 'waits', '', () => {
  step('a promise')
  return new Promise(() => {})
})
await runGuarded(report, 'fine', '', async (r) => r.check('the next benchmark ran', true))
report.summary()
console.log(JSON.stringify({ pids, failed: report.failed }))
// and no process.exit(): the guard must not keep a finished run alive
`

describe('the hang guard (BENCH_STEP_TIMEOUT_S)', () => {
  it('names the step that hangs, kills its child processes, marks its benchmark not measured and goes on', () => {
    const r = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', HANGS, join(ROOT, 'scripts', 'bench', '_lib.js')],
      { encoding: 'utf8', timeout: 60_000, env: { ...process.env, BENCH_STEP_TIMEOUT_S: '1' } },
    )
    expect(r.status).toBe(0)
    for (const step of ['awaits: a child', 'blocks: spawnSync', 'waits: a promise']) {
      expect(r.stderr).toContain(
        `bench: ${step}: still running after 1 s (BENCH_STEP_TIMEOUT_S); killing its child processes`,
      )
      expect(r.stdout).toContain(
        `    not measured: ${step}: still running after 1 s (BENCH_STEP_TIMEOUT_S): stopped, its child processes killed`,
      )
    }
    expect(r.stdout).toContain('check: the next benchmark ran: ok')
    expect(r.stdout).toContain(
      '1 of 4 checks ok (FAILED: awaits: awaits ran to its end; blocks: blocks ran to its end; waits: waits ran to its end)',
    )
    const { pids, failed } = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      pids: number[]
      failed: number
    }
    expect(failed).toBe(3)
    // the sleep the first benchmark awaited was killed (it would outlive its parent)
    expect(() => process.kill(pids[0]!, 0)).toThrow(/ESRCH/)
  })
})

describe('npm run bench', () => {
  it('refuses a benchmark it does not have, naming those it has (exit 2)', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'bench.js'), 'nosuch', '--fast'], {
      encoding: 'utf8',
    })
    expect(r.status).toBe(2)
    // every scripts/bench/NAME.js (not the _-prefixed helpers) is a benchmark it names
    const names = readdirSync(join(ROOT, 'scripts', 'bench'))
      .filter((f) => f.endsWith('.js') && !f.startsWith('_'))
      .map((f) => f.slice(0, -3))
      .sort()
    expect(names).toContain('kvm')
    expect(r.stderr).toContain(
      `bench: no benchmark or option nosuch, --fast; benchmarks: ${names.join(', ')}`,
    )
    expect(r.stdout).toBe('')
  })
})
