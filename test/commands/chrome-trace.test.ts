// `ioreq report FILE --format chrome-trace` (issue 14 item 5): a recording of known traffic
// exported as Trace Event JSON and parsed back. Checked against the recording's own records
// (read here with the trace file reader): one 'X' slice per request, on the track of its
// VM and vCPU, ts = when it became PENDING, dur = PENDING to COMPLETE, its name and args
// the record's; metadata naming the VMs and vCPUs; every event valid for its phase. Then
// a KVM guest's COM1 output, byte by byte, and recordings made here byte by byte for the
// edges (a saturated latency, a vmid reused under another name, filters, bad flags).
//
// No real trace parser runs here: Perfetto's trace_processor is not packaged in Debian
// (nor anything else that reads this format), so validity is checked against the Trace
// Event Format's rules below.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { readTraceFile } from '../../src/core/trace/file.js'
import { TraceFileWriter } from '../../src/core/trace/file.js'
import { addrText, dirText } from '../../src/core/trace/format.js'
import {
  packFlags,
  RECORD_SIZE,
  records,
  TYPE_PIO,
  writeRecord,
  type TraceEvent,
} from '../../src/core/trace/record.js'
import { assemble } from '../support/assemble.js'
import { hsmctlBackground } from '../support/cli.js'
import { guestCodeUnavailable, hello16 } from '../support/guests.js'
import { expectError, hsmdSession, type Json } from '../support/hsmd-session.js'

