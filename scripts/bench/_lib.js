// The benchmarks' shared machinery. Every figure is a value and a floor: the floor does
// the unavoidable part of the value's work (the same frames over the same transport, the
// same bytes into the same file) with none of our code around it, and it is measured in
// the same rounds, interleaved with the value, so whatever the machine does to one (other
// builds, a busy CPU) it does to the other. Targets are ratios to the floor: an absolute
// figure on these shared machines says more about the machine than about the code.
//
// A benchmark is scripts/bench/NAME.js exporting `title` and `run(report)`:
//
//   const s = await rounds({
//     floor: () => perSecond(n, bareLoop),   // each measure returns one number
//     value: () => perSecond(n, ourPath),
//   })
//   report.figure({ label: 'our path', unit: 'calls/s', value: s.value,
//                   floor: s.floor, floorLabel: 'the bare loop', target: { atLeast: 0.5 } })
//
// Each figure gets the median and min-max of the value, of the floor and of the ratio
// (value / floor, round by round), the target, met or MISSED (by the ratio's median), and
// the load average over its rounds. Rates want a ratio at least the target; times at most.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { availableParallelism, loadavg } from 'node:os'
import { performance } from 'node:perf_hooks'
import { URL } from 'node:url'
import { Worker } from 'node:worker_threads'

/** Rounds per figure (BENCH_ROUNDS): each gives one value and one floor. */
export const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 5))

/**
 * Call every measure of `measures` ({name: async () => number}) once per round, in turn,
 * for `warmup` untimed rounds and then `count` rounds. Returns {name: number[]}, each
 * array also carrying `load`: the 1-minute load average at the end of each round.
 */
export async function rounds(measures, { count = ROUNDS, warmup = 1 } = {}) {
  const out = Object.fromEntries(Object.keys(measures).map((name) => [name, []]))
  const load = []
  for (let r = 0; r < warmup + count; r++) {
    for (const [name, measure] of Object.entries(measures)) {
      step(
        `measure '${name}', round ${r + 1} of ${warmup + count}${r < warmup ? ' (warm-up)' : ''}`,
      )
      const v = await measure()
      if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) {
        throw new Error(`bench: measure '${name}' gave ${v}, not a positive number`)
      }
      if (r >= warmup) out[name].push(v)
    }
    if (r >= warmup) load.push(loadavg()[0])
  }
  step('after its rounds')
  for (const series of Object.values(out)) Object.defineProperty(series, 'load', { value: load })
  return out
}

/** A series computed round by round from others (same rounds, same load). */
export function derive(fn, ...series) {
  const out = series[0].map((_, i) => fn(...series.map((s) => s[i])))
  Object.defineProperty(out, 'load', { value: series[0].load })
  return out
}

/** n operations of fn(n) per second of wall-clock time. */
export async function perSecond(n, fn) {
  const start = performance.now()
  await fn(n)
  return n / ((performance.now() - start) / 1000)
}

/**
 * n operations of fn(n) per second of this process's CPU time (user + system): for work
 * done in this process alone, which then does not count the time other programs had
 * the CPU (a loaded machine skews wall-clock rates by the share it leaves us).
 */
export async function perCpuSecond(n, fn) {
  const start = process.cpuUsage()
  await fn(n)
  const used = process.cpuUsage(start)
  return n / ((used.user + used.system) / 1e6)
}

/** User + system CPU seconds another process has used so far (/proc/PID/stat). */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // the fields after the command name, which is in parentheses and may hold spaces
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}
// sysconf(_SC_CLK_TCK): 100 on every Linux architecture ACRN runs on
const CLOCK_TICKS = 100

/**
 * n operations of fn(n) per second of CPU time of this process and of the processes
 * `pids` together: for work split between a client here and a server elsewhere.
 */
export async function perCpuSecondWith(pids, n, fn) {
  const others = () => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
  const start = process.cpuUsage()
  const before = others()
  await fn(n)
  const used = process.cpuUsage(start)
  return n / ((used.user + used.system) / 1e6 + others() - before)
}

/**
 * One run of a command (stdout discarded; throws if it fails): its wall time in ms, and
 * the CPU time in ms (user + system) of it and of everything it waited for, from bash's
 * `times`, plus what the processes `pids` (a daemon it asked) used meanwhile.
 */
