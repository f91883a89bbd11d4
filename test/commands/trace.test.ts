// Live ioreq tracing as a user runs it (built CLI, one hsmd): `ioreq watch` samples in
// table, csv and jsonl checked exactly against deterministic guest traffic, --skip-zero and
// the filters; `ioreq record` holding what the live view saw (and only what passed its
// filter), `ioreq report` showing it, `ioreq replay` reproducing it in a fresh VM; and the
// full-screen view in a real terminal (tmux), inside `hsmctl shell` when the shell exists.
//
// Requests handled in the kernel (ioeventfd hits, 0xCF8) may or may not be traced by the
// daemon (client `ioeventfd`/`kernel`); every check here holds either way.

import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { hsmctlBackground, ROOT, RUN_JS } from '../support/cli.js'
import { expectError, hsmdSession, type Json } from '../support/hsmd-session.js'
import { haveTmux, TmuxSession } from '../support/tmux.js'

const s = hsmdSession('trace')
const files = mkdtempSync(join(tmpdir(), 'hsmctl-trace-files-'))
afterAll(() => rmSync(files, { recursive: true, force: true }))

const LONG = 90_000
const CSV_HEADER =
  'time,vm,vmid,vcpu,key,type,addr,bdf,reg,dir,count,pct,rate,lat_min_ns,lat_avg_ns,lat_p99_ns,lat_max_ns,client'

type Row = Record<string, string>

function csv(text: string): { header: string; rows: Row[] } {
  const [header = '', ...lines] = text.trimEnd().split('\n')
  const names = header.split(',')
  return {
    header,
    rows: lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [names[i]!, v]))),
  }
}

/** `ioreq watch ARGS --once` as csv: the header and the rows (rates over 0.1 s by default). */
function sample(...args: string[]) {
  const interval = args.includes('--interval') ? [] : ['--interval', '0.1']
  const r = s.run('ioreq', 'watch', ...args, '--once', ...interval, '--format', 'csv')
  expect(r.code, r.stderr).toBe(0)
  return csv(r.stdout)
}

/** sample() without blocking: read-only queries run side by side (each is a node start-up). */
async function sampleAsync(...args: string[]) {
  const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(
      process.execPath,
      [RUN_JS, 'ioreq', 'watch', ...args, '--once', '--interval', '0.1', '--format', 'csv'],
      { env: { ...process.env, NODE_ENV: undefined, NO_COLOR: '1', ...s.env }, timeout: 60_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? -1) : 0, stdout, stderr }),
    ),
  )
  expect(r.code, r.stderr).toBe(0)
  return csv(r.stdout)
}

/** Rows as `KEY COUNT`, in the order printed. */
const counts = (rows: Record<string, unknown>[]) => rows.map((r) => `${r.key} ${r.count}`)

const sum = (rows: Row[]) => rows.reduce((n, r) => n + Number(r.count), 0)

let vmid = 0

beforeAll(() => {
  // rtc: 100 accesses on vCPU 1, alternating index and data (50 + 50); pci-scan: 12
  // accesses on vCPU 0, 6 of them PCI config reads (devices 0 and 1, registers 0, 8, c)
  for (const args of [
    ['vm', 'create', 'rtc', '--vcpus', '2', '--memory', '1M'],
    ['vm', 'start', 'rtc'],
    [
      'guest',
      'run',
      'rtc',
      '--workload',
      'rtc',
      '--count',
      '100',
      '--rate',
      '0',
      '--wait',
      '--vcpus',
      '1',
    ],
    ['guest', 'run', 'rtc', '--workload', 'pci-scan', '--count', '12', '--rate', '0', '--wait'],
  ]) {
    const r = s.run(...args)
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0)
  }
  vmid = s.json('vm', 'show', 'rtc').vmid
}, LONG)

const PCICFG = [
  '00:00.0+0x0',
  '00:00.0+0x8',
  '00:00.0+0xc',
  '00:01.0+0x0',
  '00:01.0+0x8',
  '00:01.0+0xc',
]

