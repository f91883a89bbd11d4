// Recording files of `ioreq record`: a versioned header, then 32-byte records.
//
//   0   8 bytes  magic "HSMTRACE"
//   8   u16      version (1)
//  10   u16      record size (32)
//  12   u32      header JSON length N
//  16   N bytes  header JSON: { createdAt, vms: [{vmid, name}], filter, source, ... },
//                padded with spaces so that the recorder can rewrite it in place at the end
//  ...  padding to a multiple of 8, then records to the end of the file
//
// A recorder killed mid-write leaves a partial last record; readers ignore it and say so.

import { closeSync, writeSync } from 'node:fs'
import { UsageError } from '../errors.js'
import { openUserFileForWrite, readUserFile } from '../user-file.js'
import { RECORD_SIZE } from './record.js'
import { filterFromWire, filterToWire, type TraceFilter } from './filter.js'

export const TRACE_MAGIC = 'HSMTRACE'
export const TRACE_VERSION = 1
const PREAMBLE = 16
/** Room kept in the header for what the recorder learns while it runs (VMs created). */
const HEADER_ROOM = 4096

export interface TraceFileHeader {
  createdAt: string
  vms: { vmid: number; name: string }[]
  filter?: TraceFilter
  source?: string
  /** Filled in when the recorder stops. */
  stoppedAt?: string
  /** Records the recorder lost because the daemon's ring overran it. */
  dropped?: number
  /**
   * Requests still pending when the recorder stopped (where the daemon can say: the
   * simulation), as base64 of 32-byte records whose latency is 0; the records above hold
   * completed requests only. Absent from older recordings.
   */
  pending?: string
  /** Pending requests the header had no room for. */
  pendingOmitted?: number
  /** The trace clock (ms, as records' t) when the recorder stopped: where pending ones end. */
  traceEnd?: number
}

function headerJson(header: TraceFileHeader): Uint8Array {
  const { filter, ...rest } = header
  return new TextEncoder().encode(
    JSON.stringify(filter ? { ...rest, filter: filterToWire(filter) } : rest),
  )
}

function headerBytes(json: Uint8Array, room: number): Uint8Array {
  const length = Math.max(json.byteLength, room)
  const out = new Uint8Array(Math.ceil((PREAMBLE + length) / 8) * 8).fill(0x20)
  out.set(new TextEncoder().encode(TRACE_MAGIC), 0)
  const view = new DataView(out.buffer)
  view.setUint16(8, TRACE_VERSION, true)
  view.setUint16(10, RECORD_SIZE, true)
  view.setUint32(12, length, true)
  out.set(json, PREAMBLE)
  return out
}

export class TraceFileWriter {
  private readonly fd: number
  private readonly headerSize: number
  records = 0
  bytes = 0

  constructor(
    readonly path: string,
    header: TraceFileHeader,
  ) {
    const json = headerJson(header)
    const head = headerBytes(json, json.byteLength + HEADER_ROOM)
    this.fd = openUserFileForWrite(path, { flag: 'FILE' })
    writeSync(this.fd, head)
    this.headerSize = head.byteLength
    this.bytes = head.byteLength
  }

  /** Append whole records. */
  write(bytes: Uint8Array): void {
    if (bytes.byteLength % RECORD_SIZE !== 0) throw new RangeError('partial record')
    let done = 0
    while (done < bytes.byteLength) done += writeSync(this.fd, bytes, done)
    this.records += bytes.byteLength / RECORD_SIZE
    this.bytes += bytes.byteLength
  }

