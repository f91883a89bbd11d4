// `ioreq report` on recordings made here byte by byte, so that the expected figures are
// known exactly: rates are requests over the recording's span (from the recorder's start
// to its stop), in the table and in --json.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { TraceFileWriter, type TraceFileHeader } from '../../src/core/trace/file.js'
import { packFlags, RECORD_SIZE, TYPE_PIO, writeRecord } from '../../src/core/trace/record.js'
import { hsmctl } from '../support/cli.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-report-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

interface Burst {
  port: number
  write: boolean
  count: number
  /** Daemon time (ms) of the first and last request. */
  from: number
  to: number
}

/** A recording of PIO bursts on VM 1 'demo', with this header (times as given). */
function recording(name: string, header: Partial<TraceFileHeader>, bursts: Burst[]): string {
  const path = join(dir, name)
  const total = bursts.reduce((n, b) => n + b.count, 0)
  const bytes = new Uint8Array(total * RECORD_SIZE)
  const view = new DataView(bytes.buffer)
  let i = 0
  for (const b of bursts)
    for (let k = 0; k < b.count; k++, i++)
      writeRecord(view, i * RECORD_SIZE, {
        t: b.count === 1 ? b.from : b.from + ((b.to - b.from) * k) / (b.count - 1),
        addr: BigInt(b.port),
        value: 0n,
        latencyNs: 1000,
        vmid: 1,
        vcpu: 0,
        size: 1,
        flags: packFlags(TYPE_PIO, b.write, 0, 1),
      })
  const writer = new TraceFileWriter(path, {
    createdAt: '2026-01-01T00:00:00.000Z',
    vms: [{ vmid: 1, name: 'demo' }],
    ...header,
  })
  writer.write(bytes)
  writer.close()
  return path
}

const report = (...args: string[]) => hsmctl(['ioreq', 'report', ...args])

describe('ioreq report: rates over the recording’s span', () => {
  // 10 s of recording; the requests themselves only in the middle 4 s
  const bursts: Burst[] = [
    { port: 0x3f8, write: true, count: 300, from: 1000, to: 5000 },
    { port: 0x70, write: false, count: 100, from: 2000, to: 3000 },
  ]
  const stopped = recording(
    'stopped.hsmtrace',
    { createdAt: '2026-01-01T00:00:00.000Z', stoppedAt: '2026-01-01T00:00:10.000Z' },
    bursts,
  )

  it('the table: 300 requests in 10 s are 30/s, and the total 40/s', () => {
    const r = report(stopped)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^demo +PIO 0x3f8 OUT +300 +75\.0 +30 /m)
    expect(r.stdout).toMatch(/^demo +PIO 0x70 IN +100 +25\.0 +10 /m)
    expect(r.stdout).toMatch(/^ +Total +400 +100\.0 +40$/m)
  })

  it('--json: each row’s rate, and the span in seconds', () => {
    const r = report(stopped, '--json')
    expect(r.code, r.stderr).toBe(0)
    const json = JSON.parse(r.stdout)
    expect(json.seconds).toBe(10)
    expect(json.rows.map((row: { key: string; rate: number }) => [row.key, row.rate])).toEqual([
      ['PIO 0x3f8 OUT', 30],
      ['PIO 0x70 IN', 10],
    ])
  })

  it('a filter keeps the span: the rate of what is left over the whole recording', () => {
    const r = report(stopped, '--json', '--dir', 'read')
    expect(JSON.parse(r.stdout).rows.map((row: { rate: number }) => row.rate)).toEqual([10])
  })

  it('csv and jsonl carry the same rates', () => {
    const jsonl = report(stopped, '--format', 'jsonl')
    expect(
      jsonl.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l).rate),
    ).toEqual([30, 10])
  })

  it('a recorder killed before it wrote its stop time: the span of its requests', () => {
    const killed = recording('killed.hsmtrace', {}, bursts)
    const json = JSON.parse(report(killed, '--json').stdout)
    // first request at 1 s, last at 5 s
    expect(json.seconds).toBe(4)
    expect(json.rows.map((row: { rate: number }) => row.rate)).toEqual([75, 25])
  })

  it('no requests, or a recording of no length: rate 0, never a division by zero', () => {
    const empty = recording('empty.hsmtrace', { stoppedAt: '2026-01-01T00:00:01.000Z' }, [])
    expect(JSON.parse(report(empty, '--json').stdout)).toMatchObject({ seconds: 1, rows: [] })
    const one = recording('one.hsmtrace', {}, [
      { port: 0x80, write: true, count: 1, from: 5, to: 5 },
    ])
    const r = report(one)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^demo +PIO 0x80 OUT +1 +100\.0 +0 /m)
  })
})