describe('ioreq watch: samples', { timeout: LONG }, () => {
  let csvRows: Row[] = []

  it('--format csv: the header and every row, exactly', () => {
    const { header, rows } = sample('rtc', '--client', 'default')
    csvRows = rows
    expect(header).toBe(CSV_HEADER)
    expect(counts(rows)).toEqual([
      'PIO 0x70 OUT 50',
      'PIO 0x71 IN 50',
      ...PCICFG.map((k) => `PCICFG ${k} R 1`),
    ])
    for (const r of rows) {
      expect(r).toMatchObject({
        vm: 'rtc',
        vmid: String(vmid),
        vcpu: '',
        rate: '0',
        client: 'default',
      })
      expect(r.time).toMatch(/^\d{4}-\d\d-\d\dT/)
      const [min, avg, p99, max] = ['lat_min_ns', 'lat_avg_ns', 'lat_p99_ns', 'lat_max_ns'].map(
        (c) => Number(r[c]),
      )
      expect(min).toBeGreaterThan(0)
      expect(min! <= avg! + 1 && avg! <= max! + 1 && p99! <= max!).toBe(true)
    }
    expect(rows.slice(0, 2).map((r) => [r.type, r.addr, r.bdf, r.reg, r.dir, r.pct])).toEqual([
      ['pio', '0x70', '', '', 'write', '47.17'],
      ['pio', '0x71', '', '', 'read', '47.17'],
    ])
    expect(rows[2]).toMatchObject({ type: 'pcicfg', addr: '0x0', dir: 'read', pct: '0.94' })
    // a PCI config row names its function and register as --phys and the key write them
    for (const r of rows.filter((row) => row.type === 'pcicfg'))
      expect(`PCICFG ${r.bdf}+${r.reg} R`).toBe(r.key)
    expect(rows.find((r) => r.key === 'PCICFG 00:01.0+0x8 R')).toMatchObject({
      bdf: '00:01.0',
      reg: '0x8',
      addr: '0x8008',
    })
  })

  it('--format jsonl: one object per row, the same rows', () => {
    const r = s.run(
      'ioreq',
      'watch',
      'rtc',
      '--client',
      'default',
      '--once',
      '--interval',
      '0.1',
      '--format',
      'jsonl',
    )
    expect(r.code, r.stderr).toBe(0)
    const rows = r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Json)
    expect(counts(rows)).toEqual(counts(csvRows))
    expect(rows[1]).toEqual({
      time: expect.any(String),
      vm: 'rtc',
      vmid,
      vcpu: null,
      key: 'PIO 0x71 IN',
      type: 'pio',
      addr: '0x71',
      bdf: null,
      reg: null,
      dir: 'read',
      count: 50,
      pct: 47.17,
      rate: 0,
      lat_min_ns: expect.any(Number),
      lat_avg_ns: expect.any(Number),
      lat_p99_ns: expect.any(Number),
      lat_max_ns: expect.any(Number),
      client: 'default',
    })
  })

  it('--format table (the default off a terminal), with a total row', () => {
    const r = s.run(
      'ioreq',
      'watch',
      'rtc',
      '--once',
      '--interval',
      '0.1',
      '--type',
      'pio',
      '--client',
      'default',
    )
    expect(r.code, r.stderr).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines[0]!.split(/\s+/)).toEqual([
      'VM',
      'REQUEST',
      'COUNT',
      '%',
      'RATE/s',
      'MIN',
      'AVG',
      'P99',
      'MAX',
      'CLIENT',
    ])
    expect(lines[1]).toMatch(/^rtc +PIO 0x70 OUT +50 +50\.0 +0 +\S+ +\S+ +\S+ +\S+ +default$/)
    expect(lines[2]).toMatch(/^rtc +PIO 0x71 IN +50 +50\.0 +0 .* default$/)
    expect(lines[3]).toMatch(/^ +Total +100 +100\.0 +0$/)
  })

  it('--interval S --count N prints N samples', () => {
    const r = s.run(
      'ioreq',
      'watch',
      'rtc',
      '--interval',
      '0.1',
      '--count',
      '3',
      '--format',
      'csv',
      '--addr',
      '0x70',
    )
    expect(r.code, r.stderr).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    // the header once, then one row per sample
    expect(lines).toHaveLength(4)
    expect(lines.slice(1).map((l) => l.split(',')[4])).toEqual(Array(3).fill('PIO 0x70 OUT'))
  })

  it.concurrent.each([
    [['--type', 'pio', '--dir', 'read'], ['PIO 0x71 IN 50']],
    [['--addr', '0x70-0x70'], ['PIO 0x70 OUT 50']],
    [['--type', 'pcicfg', '--client', 'default'], PCICFG.map((k) => `PCICFG ${k} R 1`)],
    // PCI config is always the device model's; 0xCF8 is always the kernel's
    [['--type', 'pcicfg', '--client', 'kernel,ioeventfd'], []],
    [['--addr', '0xcf8', '--client', 'default'], []],
    [
      ['--vcpu', '1'],
      ['PIO 0x70 OUT 50', 'PIO 0x71 IN 50'],
    ],
  ])('filter %j', async (args, expected) => {
    const { header, rows } = await sampleAsync('rtc', ...args)
    expect(header).toBe(CSV_HEADER)
    expect(counts(rows)).toEqual(expected)
  })

  it('--by-vcpu: one row per vCPU, with its number', () => {
    const { rows } = sample('rtc', '--by-vcpu', '--type', 'pio', '--client', 'default')
    expect(rows.map((r) => [r.vcpu, r.key, r.count])).toEqual([
      ['1', 'PIO 0x70 OUT', '50'],
      ['1', 'PIO 0x71 IN', '50'],
    ])
  })

  it('--skip-zero leaves out rows without requests in the interval', () => {
    // rtc is idle: nothing at all (jsonl prints no line)
    const idle = s.run(
      'ioreq',
      'watch',
      'rtc',
      '--once',
      '--interval',
      '0.1',
      '--skip-zero',
      '--format',
      'jsonl',
    )
    expect(idle).toMatchObject({ code: 0, stdout: '' })
    expect(s.run('vm', 'create', 'busy', '--memory', '1M').code).toBe(0)
    expect(s.run('vm', 'start', 'busy').code).toBe(0)
    expect(
      s.run('guest', 'run', 'busy', '--workload', 'uart', '--rate', '400', '--duration', '20').code,
    ).toBe(0)
    try {
      const { rows } = sample('--skip-zero', '--interval', '0.5')
      expect(new Set(rows.map((r) => `${r.vm} ${r.key}`))).toEqual(
        new Set(['busy PIO 0x3f8 OUT', 'busy PIO 0x3fd IN']),
      )
      for (const r of rows) expect(Number(r.rate)).toBeGreaterThan(0)
      // the table's Total sums the rows it shows, not the idle ones it left out (rtc's)
      const table = s.run('ioreq', 'watch', '--once', '--interval', '0.5', '--skip-zero')
      expect(table.code, table.stderr).toBe(0)
      const shown = [...table.stdout.matchAll(/^\S+ +\S+ \S+ \S+ +(\d+) +([\d.]+) /gm)]
      const total = /^ +Total +(\d+) +([\d.]+) /m.exec(table.stdout)
      expect(shown.length, table.stdout).toBe(2)
      expect(Number(total![1])).toBe(shown.reduce((n, m) => n + Number(m[1]), 0))
      expect(Number(total![2])).toBeCloseTo(
        shown.reduce((n, m) => n + Number(m[2]), 0),
        0,
      )
      expect(Number(total![2])).toBeLessThan(100) // rtc's requests are the rest
    } finally {
      s.run('guest', 'stop', 'busy')
    }
  })

  it.each([
    [['nope'], 3, "no VM named 'nope'"],
    [['--type', 'dma'], 2, "--type: 'dma' is not one of pio, mmio, pcicfg"],
  ])('ioreq watch %j → exit %d', (args, code, message) => {
    expectError(s.run('ioreq', 'watch', ...args, '--once'), code, message)
  })
})

