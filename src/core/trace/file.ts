// Recording files of `ioreq record`: a versioned header, then 32-byte records.
//
//   0   8 bytes  magic "HSMTRACE"
//   8   u16      version (1)
//  10   u16      record size (32)
//  12   u32      header JSON length N
//  16   N bytes  header JSON: { createdAt, vms: [{vmid, name}], filter, source }
//  ...  padding to a multiple of 8, then records to the end of the file
//
// A recorder killed mid-write leaves a partial last record; readers ignore it and say so.

import { closeSync, openSync, readFileSync, writeSync } from 'node:fs'
import { UsageError } from '../errors.js'
import { RECORD_SIZE } from './record.js'
import type { TraceFilter } from './filter.js'

export const TRACE_MAGIC = 'HSMTRACE'
export const TRACE_VERSION = 1

export interface TraceFileHeader {
  createdAt: string
  vms: { vmid: number; name: string }[]
  filter?: TraceFilter
  source?: string
}

function headerBytes(header: TraceFileHeader): Uint8Array {
  const json = new TextEncoder().encode(
    JSON.stringify(header, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)),
  )
  const total = Math.ceil((16 + json.byteLength) / 8) * 8
  const out = new Uint8Array(total)
  out.set(new TextEncoder().encode(TRACE_MAGIC), 0)
  const view = new DataView(out.buffer)
  view.setUint16(8, TRACE_VERSION, true)
  view.setUint16(10, RECORD_SIZE, true)
  view.setUint32(12, json.byteLength, true)
  out.set(json, 16)
  return out
}

export class TraceFileWriter {
  private readonly fd: number
  records = 0

  constructor(
    readonly path: string,
    header: TraceFileHeader,
  ) {
    this.fd = openSync(path, 'w', 0o644)
    writeSync(this.fd, headerBytes(header))
  }

  /** Append whole records. */
  write(bytes: Uint8Array): void {
    if (bytes.byteLength % RECORD_SIZE !== 0) throw new RangeError('partial record')
    if (bytes.byteLength > 0) writeSync(this.fd, bytes)
    this.records += bytes.byteLength / RECORD_SIZE
  }

  close(): void {
    closeSync(this.fd)
  }
}

export interface TraceFile {
  header: TraceFileHeader
  /** The whole records, as one view over the file's bytes. */
  records: Uint8Array
  count: number
  /** Bytes of a partial last record (a recorder stopped mid-write). */
  partialTail: number
}

export function readTraceFile(path: string): TraceFile {
  let data: Buffer
  try {
    data = readFileSync(path)
  } catch (e) {
    throw new UsageError(
      `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    )
  }
  const bad = (why: string): never => {
    throw new UsageError(`${path} is not an hsmctl trace: ${why}`, {
      hint: 'record one with `hsmctl ioreq record FILE`',
    })
  }
  if (data.byteLength < 16 || data.subarray(0, 8).toString('latin1') !== TRACE_MAGIC)
    bad('no HSMTRACE header')
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const version = view.getUint16(8, true)
  if (version !== TRACE_VERSION)
    bad(`version ${version}; this hsmctl reads version ${TRACE_VERSION}`)
  if (view.getUint16(10, true) !== RECORD_SIZE) bad(`record size ${view.getUint16(10, true)}`)
  const length = view.getUint32(12, true)
  if (16 + length > data.byteLength) bad('the header is truncated')
  let header: TraceFileHeader
  try {
    header = JSON.parse(data.subarray(16, 16 + length).toString('utf8')) as TraceFileHeader
  } catch {
    return bad('the header is not JSON')
  }
  if (!Array.isArray(header.vms)) bad('the header has no VM table')
  const start = Math.ceil((16 + length) / 8) * 8
  const body = data.subarray(Math.min(start, data.byteLength))
  const count = Math.floor(body.byteLength / RECORD_SIZE)
  // copy so that the records are 8-byte aligned for typed-array views
  const records = new Uint8Array(count * RECORD_SIZE)
  records.set(body.subarray(0, count * RECORD_SIZE))
  return { header, records, count, partialTail: body.byteLength - count * RECORD_SIZE }
}