export function runCommand(cmd, args, options = {}, pids = []) {
  const others = () => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
  const before = others()
  const start = performance.now()
  const result = spawnSync('bash', ['-c', '"$0" "$@" >/dev/null || exit; times', cmd, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    ...options,
  })
  const wallMs = performance.now() - start
  const times = [...result.stdout.matchAll(/(\d+)m([\d.]+)s/g)].map(
    (m) => Number(m[1]) * 60 + Number(m[2]),
  )
  if (result.status !== 0 || times.length !== 4) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${result.status}: ${result.stderr}`)
  }
  // the second line of `times`: the user and system time of the shell's children
  return { wallMs, cpuMs: (times[2] + times[3] + others() - before) * 1000 }
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

export function spread(values) {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) }
}

/** Three significant digits, k and M for thousands and millions: 98.2k, 1.25M, 0.150. */
export function human(n) {
  if (n >= 1e6) return `${(n / 1e6).toPrecision(3)}M`
  if (n >= 1e3) return `${(n / 1e3).toPrecision(3)}k`
  return n.toPrecision(3)
}

export const fmt = (n, digits = 1) => n.toLocaleString('en-US', { maximumFractionDigits: digits })

const range = (s) => `${human(s.median)} (${human(s.min)}–${human(s.max)})`

/** Met when the ratio's median is on the right side of the target. */
export function verdict(ratio, target) {
  return 'atLeast' in target ? ratio >= target.atLeast : ratio <= target.atMost
}

// three significant digits: a target written 1 / 0.9 reads 1.11
const short = (n) => String(Number(n.toPrecision(3)))
const targetText = (t) => ('atLeast' in t ? `>= ${short(t.atLeast)}` : `<= ${short(t.atMost)}`)

const HEADINGS = [
  'figure',
  'unit',
  'value (median, min–max)',
  'floor (median, min–max)',
  'ratio (median, min–max)',
  'target',
  'verdict',
  'rounds',
  'load',
]

const cells = (f) =>
  f.unmeasurable !== undefined
    ? [
        f.label,
        f.unit,
        'not measurable',
        '',
        '',
        f.target ? targetText(f.target) : '',
        'n/a',
        '0',
        '',
      ]
    : [
        f.label,
        f.unit,
        range(f.value),
        range(f.floor),
        range(f.ratio),
        targetText(f.target),
        f.met ? 'met' : 'MISSED',
        String(f.value.rounds.length),
        `${f.load.min.toFixed(1)}–${f.load.max.toFixed(1)}`,
      ]

/** Figures as a table, each with its floor's description under it; notes where they came. */
function table(entries) {
  const rows = entries.filter((e) => e.kind === 'figure').map((e) => cells(e.figure))
  const widths = HEADINGS.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (c) =>
    c
      .map((x, i) => (i < c.length - 1 ? x.padEnd(widths[i]) : x))
      .join('  ')
      .trimEnd()
  const out = [line(HEADINGS)]
  for (const e of entries) {
    if (e.kind === 'figure') {
      out.push(line(cells(e.figure)))
      if (e.figure.floor.label) out.push(`    floor: ${e.figure.floor.label}`)
      if (e.figure.unmeasurable !== undefined)
        out.push(
          `    ${e.figure.stopped ? 'not measured' : 'not measurable on this machine'}: ${e.figure.unmeasurable}`,
        )
    } else out.push(e.text)
  }
  return out
}

/**
 * The figures and checks of a run: each benchmark's table when it ends, then every
 * figure in one table, the verdicts counted.
 */
export class Report {
  figures = []
  checks = []
  bench = ''
  entries = []

  /** json: the summary goes to stdout as JSON, everything else to stderr. */
  constructor({ json = false } = {}) {
    this.json = json
    this.print = json ? (line) => process.stderr.write(`${line}\n`) : (line) => console.log(line)
  }

  section(name, title) {
    this.flush()
    this.bench = name
    this.print(`\n== ${name}: ${title}`)
  }

  flush() {
    if (this.entries.length) for (const line of table(this.entries)) this.print(line)
    this.entries = []
  }

  /** A line of explanation under the figures. */
  note(text) {
    this.entries.push({ kind: 'note', text: `   ${text}` })
  }

  /**
   * label: what the value measures; unit: what it counts ('ioctls/s', 'ms'); value and
   * floor: series from rounds() of the same rounds; floorLabel: what the floor does;
   * target: {atLeast: ratio} (rates) or {atMost: ratio} (times).
   */
  figure({ label, unit, value, floor, floorLabel, target }) {
    if (value.length !== floor.length)
      throw new Error(`bench: ${label}: value and floor rounds differ`)
    const ratios = value.map((v, i) => v / floor[i])
    const f = {
      bench: this.bench,
      label,
      unit,
      value: { ...spread(value), rounds: value },
      floor: { label: floorLabel, ...spread(floor), rounds: floor },
      ratio: { ...spread(ratios), rounds: ratios },
      target,
      met: verdict(median(ratios), target),
      load: spread(value.load ?? floor.load ?? [loadavg()[0]]),
    }
    this.figures.push(f)
    this.entries.push({ kind: 'figure', figure: f })
    return f
  }

  /**
   * A figure this machine cannot measure (its floor cannot run here: a peer that does not
   * work on this host), listed with the reason instead of a number, with no verdict.
   */
  unmeasurable({ label, unit, floorLabel, target, why }) {
    const f = { bench: this.bench, label, unit, floor: { label: floorLabel }, target }
    f.unmeasurable = why
    f.met = true
    this.figures.push(f)
    this.entries.push({ kind: 'figure', figure: f })
    return f
  }

  /** A correctness check beside the figures (exact counts, identical files). */
  check(label, ok, detail = '') {
    this.checks.push({ bench: this.bench, label, ok, detail })
    this.note(`check: ${label}: ${ok ? 'ok' : 'FAILED'}${detail ? ` (${detail})` : ''}`)
  }

  get failed() {
    return this.figures.filter((f) => !f.met).length + this.checks.filter((c) => !c.ok).length
  }

  /** Every figure again in one table, with the machine, and the verdicts counted. */
  summary() {
    this.flush()
    const cpus = availableParallelism()
    this.print(`\n== figures (${cpus} CPUs; load: the 1-minute load average over the rounds)`)
    const entries = []
    let bench
    for (const f of this.figures) {
      if (f.bench !== bench) entries.push({ kind: 'note', text: `${(bench = f.bench)}:` })
      entries.push({ kind: 'figure', figure: f })
    }
    for (const line of table(entries)) this.print(line)
    const missed = this.figures.filter((f) => !f.met)
    const failed = this.checks.filter((c) => !c.ok)
    const measured = this.figures.filter((f) => f.unmeasurable === undefined).length
    this.print(
      `${measured - missed.length} of ${measured} targets met` +
        `${measured < this.figures.length ? ` (${this.figures.length - measured} not measurable here)` : ''}` +
        `${missed.length ? ` (MISSED: ${missed.map((f) => `${f.bench}: ${f.label}`).join('; ')})` : ''}` +
        `, ${this.checks.length - failed.length} of ${this.checks.length} checks ok` +
        `${failed.length ? ` (FAILED: ${failed.map((c) => `${c.bench}: ${c.label}`).join('; ')})` : ''}`,
    )
    if (this.json) {
      const out = { cpus, figures: this.figures, checks: this.checks }
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`)
    }
  }
}