const background = (args: string[]) => hsmctlBackground(args, s.env)

describe('ioreq tail', { timeout: LONG }, () => {
  it('prints one line per request, filtered, and stops after --count', async () => {
    expect(s.run('vm', 'create', 'tailvm', '--memory', '1M').code).toBe(0)
    expect(s.run('vm', 'start', 'tailvm').code).toBe(0)
    const tail = background([
      'ioreq',
      'tail',
      'tailvm',
      '--type',
      'pio',
      '--dir',
      'read',
      '--count',
      '3',
    ])
    await tail.started(/following I\/O requests \(3\)/)
    // rtc: index writes to 0x70, data reads from 0x71; only the reads pass the filter
    const workload = [
      'guest',
      'run',
      'tailvm',
      '--workload',
      'rtc',
      '--count',
      '20',
      '--rate',
      '0',
      '--wait',
    ]
    expect(s.run(...workload).code).toBe(0)
    const done = await tail.finished()
    expect(done.code, done.stderr).toBe(0)
    const lines = done.stdout.trim().split('\n')
    expect(lines).toHaveLength(3)
    for (const line of lines) {
      expect(line).toMatch(
        /^\s*[\d.]+ tailvm\s+vcpu0\s+PIO\s+IN\s+0x71\s+1B\s+0x[0-9a-f]+\s+default\s+\S+$/,
      )
    }
  })
})

