// Recording files: what the writer writes the reader reads back; a file cut short, one
// with another magic or version, or a broken header is refused with a clear error.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { NotFoundError, UsageError } from '../../../src/core/errors.js'
import {
  parseTraceFile,
  pendingRecords,
  readTraceFile,
  TraceFileWriter,
  TRACE_VERSION,
  type TraceFileHeader,
} from '../../../src/core/trace/file.js'
import { RECORD_SIZE } from '../../../src/core/trace/record.js'
import { arbEvent, event, pack } from './records.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-tracefile-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
const path = () => join(dir, `t${n++}.hsmtrace`)

const header: TraceFileHeader = {
  createdAt: '2026-01-01T00:00:00.000Z',
  vms: [{ vmid: 1, name: 'demo' }],
  filter: { types: ['pio'], addr: { from: 0x3f0n, to: 0x3ffn } },
  source: 'test',
}

function write(file: string, records: Uint8Array[], h = header) {
  const w = new TraceFileWriter(file, h)
  for (const r of records) w.write(r)
  w.close()
  return w
}

describe('trace files', () => {
  it('round trip: header (filter included) and records, byte for byte', () => {
    fc.assert(
      fc.property(fc.array(fc.array(arbEvent, { maxLength: 20 }), { maxLength: 5 }), (chunks) => {
        const file = path()
        const bytes = chunks.map(pack)
        const w = write(file, bytes)
        const all = Buffer.concat(bytes)
        const read = readTraceFile(file)
        expect(read.header).toEqual(header)
        expect(read.count).toBe(all.byteLength / RECORD_SIZE)
        expect(w.records).toBe(read.count)
        expect(Buffer.from(read.records)).toEqual(all)
        expect(read.partialTail).toBe(0)
        // records start 8-byte aligned for typed-array views
        expect(read.records.byteOffset % 8).toBe(0)
      }),
      { numRuns: 30 },
    )
  })

  it('costs 32 bytes per record after the header', () => {
    const file = path()
    const w = write(file, [pack(Array.from({ length: 1000 }, () => event()))])
    const size = readFileSync(file).byteLength
    expect(w.bytes).toBe(size)
    const empty = path()
    write(empty, [])
    expect(size - readFileSync(empty).byteLength).toBe(1000 * 32)
  })

  it('the recorder can rewrite the header at the end (VMs seen, losses)', () => {
    const file = path()
    const w = new TraceFileWriter(file, header)
    w.write(pack([event()]))
    const vms = Array.from({ length: 20 }, (_, i) => ({ vmid: i, name: `vm-${i}` }))
    expect(w.updateHeader({ ...header, vms, dropped: 7, stoppedAt: 'later' })).toBe(true)
    // more than the room kept for it: refused, the first header stays
    expect(w.updateHeader({ ...header, source: 'x'.repeat(10_000) })).toBe(false)
    w.close()
    const read = readTraceFile(file)
    expect(read.header).toMatchObject({ vms, dropped: 7, stoppedAt: 'later' })
    expect(read.count).toBe(1)
  })

  it('a partial last record (a recorder killed mid-write) is left out and reported', () => {
    const file = path()
    write(file, [pack([event(), event({ addr: 0x70n })])])
    const data = readFileSync(file)
    writeFileSync(file, data.subarray(0, data.byteLength - 5))
    const read = readTraceFile(file)
    expect(read.count).toBe(1)
    expect(read.partialTail).toBe(27)
  })

  const good = () => {
    const file = path()
    write(file, [pack([event()])])
    return new Uint8Array(readFileSync(file))
  }

  it.each([
    ['empty', () => new Uint8Array(0), /not an hsmctl trace: no HSMTRACE header/],
    [
      'another magic',
      () => new TextEncoder().encode('PCAPFILE' + ' '.repeat(40)),
      /no HSMTRACE header/,
    ],
    ['cut in the preamble', () => good().subarray(0, 12), /the header is truncated/],
    ['cut in the header', () => good().subarray(0, 40), /the header is truncated/],
    [
      'a newer version',
      () => {
        const b = good()
        new DataView(b.buffer).setUint16(8, TRACE_VERSION + 1, true)
        return b
      },
      new RegExp(`version ${TRACE_VERSION + 1}; this hsmctl reads version ${TRACE_VERSION}`),
    ],
    [
      'another record size',
      () => {
        const b = good()
        new DataView(b.buffer).setUint16(10, 24, true)
        return b
      },
      /record size 24/,
    ],
    [
      'a header that is not JSON',
      () => {
        const b = good()
        b[16] = 0x7b // '{' then garbage
        b[17] = 0x7b
        return b
      },
      /the header is not JSON/,
    ],
  ])('%s: refused with a clear error', (_what, make, message) => {
    const file = path()
    writeFileSync(file, make())
    const error = (() => {
      try {
        readTraceFile(file)
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(UsageError)
    expect((error as Error).message).toMatch(message)
    expect((error as Error).message).toContain(file)
  })

  it('requests still pending at the stop: in the header, read back; none in older recordings', () => {
    const file = path()
    const events = [event({ t: 5, addr: 0x3f8n }), event({ t: 6, addr: 0x70n, vcpu: 1 })]
    write(file, [], {
      ...header,
      traceEnd: 9.5,
      pending: Buffer.from(pack(events)).toString('base64'),
    })
    const read = readTraceFile(file)
    expect(read.header.traceEnd).toBe(9.5)
    expect(pendingRecords(read)).toEqual({ records: pack(events), count: 2 })
    const old = path()
    write(old, [])
    expect(pendingRecords(readTraceFile(old)).count).toBe(0)
  })

  it('a header without a VM table is refused', () => {
    const json = new TextEncoder().encode('{"createdAt":"x"}')
    const bytes = new Uint8Array(16 + json.byteLength)
    bytes.set(new TextEncoder().encode('HSMTRACE'))
    const view = new DataView(bytes.buffer)
    view.setUint16(8, 1, true)
    view.setUint16(10, 32, true)
    view.setUint32(12, json.byteLength, true)
    bytes.set(json, 16)
    expect(() => parseTraceFile(bytes, 'x.hsmtrace')).toThrow(/has no VM table/)
  })

  // issue 13 item 21: "the recorder lost [object Object] requests"
  it.each([
    ['dropped', '{}', /the header's dropped is not a count/],
    ['dropped', '-3', /the header's dropped is not a count/],
    ['stoppedAt', '7', /the header's stoppedAt is not a time/],
    ['createdAt', '[]', /the header's createdAt is not a time/],
    ['pending', '"AAAA"', /the header's pending is not a list of records/],
    ['pending', '7', /the header's pending is not a list of records/],
    ['traceEnd', '"x"', /the header's traceEnd is not a time/],
    ['pendingOmitted', '1.5', /the header's pendingOmitted is not a count/],
  ])('a header whose %s is %s is refused', (key, value, message) => {
    const json = new TextEncoder().encode(`{"createdAt":"x","vms":[],"${key}":${value}}`)
    const bytes = new Uint8Array(16 + json.byteLength)
    bytes.set(new TextEncoder().encode('HSMTRACE'))
    const view = new DataView(bytes.buffer)
    view.setUint16(8, 1, true)
    view.setUint16(10, 32, true)
    view.setUint32(12, json.byteLength, true)
    bytes.set(json, 16)
    expect(() => parseTraceFile(bytes, 'x.hsmtrace')).toThrow(message)
  })

  it('a missing file is not-found (exit 3)', () => {
    expect(() => readTraceFile(join(dir, 'nope.hsmtrace'))).toThrow(NotFoundError)
  })
})