/** The hang guard's limit: the longest one step of a benchmark may run (BENCH_STEP_TIMEOUT_S). */
export const STEP_TIMEOUT_S = Math.max(1, Number(process.env.BENCH_STEP_TIMEOUT_S ?? 600) || 600)

/** A step of a benchmark outlasted the hang guard's limit. */
export class StepHung extends Error {
  constructor(step, seconds) {
    super(
      `${step}: still running after ${seconds} s (BENCH_STEP_TIMEOUT_S): stopped, its child processes killed`,
    )
    this.step = step
  }
}

let guard // the hang guard of this run (runGuarded), if any

/** What the running benchmark does now (a measure, its set-up): the hang guard's clock restarts. */
export function step(text) {
  guard?.step(text)
}

// The guard's clock runs in a worker thread: the main thread may be blocked (spawnSync) in
// the very step that hangs. When a step outlasts the limit it names it on stderr (a direct
// write: the main thread may not print), kills this process's descendants (which ends a
// spawnSync, and a measure awaiting a child) and tells the main thread, which gives up on a
// benchmark awaiting something else.
const WATCHDOG = `
const { parentPort, workerData } = require('node:worker_threads')
const { readdirSync, readFileSync, writeSync } = require('node:fs')
const { pid, seconds, flag } = workerData
let step, since
parentPort.on('message', (m) => { step = m ?? undefined; since = Date.now() })
function descendants(of) {
  const parent = new Map()
  for (const d of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(d)) continue
    try {
      const [state, ppid] = readFileSync('/proc/' + d + '/stat', 'utf8').split(') ').pop().split(' ')
      if (state !== 'Z') parent.set(Number(d), Number(ppid))
    } catch {}
  }
  const out = []
  for (let i = -1, p = of; i < out.length; p = out[++i])
    for (const [child, pp] of parent) if (pp === p) out.push(child)
  return out
}
setInterval(() => {
  if (step === undefined || Date.now() - since < seconds * 1000) return
  const kids = descendants(pid)
  writeSync(2, 'bench: ' + step + ': still running after ' + seconds + ' s (BENCH_STEP_TIMEOUT_S); killing its child processes (' + (kids.join(' ') || 'none') + ') and going on\\n')
  Atomics.store(flag, 0, 1)
  for (const k of kids) try { process.kill(k, 'SIGKILL') } catch {}
  parentPort.postMessage(step)
  step = undefined
}, 1000)
`