describe('ioreq record, report, replay', { timeout: LONG }, () => {
  const all = join(files, 'all.hsmtrace')
  const pio = join(files, 'pio.hsmtrace')
  let live: Row[] = []

  beforeAll(() => {
    for (const name of ['rec', 'fresh']) {
      expect(s.run('vm', 'create', name, '--vcpus', '2', '--memory', '1M').code).toBe(0)
      expect(s.run('vm', 'start', name).code).toBe(0)
    }
  }, LONG)

  it('a recording holds exactly what the live view saw; a filtered one only what passed', async () => {
    const recorders = [
      background(['ioreq', 'record', all, '--vm', 'rec', '--json']),
      background(['ioreq', 'record', pio, '--vm', 'rec', '--type', 'pio']),
    ]
    for (const r of recorders) await r.started(/recording to/)
    for (const args of [
      [
        'guest',
        'run',
        'rec',
        '--workload',
        'rtc',
        '--count',
        '100',
        '--rate',
        '0',
        '--wait',
        '--vcpus',
        '1',
      ],
      ['guest', 'run', 'rec', '--workload', 'pci-scan', '--count', '24', '--rate', '0', '--wait'],
      ['guest', 'access', 'rec', '--mmio', '0xfed00000', '--write', '0x1', '--size', '4'],
    ]) {
      const r = s.run(...args)
      expect(r.code, r.stderr).toBe(0)
    }
    live = sample('rec').rows
    // what the live view saw: rtc's 100, 12 PCI config reads, one MMIO write (+ 0xCF8
    // writes when kernel-handled requests are traced)
    expect(counts(live)).toEqual(
      expect.arrayContaining(['PIO 0x70 OUT 50', 'PIO 0x71 IN 50', 'MMIO 0xfed00000 W 1']),
    )
    expect(live.filter((r) => r.type === 'pcicfg').map((r) => r.count)).toEqual(Array(12).fill('1'))

    const [a, b] = await Promise.all(recorders.map((r) => r.stop()))
    expect(a!.code, a!.stderr).toBe(0)
    expect(JSON.parse(a!.stdout)).toMatchObject({ file: all, records: sum(live), dropped: 0 })
    expect(b!.code, b!.stderr).toBe(0)
    const pioLive = live.filter((r) => r.type === 'pio')
    expect(b!.stdout).toMatch(
      new RegExp(`^recorded ${sum(pioLive)} requests in \\d+\\.\\d+s to ${pio}\\n$`),
    )

    const fields = (rows: Row[]) =>
      rows.map((r) => [r.vm, r.vmid, r.key, r.type, r.addr, r.dir, r.count, r.pct, r.client])
    const report = (file: string) => {
      const r = s.run('ioreq', 'report', file, '--format', 'csv')
      expect(r.code, r.stderr).toBe(0)
      return csv(r.stdout)
    }
    const full = report(all)
    expect(full.header).toBe(CSV_HEADER)
    expect(fields(full.rows)).toEqual(fields(live))
    expect(fields(report(pio).rows)).toEqual(fields(sample('rec', '--type', 'pio').rows))
    // the report's filters narrow the same way the live view's do
    expect(counts(report(all).rows.filter((r) => r.dir === 'read' && r.type === 'pio'))).toEqual(
      counts(
        csv(
          s.run('ioreq', 'report', all, '--format', 'csv', '--type', 'pio', '--dir', 'read').stdout,
        ).rows,
      ),
    )
  })

  it('a replay into a fresh VM reproduces the recorded rows and counts', () => {
    const r = s.run('ioreq', 'replay', all, '--vm', 'fresh', '--fast')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(
      new RegExp(`^replayed ${sum(live)} of ${sum(live)} requests into fresh`),
    )
    const replayed = sample('fresh').rows
    expect(counts(replayed)).toEqual(counts(live))
    expect(new Set(replayed.map((x) => x.vm))).toEqual(new Set(['fresh']))
  })

  it('requests the kernel’s ioeventfd client handled when recorded are handled by it again (§5.5)', async () => {
    const doorbell = join(files, 'doorbell.hsmtrace')
    for (const args of [
      ['vm', 'create', 'bell', '--vcpus', '1'],
      ['vm', 'start', 'bell'],
      // the VM's own ioeventfd elsewhere stays, and is no reason to add one
      ['ioeventfd', 'add', 'bell', '--addr', '0xfe004000', '--len', '4'],
    ])
      expect(s.run(...args).code).toBe(0)
    const recorder = background(['ioreq', 'record', doorbell, '--vm', 'rec'])
    await recorder.started(/recording to/)
    // the workload has an ioeventfd at its doorbell while it runs (a device model's)
    const run = s.run(
      ...['guest', 'run', 'rec', '--workload', 'virtio-notify'],
      ...['--count', '40', '--rate', '0', '--wait'],
    )
    expect(run.code, run.stderr).toBe(0)
    const stopped = await recorder.stop()
    expect(stopped.code, stopped.stderr).toBe(0)
    const fields = (rows: Row[]) => rows.map((r) => [r.key, r.count, r.client])
    const recorded = csv(s.run('ioreq', 'report', doorbell, '--format', 'csv').stdout).rows
    expect(fields(recorded)).toEqual([
      ['MMIO 0xfe003000 W', '38', 'ioeventfd'],
      ['MMIO 0xfe001000 R', '2', 'default'],
    ])
    const ownIoeventfds = s.json('ioeventfd', 'list', 'bell')

    const r = s.run('ioreq', 'replay', doorbell, '--vm', 'bell', '--fast')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe(
      '38 recorded requests were handled in the kernel by ioeventfds (which complete them without hsmd); bell has an ioeventfd for them while the replay runs: MMIO 0xfe003000 len 2\n',
    )
    expect(r.stdout).toBe(
      'replayed 40 of 40 requests into bell (1 ioeventfd added for it and removed)\n',
    )
    // the same clients as at record time, and the VM's ioeventfds as they were
    expect(fields(sample('bell').rows)).toEqual(fields(recorded))
    expect(s.json('ioeventfd', 'list', 'bell')).toEqual(ownIoeventfds)
  })

  // issue 13 item 21: one schema for a row, whichever command and format prints it
  it('--json rows are the jsonl records (report and watch), as the README documents them', () => {
    const jsonl = s.run('ioreq', 'report', all, '--format', 'jsonl')
    expect(jsonl.code, jsonl.stderr).toBe(0)
    const { time, ...record } = JSON.parse(jsonl.stdout.split('\n')[0]!)
    expect(time).toEqual(expect.any(String))
    const keys = Object.keys(record)
    expect(keys).toEqual([
      'vm',
      'vmid',
      'vcpu',
      'key',
      'type',
      'addr',
      'bdf',
      'reg',
      'dir',
      'count',
      'pct',
      'rate',
      'lat_min_ns',
      'lat_avg_ns',
      'lat_p99_ns',
      'lat_max_ns',
      'client',
    ])
    const report = s.json('ioreq', 'report', all)
    for (const row of report.rows) expect(Object.keys(row)).toEqual(keys)
    expect(report.rows[0]).toMatchObject({ vcpu: null, lat_avg_ns: expect.any(Number) })
    expect(s.json('ioreq', 'report', all, '--by-vcpu').rows[0].vcpu).toEqual(expect.any(Number))
    const watch = s.json('ioreq', 'watch', '--once', '--interval', '0.1')
    expect(watch.samples[0].rows.length).toBeGreaterThan(0)
    for (const row of watch.samples[0].rows) expect(Object.keys(row)).toEqual(keys)
  })

  it('report --format table and jsonl', () => {
    const table = s.run('ioreq', 'report', all, '--type', 'pio', '--client', 'default')
    expect(table.code, table.stderr).toBe(0)
    // rates are over the recording's span (exact figures: test/commands/report.test.ts)
    expect(table.stdout).toMatch(/^rec +PIO 0x70 OUT +50 +50\.0 +[1-9]\d* /m)
    expect(table.stdout).toMatch(/^ +Total +100 +100\.0 +[1-9]\d*$/m)
    const jsonl = s.run('ioreq', 'report', all, '--format', 'jsonl', '--addr', '0xfed00000')
    expect(
      jsonl.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l).key),
    ).toEqual(['MMIO 0xfed00000 W'])
    const json = s.json('ioreq', 'report', pio)
    expect(json).toMatchObject({ file: pio, records: sum(live.filter((r) => r.type === 'pio')) })
  })

  it('record --duration stops by itself and says what it recorded', () => {
    const r = s.run(
      'ioreq',
      'record',
      join(files, 'quiet.hsmtrace'),
      '--duration',
      '0.3',
      '--vm',
      'rtc',
      '--json',
    )
    expect(r.code, r.stderr).toBe(0)
    const result = JSON.parse(r.stdout)
    expect(result).toMatchObject({ records: 0, dropped: 0 })
    expect(result.seconds).toBeGreaterThanOrEqual(0.3)
    expect(s.json('ioreq', 'report', join(files, 'quiet.hsmtrace')).rows).toEqual([])
  })

  it('bad recordings are refused with what is wrong', () => {
    const junk = join(files, 'junk.hsmtrace')
    writeFileSync(junk, 'not a trace at all, just text\n')
    expectError(
      s.run('ioreq', 'report', junk),
      2,
      `${junk} is not an hsmctl trace: no HSMTRACE header`,
      /ioreq record/,
    )
    // a header field of the wrong type is said, not printed as "[object Object]"
    const header = new TextEncoder().encode('{"createdAt":"x","vms":[],"dropped":{"n":1}}')
    const odd = new Uint8Array(16 + header.byteLength)
    odd.set(new TextEncoder().encode('HSMTRACE'))
    new DataView(odd.buffer).setUint16(8, 1, true)
    new DataView(odd.buffer).setUint16(10, 32, true)
    new DataView(odd.buffer).setUint32(12, header.byteLength, true)
    odd.set(header, 16)
    const oddFile = join(files, 'odd.hsmtrace')
    writeFileSync(oddFile, odd)
    const oddReport = s.run('ioreq', 'report', oddFile)
    expectError(
      oddReport,
      2,
      `${oddFile} is not an hsmctl trace: the header's dropped is not a count`,
    )
    expect(oddReport.stderr).not.toMatch(/object Object/)
    const none = join(files, 'none.hsmtrace')
    expectError(s.run('ioreq', 'report', none), 3, `FILE: ${none} does not exist`)
    expectError(s.run('ioreq', 'replay', junk, '--vm', 'fresh'), 2, 'is not an hsmctl trace')
    expectError(s.run('ioreq', 'replay', all, '--vm', 'nope'), 3, "no VM named 'nope'")
  })
})

