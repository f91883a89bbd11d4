// `hsmctl daemon run|start --metrics` (issue 14 item 4): what hsmd serves at /metrics is
// valid for Prometheus' own tools (promtool; a real Prometheus scrapes it), and its
// numbers are those `vm list` and the trace (`ioreq watch --once`) show after a known
// workload. Debian's `prometheus` package (setup.sh) ships both binaries; without it the
// checks that need them skip, saying why, except under HSMCTL_CI=1, where they fail.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect } from '../../src/core/daemon/client.js'
import { socketPath } from '../../src/core/daemon/paths.js'
import { hsmctl } from '../support/cli.js'
import { hsmdSession, type Json } from '../support/hsmd-session.js'

const s = hsmdSession('metrics', { env: { HSMCTL_METRICS: '0' } })

const OPENMETRICS = 'application/openmetrics-text; version=1.0.0; charset=utf-8'
const WORKLOAD = 400

/** Why Prometheus' binaries cannot be used here, or undefined when they can. */
function missing(binary: string): string | undefined {
  const r = spawnSync(binary, ['--version'], { encoding: 'utf8' })
  if (r.error || r.status !== 0)
    return `${binary} is not installed (Debian's prometheus package; setup.sh installs it)`
  return undefined
}
const noPromtool = missing('promtool')
const noPrometheus = missing('prometheus')
if (process.env.HSMCTL_CI === '1' && (noPromtool ?? noPrometheus))
  throw new Error(`HSMCTL_CI=1: ${noPromtool ?? noPrometheus}`)

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** The samples of the text format (both formats write samples the same way). */
function samples(text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    expect(m, `sample line: ${line}`).not.toBeNull()
    const labels: Record<string, string> = {}
    for (const l of m![2]?.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g) ?? [])
      labels[l[1]!] = l[2]!
    out.push({ name: m![1]!, labels, value: Number(m![3]) })
  }
  return out
}

const pick = (all: Sample[], name: string) => all.filter((x) => x.name === name)

let url: string
let text: string

beforeAll(async () => {
  s.json('vm', 'create', 'busy', '--vcpus', '2', '--memory', '16M')
  s.json('vm', 'start', 'busy')
  s.json('vm', 'create', 'quiet', '--vcpus', '1', '--memory', '16M')
  s.json('vm', 'start', 'quiet')
  s.json('vm', 'create', 'idle', '--vcpus', '1', '--memory', '16M')
  const r = s.run(
    ...['guest', 'run', 'busy', '--workload', 'mixed', '--vcpus', '0,1'],
    ...['--count', String(WORKLOAD), '--rate', '0', '--wait'],
  )
  expect(r.code, r.stderr).toBe(0)
  for (let i = 0; i < 3; i++) {
    const w = s.run('guest', 'access', 'quiet', '--pio', '0x3f8', '--write', '0x41', '--size', '1')
    expect(w.code, w.stderr).toBe(0)
  }
  url = s.json('daemon', 'status').metrics
  text = await (await fetch(url)).text()
})