function startGuard(seconds) {
  const flag = new Int32Array(new SharedArrayBuffer(4))
  const worker = new Worker(WATCHDOG, {
    eval: true,
    execArgv: [], // CommonJS, whatever this process was started with
    workerData: { pid: process.pid, seconds, flag },
  })
  let bench = ''
  let current = ''
  let giveUp = () => {}
  // the step it found hung: late (the benchmark saw the flag and ended), or this one
  worker.on('message', (hungStep) => hungStep === current && giveUp())
  worker.unref() // while no benchmark runs (after on('message'), which refs it)
  return {
    step(text) {
      current = text === null ? '' : `${bench}: ${text}`
      worker.postMessage(text === null ? null : current)
    },
    /** fn() (a benchmark) under the guard; StepHung when one of its steps hung. */
    async run(name, fn) {
      bench = name
      Atomics.store(flag, 0, 0)
      worker.ref() // a benchmark awaiting what never comes is not a finished run
      let hungAt = ''
      const hung = new Promise((_, reject) => (giveUp = () => reject(new Error('hung'))))
      hung.catch(() => {})
      this.step('setting up')
      const running = Promise.resolve().then(fn)
      running.catch(() => {}) // given up on: whatever it does later is not waited for
      try {
        await Promise.race([running, hung])
      } catch (e) {
        if (!Atomics.load(flag, 0)) throw e
      } finally {
        hungAt = current
        this.step(null)
        worker.unref()
      }
      // a measure that ended or failed because the guard killed its child: it hung
      if (Atomics.load(flag, 0)) throw new StepHung(hungAt, seconds)
    },
  }
}

/**
 * Run one benchmark (its section, then run(report)) under the hang guard. A benchmark that
 * hangs (a step past STEP_TIMEOUT_S) or fails is not measured further: a "not measurable"
 * row says why and a failed check counts it; the run goes on with the next. Returns
 * whether it ran to its end.
 */
export async function runGuarded(report, name, title, run, { seconds = STEP_TIMEOUT_S } = {}) {
  guard ??= startGuard(seconds)
  report.section(name, title)
  try {
    await guard.run(name, () => run(report))
    return true
  } catch (e) {
    if (!(e instanceof StepHung)) console.error(e)
    const why = e instanceof StepHung ? e.message : `it failed: ${e?.message ?? e}`
    const f = report.unmeasurable({
      label: 'its figures from here on',
      unit: '',
      floorLabel: '',
      why,
    })
    f.stopped = true
    report.check(
      `${name} ran to its end`,
      false,
      e instanceof StepHung ? `hung at ${e.step}` : String(e?.message ?? e),
    )
    return false
  }
}

const root = new URL('../../', import.meta.url)

/**
 * The start-up floors, as [cmd, args, options] for runCommand: node doing nothing, and
 * node importing @oclif/core and nothing else (the framework every oclif command pays).
 */
export const START_UP = {
  node: [process.execPath, ['-e', '0']],
  oclif: [
    process.execPath,
    ['--input-type=module', '-e', "await import('@oclif/core')"],
    { cwd: root },
  ],
}

/** Start-up times take more, shorter rounds (BENCH_RUNS, default 15). */
export const START_UP_ROUNDS = Math.max(1, Number(process.env.BENCH_RUNS ?? 15))

/**
 * Start-up measures for rounds(): each command's CPU time in ms (runCommand), which a
 * loaded machine does not stretch as it stretches the wall time; the wall times are
 * kept in `walls` (name: ms[]) for a note. `commands` is {name: [cmd, args, options, pids]}.
 */
export function startUpMeasures(commands, walls) {
  return Object.fromEntries(
    Object.entries(commands).map(([name, command]) => {
      walls[name] = []
      return [
        name,
        () => {
          const { wallMs, cpuMs } = runCommand(...command)
          walls[name].push(wallMs)
          return cpuMs
        },
      ]
    }),
  )
}

/** The note under start-up figures: the wall-clock medians of the same runs. */
export function wallNote(walls, labels) {
  return `wall-clock medians of the same runs: ${Object.entries(labels)
    .map(([name, label]) => `${label} ${human(median(walls[name]))} ms`)
    .join(', ')}`
}