const s = hsmdSession('chrome-trace')
const dir = mkdtempSync(join(tmpdir(), 'hsmctl-chrome-trace-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const LONG = 120_000

interface TraceEventJson {
  name: string
  ph: string
  ts?: number
  dur?: number
  pid: number
  tid: number
  cat?: string
  args?: Json
}

/**
 * The Trace Event Format's rules for the phases written here: a JSON object whose
 * traceEvents is an array; every event has a string name and ph and integer pid and tid;
 * 'X' has numeric ts and dur ≥ 0; 'M' is one of the metadata names with its args.
 */
function checkValid(doc: Json): TraceEventJson[] {
  expect(typeof doc).toBe('object')
  expect(Array.isArray(doc.traceEvents)).toBe(true)
  if (doc.displayTimeUnit !== undefined) expect(['ms', 'ns']).toContain(doc.displayTimeUnit)
  if (doc.otherData !== undefined)
    for (const v of Object.values(doc.otherData)) expect(typeof v).toBe('string')
  for (const e of doc.traceEvents as TraceEventJson[]) {
    expect(typeof e.name, JSON.stringify(e)).toBe('string')
    expect(Number.isSafeInteger(e.pid) && Number.isSafeInteger(e.tid), JSON.stringify(e)).toBe(true)
    expect(['X', 'M'], JSON.stringify(e)).toContain(e.ph)
    if (e.ph === 'X') {
      expect(Number.isFinite(e.ts) && e.ts! >= 0, JSON.stringify(e)).toBe(true)
      expect(Number.isFinite(e.dur) && e.dur! >= 0, JSON.stringify(e)).toBe(true)
    } else {
      const metadata: Record<string, string> = {
        process_name: 'name',
        process_labels: 'labels',
        process_sort_index: 'sort_index',
        thread_name: 'name',
        thread_sort_index: 'sort_index',
      }
      expect(Object.keys(metadata), JSON.stringify(e)).toContain(e.name)
      expect(e.args?.[metadata[e.name]!], JSON.stringify(e)).toBeDefined()
    }
  }
  return doc.traceEvents
}

/**
 * Everything a parsed trace must say of the recording at `file`: one slice per record
 * (matched one to one by track, ts and name), ts non-decreasing per track, dur the
 * record's latency, the args the record's fields, a process per VM named as the header
 * names it and a thread per vCPU. Returns the slices by track for further checks.
 */
function checkAgainstRecording(file: string, doc: Json): Map<string, TraceEventJson[]> {
  const events = checkValid(doc)
  const recording = readTraceFile(file)
  const recorded = [...records(recording.records)]
  const slices = events.filter((e) => e.ph === 'X')
  expect(slices.length).toBe(recorded.length)

  const byTrack = new Map<string, TraceEventJson[]>()
  for (const e of slices) {
    const key = `${e.pid}/${e.tid}`
    byTrack.set(key, [...(byTrack.get(key) ?? []), e])
  }
  for (const [key, list] of byTrack)
    for (let i = 1; i < list.length; i++)
      expect(list[i]!.ts! >= list[i - 1]!.ts!, `${key} #${i}`).toBe(true)

  const expected = (r: TraceEvent) => ({
    name: `${r.type.toUpperCase()} ${addrText(r.type, r.addr)} ${dirText(r.type, r.dir)}`,
    cat: r.type,
    ph: 'X',
    // PENDING, in µs to the ns; dur = COMPLETE − PENDING
    ts: Math.round(r.t * 1e6) / 1000,
    dur: r.latencyNs / 1000,
    pid: r.vmid + 1,
    tid: (r.vmid + 1) * 1000 + r.vcpu,
    args: {
      address: addrText(r.type, r.addr),
      size: r.size,
      direction: r.dir,
      value: `0x${r.value.toString(16)}`,
      client: r.client,
      type: r.type,
      latency_ns: r.latencyNs,
    },
  })
  const order = (a: Json, b: Json) =>
    a.pid - b.pid ||
    a.tid - b.tid ||
    a.ts - b.ts ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  const want = recorded.map(expected).sort(order)
  const got = [...slices].sort(order)
  expect(got).toEqual(want)
  // each slice ends when its request completed: PENDING + latency (to the ns)
  const completions = recorded.map((r) => r.t * 1e6 + r.latencyNs).sort((a, b) => a - b)
  const ends = got.map((e) => (e.ts! + e.dur!) * 1000).sort((a, b) => a - b)
  for (const [i, end] of ends.entries()) expect(Math.abs(end - completions[i]!)).toBeLessThan(1)

  // metadata: each VM's process named as the header names it, each vCPU's thread
  const meta = events.filter((e) => e.ph === 'M')
  const processNames = Object.fromEntries(
    meta.filter((e) => e.name === 'process_name').map((e) => [e.pid, e.args.name]),
  )
  const vmids = [...new Set(recorded.map((r) => r.vmid))].sort((a, b) => a - b)
  expect(processNames).toEqual(
    Object.fromEntries(
      vmids.map((vmid) => [
        vmid + 1,
        recording.header.vms
          .filter((v) => v.vmid === vmid)
          .map((v) => v.name)
          .join(' / '),
      ]),
    ),
  )
  const threadNames = meta
    .filter((e) => e.name === 'thread_name')
    .map((e) => `${e.pid}/${e.tid} ${e.args.name}`)
    .sort()
  expect(threadNames).toEqual(
    [
      ...new Set(
        recorded.map((r) => `${r.vmid + 1}/${(r.vmid + 1) * 1000 + r.vcpu} vCPU ${r.vcpu}`),
      ),
    ].sort(),
  )
  return byTrack
}

const background = (args: string[]) => hsmctlBackground(args, s.env)

/** `ioreq report FILE --format chrome-trace` to stdout, parsed. */
function exportTrace(file: string, ...args: string[]): Json {
  const r = s.run('ioreq', 'report', file, '--format', 'chrome-trace', ...args)
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout)
}

describe('chrome-trace export of a recorded workload', { timeout: LONG }, () => {
  const file = join(dir, 'workload.hsmtrace')

  it('one slice per recorded request, on its VM’s and vCPU’s track, as the records say', async () => {
    for (const args of [
      ['vm', 'create', 'ct', '--vcpus', '2', '--memory', '1M'],
      ['vm', 'start', 'ct'],
      ['vm', 'create', 'ct2', '--vcpus', '1', '--memory', '1M'],
      ['vm', 'start', 'ct2'],
    ])
      expect(s.run(...args).code).toBe(0)
    const recorder = background(['ioreq', 'record', file, '--json'])
    await recorder.started(/recording to/)
    for (const args of [
      // 100 RTC accesses on vCPU 1, 12 PCI config reads (+ their 0xCF8 writes) on vCPU 0
      [
        'guest',
        'run',
        'ct',
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
      ['guest', 'run', 'ct', '--workload', 'pci-scan', '--count', '24', '--rate', '0', '--wait'],
      ['guest', 'access', 'ct', '--mmio', '0xfed00000', '--write', '0x1234', '--size', '4'],
      ['guest', 'access', 'ct2', '--pio', '0x3f8', '--write', '0x41', '--size', '1'],
    ]) {
      const r = s.run(...args)
      expect(r.code, r.stderr).toBe(0)
    }
    const stopped = await recorder.stop()
    expect(stopped.code, stopped.stderr).toBe(0)
    const recorded: Json = JSON.parse(stopped.stdout)
    expect(recorded.dropped).toBe(0)

    // nothing was pending when the recorder stopped, after every recorded request began
    const { header } = readTraceFile(file)
    expect(header.pending).toBe('')
    for (const r of records(readTraceFile(file).records)) expect(r.t).toBeLessThan(header.traceEnd!)

    const doc = exportTrace(file)
    const byTrack = checkAgainstRecording(file, doc)
    // the workload, independently of the records: 100 RTC requests on ct's vCPU 1, the
    // MMIO write on vCPU 0 with its value, COM1's byte on ct2
    const ct = s.json('vm', 'show', 'ct').vmid as number
    const ct2 = s.json('vm', 'show', 'ct2').vmid as number
    const rtc = byTrack.get(`${ct + 1}/${(ct + 1) * 1000 + 1}`) ?? []
    expect(rtc.length).toBe(100)
    expect(rtc.filter((e) => e.name === 'PIO 0x70 OUT').length).toBe(50)
    expect(rtc.filter((e) => e.name === 'PIO 0x71 IN').length).toBe(50)
    const vcpu0 = byTrack.get(`${ct + 1}/${(ct + 1) * 1000}`) ?? []
    expect(vcpu0.filter((e) => e.cat === 'pcicfg').length).toBe(12)
    expect(vcpu0.filter((e) => e.name === 'MMIO 0xfed00000 W').map((e) => e.args)).toEqual([
      expect.objectContaining({ value: '0x1234', size: 4, direction: 'write', client: 'default' }),
    ])
    expect(byTrack.get(`${ct2 + 1}/${(ct2 + 1) * 1000}`)?.map((e) => e.name)).toEqual([
      'PIO 0x3f8 OUT',
    ])
    const names = doc.traceEvents.filter((e: Json) => e.name === 'process_name')
    expect(names.map((e: Json) => e.args.name).sort()).toEqual(['ct', 'ct2'])
    // as many slices as the report counts requests
    const report = s.json('ioreq', 'report', file)
    const total = report.rows.reduce((n: number, r: Json) => n + r.count, 0)
    expect(doc.traceEvents.filter((e: Json) => e.ph === 'X').length).toBe(total)
    expect(total).toBe(recorded.records)
  })

  it('-o FILE writes the same trace, and --json then summarises it', () => {
    const out = join(dir, 'workload.json')
    const r = s.run('ioreq', 'report', file, '--format', 'chrome-trace', '-o', out, '--json')
    expect(r.code, r.stderr).toBe(0)
    const summary = JSON.parse(r.stdout)
    const doc = JSON.parse(readFileSync(out, 'utf8'))
    expect(doc).toEqual(exportTrace(file))
    const slices = doc.traceEvents.filter((e: Json) => e.ph === 'X').length
    expect(summary).toEqual({
      file,
      output: out,
      records: readTraceFile(file).count,
      slices,
      pending: 0,
      saturated: 0,
      vms: 2,
      vcpus: 3,
    })
    const plain = s.run('ioreq', 'report', file, '--format', 'chrome-trace', '-o', out)
    expect(plain.stderr).toBe(`wrote ${slices} slices (2 VMs, 3 vCPUs) to ${out}\n`)
  })

  it('the filter flags select the slices', () => {
    const doc = exportTrace(file, '--type', 'pio', '--dir', 'read')
    const slices = doc.traceEvents.filter((e: Json) => e.ph === 'X')
    expect(slices.length).toBe(
      [...records(readTraceFile(file).records)].filter((r) => r.type === 'pio' && r.dir === 'read')
        .length,
    )
    expect(new Set(slices.map((e: Json) => `${e.cat} ${e.args.direction}`))).toEqual(
      new Set(['pio read']),
    )
  })
})

const why = guestCodeUnavailable('a KVM guest’s chrome trace')

describe.skipIf(why !== undefined)(
  `chrome-trace of a KVM guest${why ? ` (skipped: ${why})` : ''}`,
  { timeout: LONG },
  () => {
    it('COM1 output: a slice per IN of the LSR and per OUT of a byte, the bytes as values', async () => {
      const payload = join(dir, 'hello16.bin')
      writeFileSync(payload, assemble(hello16('Hi!')))
      const file = join(dir, 'hello.hsmtrace')
      const recorder = background(['ioreq', 'record', file])
      await recorder.started(/recording to/)
      const r = s.run('vm', 'create', 'cthello', '--memory', '1M', '--payload', payload, '--start')
      expect(r.code, r.stderr).toBe(0)
      const deadline = Date.now() + 90_000
      while (s.json('vm', 'show', 'cthello').hypervisor.vcpus[0].execution.state !== 'halted') {
        if (Date.now() > deadline) throw new Error('the guest did not halt')
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
      const stopped = await recorder.stop()
      expect(stopped.code, stopped.stderr).toBe(0)
      const doc = exportTrace(file)
      const byTrack = checkAgainstRecording(file, doc)
      const vmid = s.json('vm', 'show', 'cthello').vmid as number
      const track = byTrack.get(`${vmid + 1}/${(vmid + 1) * 1000}`) ?? []
      // the guest's order: LSR, byte, LSR, byte, LSR, byte, LSR (then the NUL ends it)
      expect(track.map((e) => e.name)).toEqual([
        ...['PIO 0x3fd IN', 'PIO 0x3f8 OUT'],
        ...['PIO 0x3fd IN', 'PIO 0x3f8 OUT'],
        ...['PIO 0x3fd IN', 'PIO 0x3f8 OUT'],
        'PIO 0x3fd IN',
      ])
      expect(track.filter((e) => e.name === 'PIO 0x3f8 OUT').map((e) => e.args.value)).toEqual(
        [...'Hi!'].map((c) => `0x${c.charCodeAt(0).toString(16)}`),
      )
      // each request follows the one before on the vCPU: a vCPU waits for its request
      for (let i = 1; i < track.length; i++)
        expect(track[i]!.ts!).toBeGreaterThanOrEqual(track[i - 1]!.ts! + track[i - 1]!.dur!)
      const named = doc.traceEvents.find(
        (e: Json) => e.name === 'process_name' && e.pid === vmid + 1,
      )
      expect(named.args.name).toBe('cthello')
      s.run('vm', 'destroy', 'cthello', '--yes')
    })
  },
)

describe('chrome-trace of recordings made byte by byte', () => {
  function recording(name: string, vms: { vmid: number; name: string }[], rs: TraceEvent[]) {
    const path = join(dir, name)
    const bytes = new Uint8Array(rs.length * RECORD_SIZE)
    const view = new DataView(bytes.buffer)
    rs.forEach((r, i) =>
      writeRecord(view, i * RECORD_SIZE, {
        ...r,
        flags: packFlags(TYPE_PIO, r.dir === 'write', 0, r.size),
      }),
    )
    const writer = new TraceFileWriter(path, { createdAt: '2026-01-01T00:00:00.000Z', vms })
    writer.write(bytes)
    writer.close()
    return path
  }
  const pio = (t: number, vmid: number, vcpu: number, latencyNs: number): TraceEvent => ({
    t,
    addr: 0x80n,
    value: 0x12n,
    latencyNs,
    vmid,
    vcpu,
    type: 'pio',
    dir: 'write',
    client: 'default',
    size: 1,
  })

  it('records out of order within a track come out sorted; a vmid reused keeps both names', () => {
    const file = recording(
      'order.hsmtrace',
      [
        { vmid: 0, name: 'sos' },
        { vmid: 3, name: 'first' },
        { vmid: 3, name: 'second' },
      ],
      [pio(5, 3, 1, 100), pio(2, 3, 1, 1500), pio(1, 0, 0, 0), pio(3.0000005, 3, 0, 7)],
    )
    const doc = exportTrace(file)
    checkAgainstRecording(file, doc)
    const slices = doc.traceEvents.filter((e: Json) => e.ph === 'X')
    expect(slices.map((e: Json) => [e.pid, e.tid, e.ts, e.dur])).toEqual([
      [1, 1000, 1000, 0],
      [4, 4000, 3000.001, 0.007],
      [4, 4001, 2000, 1.5],
      [4, 4001, 5000, 0.1],
    ])
  })

  it('a saturated latency is marked, and said on stderr', () => {
    const file = recording(
      'saturated.hsmtrace',
      [{ vmid: 1, name: 'slow' }],
      [pio(10, 1, 0, 0xffff_ffff)],
    )
    const r = s.run('ioreq', 'report', file, '--format', 'chrome-trace')
    expect(r.code, r.stderr).toBe(0)
    const [slice] = JSON.parse(r.stdout).traceEvents.filter((e: Json) => e.ph === 'X')
    expect(slice.dur).toBe(4294967.295)
    expect(slice.args.latency_saturated).toBe(true)
    expect(r.stderr).toMatch(/1 requests waited over 4\.29 s .*dur is a lower bound/)
  })

  it('an empty recording is a valid trace with no events', () => {
    const doc = exportTrace(recording('empty.hsmtrace', [{ vmid: 1, name: 'idle' }], []))
    expect(checkValid(doc)).toEqual([])
  })

  it('bad flag combinations are usage errors that write nothing', () => {
    const file = join(dir, 'order.hsmtrace')
    const out = join(dir, 'never.json')
    expectError(
      s.run('ioreq', 'report', file, '-o', out),
      2,
      '--output: only --format chrome-trace writes to a file',
    )
    const json = s.run('ioreq', 'report', file, '--format', 'chrome-trace', '--json')
    expect(json.code).toBe(2)
    expect(json.stdout).toBe('')
    expect(JSON.parse(json.stderr).error).toMatchObject({
      message: '--json: would share stdout with --format chrome-trace',
      hint: 'give -o FILE for the trace; --json then prints its summary',
    })
    expectError(
      s.run('ioreq', 'report', file, '--format', 'chrome-trace', '--by-vcpu', '-o', out),
      2,
      '--by-vcpu: does not apply to --format chrome-trace',
    )
    expect(() => readFileSync(out)).toThrow(/ENOENT/)
  })
})