describe('daemon --metrics', () => {
  it('daemon status shows where metrics are served', () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    expect(s.run('daemon', 'status').stdout).toMatch(
      /^ {2}metrics {6}http:\/\/127\.0\.0\.1:\d+\/metrics$/m,
    )
    // a second start finds it serving, and says where
    expect(s.run('daemon', 'start').stderr).toContain(`hsmd serves metrics on ${url}`)
  })

  it.skipIf(noPromtool)('promtool check metrics passes on the scraped text', () => {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
    expect(r.stdout + r.stderr).toBe('')
    expect(r.status).toBe(0)
  })

  it('VMs by state and owner are the counts `vm list --json` shows', () => {
    const list: Json[] = s.json('vm', 'list')
    const want: Record<string, number> = {}
    for (const v of list) {
      const owner = v.owner === 'outside process' ? 'outside' : v.owner.replace(/ \(pid \d+\)$/, '')
      want[`${v.state}/${owner}`] = (want[`${v.state}/${owner}`] ?? 0) + 1
    }
    const got: Record<string, number> = {}
    for (const x of pick(samples(text), 'hsmctl_vms'))
      got[`${x.labels.state}/${x.labels.owner}`] = x.value
    expect(got).toEqual(want)
    expect(got).toEqual({ 'running/hsmd': 2, 'created/hsmd': 1 })
  })

  it('ioreqs per VM, type, direction and client are the trace counts after the workload', () => {
    const all = samples(text)
    const counters = pick(all, 'hsmctl_ioreqs_total')
    const key = (x: { vm: string; type: string; dir: string; client: string }) =>
      `${x.vm} ${x.type} ${x.dir} ${x.client}`
    const got: Record<string, number> = {}
    for (const x of counters) got[key(x.labels as never)] = x.value
    // the trace's own view, summed over addresses
    const rows: Json[] = s.json('ioreq', 'watch', '--once').samples[0].rows
    const want: Record<string, number> = {}
    for (const r of rows) want[key(r)] = (want[key(r)] ?? 0) + r.count
    expect(got).toEqual(want)
    const perVm = (vm: string) =>
      counters.filter((x) => x.labels.vm === vm).reduce((n, x) => n + x.value, 0)
    expect(perVm('busy')).toBe(WORKLOAD)
    expect(perVm('quiet')).toBe(3)
    expect(got['quiet pio write default']).toBe(3)
    const vmids: Json[] = s.json('vm', 'list')
    for (const x of counters)
      expect(x.labels.vmid).toBe(String(vmids.find((v) => v.name === x.labels.vm).vmid))
    // every request of the daemon's life is in the trace
    expect(pick(all, 'hsmctl_trace_records_total')[0]!.value).toBe(WORKLOAD + 3)
    expect(pick(all, 'hsmctl_trace_dropped_records_total')[0]!.value).toBe(0)
  })

  it('latency histograms: cumulative, in seconds, counting every request', () => {
    const all = samples(text)
    const counters = pick(all, 'hsmctl_ioreqs_total')
    const series = (x: Sample) => JSON.stringify({ ...x.labels, le: undefined })
    for (const c of counters) {
      const same = (x: Sample) => series(x) === series(c)
      const buckets = pick(all, 'hsmctl_ioreq_latency_seconds_bucket').filter(same)
      expect(buckets.at(-1)!.labels.le).toBe('+Inf')
      expect(buckets.at(-1)!.value).toBe(c.value)
      for (let i = 1; i < buckets.length; i++) {
        expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value)
        if (i < buckets.length - 1)
          expect(Number(buckets[i]!.labels.le)).toBeGreaterThan(Number(buckets[i - 1]!.labels.le))
      }
      expect(pick(all, 'hsmctl_ioreq_latency_seconds_count').find(same)!.value).toBe(c.value)
      // seconds: a simulated request takes microseconds to milliseconds, not 1e3 s
      const sum = pick(all, 'hsmctl_ioreq_latency_seconds_sum').find(same)!.value
      expect(sum).toBeGreaterThan(0)
      expect(sum / c.value).toBeLessThan(1)
    }
  })

  it('uptime, start time and connections of the daemon', async () => {
    const all = samples(text)
    const status = s.json('daemon', 'status')
    const start = pick(all, 'hsmctl_daemon_start_time_seconds')[0]!.value
    expect(start).toBeCloseTo(Date.parse(status.startedAt) / 1000, 3)
    expect(pick(all, 'hsmctl_daemon_uptime_seconds')[0]!.value).toBeGreaterThan(0)
    expect(pick(all, 'hsmctl_daemon_info')[0]!.labels).toEqual({
      backend: 'sim',
      version: status.version,
    })
    // a client (a shell, a watch view) holds a connection: the gauge counts it while open
    const connections = async () =>
      pick(samples(await (await fetch(url)).text()), 'hsmctl_daemon_connections')[0]!.value
    const before = await connections()
    const client = await connect(socketPath('sim', s.env))
    try {
      expect(await connections()).toBe(before + 1)
    } finally {
      client.close()
    }
  })

  it('OpenMetrics to a scraper that asks for it; 404 elsewhere, 405 for other methods', async () => {
    const r = await fetch(url, {
      headers: { accept: 'application/openmetrics-text;version=1.0.0' },
    })
    expect(r.headers.get('content-type')).toBe(OPENMETRICS)
    const om = await r.text()
    expect(om.endsWith('# EOF\n')).toBe(true)
    expect(om).toMatch(/^# TYPE hsmctl_ioreqs counter$/m)
    expect(om).toMatch(/^hsmctl_ioreqs_total\{vm="busy",/m)
    expect(om).toMatch(/^# TYPE hsmctl_ioreq_latency_seconds histogram$/m)
    const plain = await fetch(url)
    expect(plain.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
    expect((await plain.text()).includes('# EOF')).toBe(false)
    const other = await fetch(url.replace(/\/metrics$/, '/'))
    expect(other.status).toBe(404)
    expect(await other.text()).toMatch(/serves its metrics at \/metrics/)
    expect((await fetch(`${url}x`)).status).toBe(404)
    const post = await fetch(url, { method: 'POST' })
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD'])
  })
})

/** A free TCP port on 127.0.0.1 (closed again; Prometheus binds it right after). */
async function freePort(): Promise<number> {
  const server: Server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe.skipIf(noPrometheus)('a real Prometheus scrapes it', () => {
  let prometheus: ChildProcess | undefined
  let log = ''
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'hsmctl-prometheus-'))
  })
  afterAll(async () => {
    if (prometheus && prometheus.exitCode === null) {
      const exited = new Promise((resolve) => prometheus!.once('exit', resolve))
      prometheus.kill('SIGTERM')
      await exited
    }
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('and its query API returns the workload count and `up`', async () => {
    const target = new URL(url).host
    const config = join(dir, 'prometheus.yml')
    writeFileSync(
      config,
      [
        'global:',
        '  scrape_interval: 1s',
        'scrape_configs:',
        '  - job_name: hsmd',
        '    static_configs:',
        `      - targets: ['${target}']`,
        '',
      ].join('\n'),
    )
    const web = await freePort()
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${web}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    prometheus.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d))
    const query = async (q: string): Promise<Json[]> => {
      try {
        const r = await fetch(`http://127.0.0.1:${web}/api/v1/query?query=${encodeURIComponent(q)}`)
        return r.ok ? ((await r.json()) as Json).data.result : []
      } catch {
        return [] // not listening yet
      }
    }
    // until the first scrape is stored (the loop is a hang guard, not a timing assumption)
    let result: Json[] = []
    for (let i = 0; i < 600 && result.length === 0; i++) {
      expect(prometheus.exitCode, log).toBeNull()
      result = await query('sum by (vm) (hsmctl_ioreqs_total{vm="busy"})')
      if (result.length === 0) await new Promise((r) => setTimeout(r, 100))
    }
    expect(result, log).toHaveLength(1)
    expect(result[0].value[1]).toBe(String(WORKLOAD))
    const up = await query('up{job="hsmd"}')
    expect(up.map((u) => u.value[1])).toEqual(['1'])
    const vms = await query('hsmctl_vms{owner="hsmd",state="running"}')
    expect(vms.map((v) => v.value[1])).toEqual(['2'])
  }, 90_000)
})

