// The daemon's trace methods: live statistics (`trace.stats`) for the top view, raw
// records from a cursor (`trace.read`) for the log view and recorders. Filters and VM
// names travel as plain data; 64-bit values as hex strings.

import { UsageError } from '../errors.js'
import type { Handler } from '../daemon/server.js'
import { compileFilter, compileRecordFilter, filterFromWire, type TraceFilter } from './filter.js'
import type { TraceHub } from './hub.js'
import { RECORD_SIZE, RECORD_WORDS } from './record.js'
import type { TraceRow } from './stats.js'

export { filterFromWire }

export interface TraceVm {
  vmid: number
  name: string
}

export interface StatsReply {
  /** Daemon clock (performance.now() ms) when the rows were taken. */
  t: number
  published: number
  rowCount: number
  rows: TraceRow[]
  vms: TraceVm[]
}

export interface ReadReply {
  cursor: number
  dropped: number
  count: number
  /** Records that passed the filter; with `tail`, `count` holds only the newest of them. */
  matched: number
  /** The daemon's head cursor when it answered: a reader is caught up when cursor >= it. */
  published: number
  /** base64 of `count` 32-byte records. */
  records: string
  vms: TraceVm[]
  /**
   * With `pending: true`, where the daemon can say (the simulation): the requests that
   * passed the filter and are outstanding now (base64 records, latency 0), and the trace
   * clock (ms) when they were taken.
   */
  pending?: { records: string; now: number }
}

/**
 * Most records one reply carries: base64 makes 43 bytes of each, and a line on the socket
 * may not exceed MAX_LINE (1 MiB). Readers loop on `cursor` until it reaches `published`.
 */
export const READ_MAX = 16_384

/** Keep the records of `bytes` that pass the filter (copying only when something is dropped). */
export function filterRecords(bytes: Uint8Array, filter: TraceFilter): Uint8Array {
  const keep = compileRecordFilter(filter)
  if (!keep) return bytes
  const n = Math.floor(bytes.byteLength / RECORD_SIZE)
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice()
  const words = new Uint32Array(aligned.buffer, aligned.byteOffset, n * RECORD_WORDS)
  const out = new Uint8Array(n * RECORD_SIZE)
  let kept = 0
  for (let i = 0; i < n; i++) {
    if (!keep(words, i * RECORD_WORDS)) continue
    out.set(aligned.subarray(i * RECORD_SIZE, (i + 1) * RECORD_SIZE), kept * RECORD_SIZE)
    kept++
  }
  return out.subarray(0, kept * RECORD_SIZE)
}

export function traceMethods(hub: TraceHub, vms: () => TraceVm[]): Record<string, Handler> {
  // The statistics of a destroyed VM are dropped when a reader next asks, so that a VM
  // given its vmid later starts from zero. (A destroy and a create between two reads go
  // unnoticed here; the daemon also calls hub.forgetVm when the VM manager destroys one.)
  let known = new Set<number>()
  const current = (): TraceVm[] => {
    const list = vms()
    const now = new Set(list.map((v) => v.vmid))
    for (const vmid of known) if (!now.has(vmid)) hub.forgetVm(vmid)
    known = now
    return list
  }
  return {
    'trace.stats': (params) => {
      const p = (params ?? {}) as { filter?: unknown; byVcpu?: unknown; histograms?: unknown }
      const keep = compileFilter(filterFromWire(p.filter))
      const list = current()
      // histograms only for a view that resets (they are most of a reply's bytes)
      const rows = hub.stats.rows(keep, p.byVcpu === true, { histograms: p.histograms === true })
      const reply: StatsReply = {
        t: performance.now(),
        published: hub.published,
        rowCount: rows.length,
        rows,
        vms: list,
      }
      return reply
    },
    'trace.read': (params) => {
      const p = (params ?? {}) as {
        cursor?: unknown
        max?: unknown
        filter?: unknown
        tail?: unknown
        pending?: unknown
      }
      const cursor = p.cursor === undefined ? hub.published : Number(p.cursor)
      if (!Number.isSafeInteger(cursor) || cursor < 0)
        throw new UsageError("param 'cursor': expected a record number")
      const max = p.max === undefined ? READ_MAX : Number(p.max)
      if (!Number.isSafeInteger(max) || max < 0 || max > 1_000_000)
        throw new UsageError("param 'max': expected 0..1000000")
      if (p.tail !== undefined && typeof p.tail !== 'boolean')
        throw new UsageError("param 'tail': expected true or false")
      if (p.pending !== undefined && typeof p.pending !== 'boolean')
        throw new UsageError("param 'pending': expected true or false")
      const keep = compileRecordFilter(filterFromWire(p.filter))
      const list = current()
      const limit = Math.min(max, READ_MAX)
      const read =
        p.tail === true
          ? hub.ring.readTail(cursor, limit, keep)
          : hub.ring.read(cursor, limit, keep)
      hub.dropped += read.dropped
      const reply: ReadReply = {
        cursor: read.cursor,
        dropped: read.dropped,
        count: read.bytes.byteLength / RECORD_SIZE,
        matched: read.matched,
        published: hub.published,
        records: Buffer.from(
          read.bytes.buffer,
          read.bytes.byteOffset,
          read.bytes.byteLength,
        ).toString('base64'),
        vms: list,
      }
      const outstanding = p.pending === true ? hub.outstandingRecords() : undefined
      if (outstanding) {
        const kept = filterRecords(outstanding.records, filterFromWire(p.filter))
        reply.pending = {
          records: Buffer.from(kept.buffer, kept.byteOffset, kept.byteLength).toString('base64'),
          now: outstanding.now,
        }
      }
      return reply
    },
  }
}
