// The daemon's trace methods: live statistics (`trace.stats`) for the top view, raw
// records from a cursor (`trace.read`) for the log view and recorders. Filters and VM
// names travel as plain data; 64-bit values as hex strings.

import { UsageError } from '../errors.js'
import type { Handler } from '../daemon/server.js'
import { parseInteger } from '../parse/number.js'
import { compileFilter, type TraceFilter } from './filter.js'
import type { TraceHub } from './hub.js'
import {
  RECORD_SIZE,
  TYPE_NAMES,
  CLIENT_NAMES,
  type TraceClient,
  type TraceDir,
  type TraceType,
} from './record.js'
import type { TraceRow } from './stats.js'

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
  /** base64 of `count` 32-byte records. */
  records: string
  vms: TraceVm[]
}

const nums = (v: unknown, what: string): number[] | undefined => {
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffff)) {
    throw new UsageError(`param 'filter.${what}': expected a list of small integers`)
  }
  return v as number[]
}

const names = <T extends string>(
  v: unknown,
  allowed: readonly T[],
  what: string,
): T[] | undefined => {
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v) || !v.every((x) => allowed.includes(x as T))) {
    throw new UsageError(`param 'filter.${what}': expected some of ${allowed.join(', ')}`)
  }
  return v as T[]
}

/** A filter from a socket message: checked like any other user input. */
export function filterFromWire(raw: unknown): TraceFilter {
  if (raw === undefined || raw === null) return {}
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw new UsageError("param 'filter': expected an object")
  const f = raw as Record<string, unknown>
  const out: TraceFilter = {}
  const vmids = nums(f.vmids, 'vmids')
  if (vmids) out.vmids = vmids
  const vcpus = nums(f.vcpus, 'vcpus')
  if (vcpus) out.vcpus = vcpus
  const types = names<TraceType>(f.types, TYPE_NAMES, 'types')
  if (types) out.types = types
  const dirs = names<TraceDir>(f.dirs, ['read', 'write'], 'dirs')
  if (dirs) out.dirs = dirs
  const clients = names<TraceClient>(f.clients, CLIENT_NAMES, 'clients')
  if (clients) out.clients = clients
  if (f.addr !== undefined && f.addr !== null) {
    const a = f.addr as { from?: unknown; to?: unknown }
    if (typeof a !== 'object' || (typeof a.from !== 'string' && typeof a.from !== 'number')) {
      throw new UsageError("param 'filter.addr': expected {from, to}")
    }
    out.addr = { from: parseInteger(String(a.from)), to: parseInteger(String(a.to ?? a.from)) }
  }
  return out
}

/** Keep the records of `bytes` that pass the filter (copying only when something is dropped). */
export function filterRecords(bytes: Uint8Array, filter: TraceFilter): Uint8Array {
  const keep = compileFilter(filter)
  if (Object.keys(filter).length === 0) return bytes
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out = new Uint8Array(bytes.byteLength)
  let n = 0
  for (let off = 0; off < bytes.byteLength; off += RECORD_SIZE) {
    const flags = view.getUint8(off + 31)
    const pass = keep({
      vmid: view.getUint16(off + 28, true),
      vcpu: view.getUint8(off + 30),
      type: TYPE_NAMES[flags & 3] ?? 'pio',
      dir: flags & 4 ? 'write' : 'read',
      client: CLIENT_NAMES[(flags >> 3) & 3] ?? 'default',
      addr: view.getBigUint64(off + 8, true),
    })
    if (pass) {
      out.set(bytes.subarray(off, off + RECORD_SIZE), n * RECORD_SIZE)
      n++
    }
  }
  return out.subarray(0, n * RECORD_SIZE)
}

export function traceMethods(hub: TraceHub, vms: () => TraceVm[]): Record<string, Handler> {
  return {
    'trace.stats': (params) => {
      const p = (params ?? {}) as { filter?: unknown; byVcpu?: unknown }
      const keep = compileFilter(filterFromWire(p.filter))
      const rows = hub.stats.rows(keep, p.byVcpu === true)
      const reply: StatsReply = {
        t: performance.now(),
        published: hub.published,
        rowCount: rows.length,
        rows,
        vms: vms(),
      }
      return reply
    },
    'trace.read': (params) => {
      const p = (params ?? {}) as { cursor?: unknown; max?: unknown; filter?: unknown }
      const cursor = p.cursor === undefined ? hub.published : Number(p.cursor)
      if (!Number.isSafeInteger(cursor) || cursor < 0)
        throw new UsageError("param 'cursor': expected a record number")
      const max = p.max === undefined ? 50_000 : Number(p.max)
      if (!Number.isSafeInteger(max) || max < 0 || max > 1_000_000)
        throw new UsageError("param 'max': expected 0..1000000")
      const read = hub.read(cursor, max)
      const bytes = filterRecords(read.bytes, filterFromWire(p.filter))
      const reply: ReadReply = {
        cursor: read.cursor,
        dropped: read.dropped,
        count: bytes.byteLength / RECORD_SIZE,
        records: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'),
        vms: vms(),
      }
      return reply
    },
  }
}