describe('bad --metrics values', () => {
  let dir: string
  const run = (...args: string[]) =>
    hsmctl(args, {
      HSMCTL_RUNTIME_DIR: join(dir, 'run'),
      HSMCTL_STATE_DIR: join(dir, 'state'),
      HSMCTL_BACKEND: 'sim',
      HSMCTL_METRICS: undefined,
    })
  let busy: Server | undefined
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hsmctl-metrics-bad-'))
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    busy = server
  })
  afterAll(async () => {
    const server = busy
    if (server) await new Promise((resolve) => server.close(resolve))
    if (!dir) return
    run('daemon', 'stop')
    rmSync(dir, { recursive: true, force: true })
  })
  const notRunning = () => expect(run('daemon', 'status').code).toBe(3)

  it('a malformed or non-loopback address exits 2, naming it, and starts nothing', () => {
    for (const cmd of ['run', 'start']) {
      const r = run('daemon', cmd, '--metrics', 'example.com:9410')
      expect(r.code, r.stderr).toBe(2)
      expect(r.stderr).toMatch(
        /--metrics: 'example\.com:9410': 'example\.com' is not an IP address/,
      )
      const open = run('daemon', cmd, '--metrics', '0.0.0.0:9410')
      expect(open.code, open.stderr).toBe(2)
      expect(open.stderr).toMatch(/not a loopback address/)
      expect(open.stderr).toMatch(/--metrics-public/)
      notRunning()
    }
    expect(run('daemon', 'run', '--metrics', '70000').stderr).toMatch(/'70000' is not a port/)
  })

  it('an address this machine does not have exits 2', () => {
    // 192.0.2.0/24 is TEST-NET-1: never assigned to a host
    const r = run('daemon', 'run', '--metrics', '192.0.2.1:9410', '--metrics-public')
    expect(r.code, r.stderr).toBe(2)
    expect(r.stderr).toMatch(/--metrics: 192\.0\.2\.1:9410 is not an address of this machine/)
    notRunning()
  })

  it('a port in use exits 4 from run and from start, and no daemon stays', () => {
    const port = (busy!.address() as { port: number }).port
    for (const cmd of ['run', 'start']) {
      const r = run('daemon', cmd, '--metrics', String(port))
      expect(r.code, r.stderr).toBe(4)
      expect(r.stderr).toContain(`--metrics: 127.0.0.1:${port} is in use`)
      expect(r.stderr).toMatch(/choose another port, or 0 for any free one/)
      notRunning()
    }
  })
})