  /**
   * Rewrite the header in place (the VMs seen, the stop time, losses). Returns false,
   * leaving the first header, when the new one does not fit the room kept for it.
   */
  updateHeader(header: TraceFileHeader): boolean {
    const json = headerJson(header)
    const head = headerBytes(json, this.headerSize - PREAMBLE)
    if (head.byteLength !== this.headerSize) return false
    writeSync(this.fd, head, 0, head.byteLength, 0)
    return true
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

/** Parse a recording from its bytes; `path` names it in errors. */
export function parseTraceFile(data: Uint8Array, path: string): TraceFile {
  const bad = (why: string): never => {
    throw new UsageError(`${path} is not an hsmctl trace: ${why}`, {
      hint: 'record one with `hsmctl ioreq record FILE`',
    })
  }
  const magic = new TextDecoder('latin1').decode(data.subarray(0, 8))
  if (data.byteLength < 8 || magic !== TRACE_MAGIC) bad('no HSMTRACE header')
  if (data.byteLength < PREAMBLE) bad('the header is truncated')
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const version = view.getUint16(8, true)
  if (version !== TRACE_VERSION) {
    throw new UsageError(
      `${path} is an hsmctl trace of version ${version}; this hsmctl reads version ${TRACE_VERSION}`,
      {
        hint:
          version > TRACE_VERSION
            ? 'report it with the hsmctl that recorded it, or upgrade this one'
            : 'record it again with this hsmctl',
      },
    )
  }
  if (view.getUint16(10, true) !== RECORD_SIZE) bad(`record size ${view.getUint16(10, true)}`)
  const length = view.getUint32(12, true)
  if (PREAMBLE + length > data.byteLength) bad('the header is truncated')
  let raw: Record<string, unknown>
  try {
    raw = JSON.parse(
      new TextDecoder().decode(data.subarray(PREAMBLE, PREAMBLE + length)),
    ) as Record<string, unknown>
  } catch {
    return bad('the header is not JSON')
  }
  if (typeof raw !== 'object' || raw === null || !Array.isArray(raw.vms))
    bad('the header has no VM table')
  const vms = (raw.vms as unknown[]).filter(
    (v): v is { vmid: number; name: string } =>
      typeof v === 'object' &&
      v !== null &&
      Number.isInteger((v as { vmid?: unknown }).vmid) &&
      typeof (v as { name?: unknown }).name === 'string',
  )
  // fields a reader prints: of the type the recorder writes, or the file is not one of ours
  for (const key of ['createdAt', 'stoppedAt', 'source'] as const) {
    if (raw[key] !== undefined && typeof raw[key] !== 'string')
      bad(`the header's ${key} is not a ${key === 'source' ? 'string' : 'time'}`)
  }
  if (
    raw.dropped !== undefined &&
    !(Number.isSafeInteger(raw.dropped) && (raw.dropped as number) >= 0)
  )
    bad("the header's dropped is not a count")
  if (
    raw.pendingOmitted !== undefined &&
    !(Number.isSafeInteger(raw.pendingOmitted) && (raw.pendingOmitted as number) >= 0)
  )
    bad("the header's pendingOmitted is not a count")
  if (raw.traceEnd !== undefined && !Number.isFinite(raw.traceEnd))
    bad("the header's traceEnd is not a time")
  if (
    raw.pending !== undefined &&
    (typeof raw.pending !== 'string' ||
      !/^[A-Za-z0-9+/]*={0,2}$/.test(raw.pending) ||
      Buffer.from(raw.pending, 'base64').byteLength % RECORD_SIZE !== 0 ||
      raw.traceEnd === undefined)
  )
    bad("the header's pending is not a list of records")
  let filter: TraceFilter | undefined
  try {
    filter = raw.filter === undefined ? undefined : filterFromWire(raw.filter)
  } catch {
    bad('the header has a malformed filter')
  }
  const header: TraceFileHeader = {
    ...(raw as object),
    createdAt: typeof raw.createdAt === 'string' ? raw.createdAt : '',
    vms,
    ...(filter ? { filter } : {}),
  } as TraceFileHeader
  const start = Math.ceil((PREAMBLE + length) / 8) * 8
  const body = data.subarray(Math.min(start, data.byteLength))
  const count = Math.floor(body.byteLength / RECORD_SIZE)
  // copy so that the records are 8-byte aligned for typed-array views
  const records = new Uint8Array(count * RECORD_SIZE)
  records.set(body.subarray(0, count * RECORD_SIZE))
  return { header, records, count, partialTail: body.byteLength - count * RECORD_SIZE }
}

/**
 * How long a recording ran, in ms: from the recorder's start to its stop (the header's
 * times), or, for a recorder killed before it wrote its stop time, from the first request
 * to the last. A report's rates are requests over this span.
 */
export function recordingSpanMs(file: TraceFile): number {
  const start = Date.parse(file.header.createdAt)
  const stop = file.header.stoppedAt === undefined ? NaN : Date.parse(file.header.stoppedAt)
  if (stop >= start) return stop - start
  const view = new DataView(file.records.buffer, file.records.byteOffset, file.records.byteLength)
  let first = Infinity
  let last = -Infinity
  for (let o = 0; o < file.records.byteLength; o += RECORD_SIZE) {
    const t = view.getFloat64(o, true)
    if (t < first) first = t
    if (t > last) last = t
  }
  return last > first ? last - first : 0
}

/** The requests still pending when the recorder stopped (none for older recordings). */
export function pendingRecords(file: TraceFile): { records: Uint8Array; count: number } {
  const bytes = file.header.pending ? Buffer.from(file.header.pending, 'base64') : Buffer.alloc(0)
  // a copy, 8-byte aligned for typed-array views
  const records = new Uint8Array(bytes.byteLength)
  records.set(bytes)
  return { records, count: records.byteLength / RECORD_SIZE }
}

export function readTraceFile(path: string): TraceFile {
  return parseTraceFile(readUserFile(path, { flag: 'FILE' }), path)
}