// --- in a real terminal -------------------------------------------------------------------

const haveShell = existsSync(join(ROOT, 'dist', 'commands', 'shell.js'))
const cli = `${process.execPath} ${RUN_JS}`
const sessions: TmuxSession[] = []
afterEach(() => {
  for (const t of sessions.splice(0)) t.kill()
})

describe.skipIf(!haveTmux)('ioreq watch in a terminal', { timeout: LONG }, () => {
  const env = { ...s.env, NO_COLOR: '1' } as Record<string, string>
  // (tmux drops the blank at the end of the prompt line)
  const PROMPT = /hsmctl\(sim, \d+ VMs?\)> ?$/m

  it(`shows the rows, narrows them with f, shows the log with o, and q returns${haveShell ? ' to the shell' : ''}`, async () => {
    const t = new TmuxSession(haveShell ? `${cli} shell` : 'sh', { ...env, PS1: '$ ' })
    sessions.push(t)
    // in the shell the commands run inside it; otherwise in sh, one by one
    const command = async (line: string) => {
      t.type(haveShell ? line : `${cli} ${line}`)
      t.keys('Enter')
    }
    const ready = haveShell ? PROMPT : /\$ ?$/m
    await t.waitFor(ready, 30_000)
    await command('vm create tty --vcpus 1 --memory 1M')
    await t.waitFor(/tty +vmid \d+ +created/, 30_000)
    await command('vm start tty')
    await t.waitFor(/tty +vmid \d+ +running/, 30_000)
    await command('guest run tty --workload rtc --count 60 --rate 0 --wait')
    await t.waitFor(/rtc on tty: 60 accesses/, 30_000)
    await command('guest access tty --mmio 0xfed00000 --write 0x1 --size 4')
    await t.waitFor(/MMIO write 0xfed00000 size 4: 0x1 done/, 30_000)
    await command('guest access tty --mmio 0xfed00040 --read --size 4')
    await t.waitFor(/MMIO read +0xfed00040 size 4/, 30_000)

    await command('ioreq watch tty --interval 0.3')
    let screen = await t.waitFor(/Total +62 /, 30_000)
    expect(screen).toMatch(/hsmctl ioreq watch {2}tty \(vmid \d+\)/)
    expect(screen).toMatch(/^tty +PIO 0x70 OUT +30 +48\.4 /m)
    expect(screen).toMatch(/^tty +PIO 0x71 IN +30 +48\.4 /m)
    expect(screen).toMatch(/^tty +MMIO 0xfed00000 W +1 +1\.6 .* default/m)

    // f: edit the filter live
    t.keys('f')
    await t.waitFor(/filter> /)
    t.type('type mmio')
    t.keys('Enter')
    screen = await t.waitFor(/Total +2 /)
    expect(screen).toMatch(/filter: vm tty type mmio/)
    expect(screen).toMatch(/^tty +MMIO 0xfed00000 W +1 /m)
    expect(screen).toMatch(/^tty +MMIO 0xfed00040 R +1 /m)
    expect(screen).not.toMatch(/PIO 0x7/)
    // a bad filter says why on the screen and keeps the old one
    t.keys('f')
    t.type('dir sideways')
    t.keys('Enter')
    await t.waitFor(/dir: 'sideways' is not one of read, write/)
    t.keys('Escape')

    // o: the request log, newest last
    t.keys('o')
    screen = await t.waitFor(/TIME \(s\) VM +VCPU/)
    screen = await t.waitFor(/MMIO +R +0xfed00040/)
    expect(screen).toMatch(/tty +vcpu0 +MMIO +W +0xfed00000 +4B +0x1 +default/)
    expect(screen).toMatch(/dropped 0/)

    t.keys('q')
    screen = await t.waitFor(ready)
    expect(screen).not.toMatch(/TIME \(s\)/)

    if (haveShell) {
      // Ctrl-C ends the view too, and the shell lives on
      await command('ioreq watch')
      await t.waitFor(/hsmctl ioreq watch/)
      t.keys('C-c')
      await t.waitFor(PROMPT)
      await command('vm list')
      await t.waitFor(/tty\W+\d+\W+running/)
    } else {
      t.type('echo "[exit $?]"')
      t.keys('Enter')
      await t.waitFor(/\[exit 0\]/)
    }
  })
})
