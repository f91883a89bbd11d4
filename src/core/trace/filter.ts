// Trace filters, as flags and as the watch view edits them live: by VM, vCPU, type,
// direction, address range and client. A filter is plain data (it travels to the daemon
// and into recording headers) with a compiled predicate for rows and records.

import { UsageError } from '../errors.js'
import { parseInteger } from '../parse/number.js'
import {
  CLIENT_NAMES,
  TYPE_NAMES,
  type RecordFilter,
  type TraceClient,
  type TraceDir,
  type TraceType,
} from './record.js'
import type { RowKey } from './stats.js'

export interface TraceFilter {
  /** vmids (names are resolved to vmids before the filter is compiled). */
  vmids?: number[]
  vcpus?: number[]
  types?: TraceType[]
  dirs?: TraceDir[]
  clients?: TraceClient[]
  /** Inclusive address range. */
  addr?: { from: bigint; to: bigint }
}

const TYPES: readonly TraceType[] = ['pio', 'mmio', 'pcicfg']
const DIRS: readonly TraceDir[] = ['read', 'write']
const CLIENTS: readonly TraceClient[] = ['default', 'ioeventfd', 'kernel']

function oneOf<T extends string>(values: readonly T[], text: string, flag: string): T {
  const v = text.trim().toLowerCase()
  const alias: Record<string, string> = {
    r: 'read',
    w: 'write',
    in: 'read',
    out: 'write',
    port: 'pio',
    pci: 'pcicfg',
  }
  const found = values.find((x) => x === (alias[v] ?? v))
  if (!found) throw new UsageError(`'${text}' is not one of ${values.join(', ')}`, { flag })
  return found
}

export const parseTypes = (list: string[]) => list.map((t) => oneOf(TYPES, t, '--type'))
export const parseDirs = (list: string[]) => list.map((t) => oneOf(DIRS, t, '--dir'))
export const parseClients = (list: string[]) => list.map((t) => oneOf(CLIENTS, t, '--client'))

/** `0x3f8-0x3ff`, `0xfed00000+0x1000` or a single address. */
export function parseAddrRange(text: string, flag = '--addr'): { from: bigint; to: bigint } {
  const plus = text.split('+')
  if (plus.length === 2) {
    const from = parseInteger(plus[0]!, { name: flag })
    const len = parseInteger(plus[1]!, { name: flag, min: 1n })
    return { from, to: from + len - 1n }
  }
  const dash = text.split('-')
  if (dash.length > 2)
    throw new UsageError(`'${text}' is not an address range`, {
      flag,
      hint: 'FROM-TO, FROM+LEN or ADDR',
    })
  const from = parseInteger(dash[0]!, { name: flag })
  const to = dash.length === 2 ? parseInteger(dash[1]!, { name: flag }) : from
  if (to < from) throw new UsageError(`'${text}' ends before it starts`, { flag })
  return { from, to }
}

/** True when the filter lets everything through. */
export function isEmptyFilter(filter: TraceFilter): boolean {
  return (
    !filter.vmids?.length &&
    !filter.vcpus?.length &&
    !filter.types?.length &&
    !filter.dirs?.length &&
    !filter.clients?.length &&
    !filter.addr
  )
}

/**
 * The filter as a predicate over rows. A row whose vCPUs are merged (vcpu -1) passes a
 * vCPU filter: the merge happened after the filter, on the daemon's side.
 */
export function compileFilter(filter: TraceFilter): (key: RowKey) => boolean {
  const vmids = filter.vmids?.length ? new Set(filter.vmids) : undefined
  const vcpus = filter.vcpus?.length ? new Set(filter.vcpus) : undefined
  const types = filter.types?.length ? new Set(filter.types) : undefined
  const dirs = filter.dirs?.length ? new Set(filter.dirs) : undefined
  const clients = filter.clients?.length ? new Set(filter.clients) : undefined
  const addr = filter.addr
  return (k) =>
    (!vmids || vmids.has(k.vmid)) &&
    (!vcpus || k.vcpu < 0 || vcpus.has(k.vcpu)) &&
    (!types || types.has(k.type)) &&
    (!dirs || dirs.has(k.dir)) &&
    (!clients || clients.has(k.client)) &&
    (!addr || (k.addr >= addr.from && k.addr <= addr.to))
}

/**
 * The filter as a predicate over records in place (see RecordFilter), for the daemon's
 * ring scans and recordings: table lookups on the word holding vmid, vCPU and flags, and
 * the address compared as two u32 halves, so nothing is allocated per record. Undefined
 * when the filter lets everything through.
 */
export function compileRecordFilter(filter: TraceFilter): RecordFilter | undefined {
  if (isEmptyFilter(filter)) return undefined
  const vmids = filter.vmids?.length ? new Set(filter.vmids) : undefined
  let vcpus: Uint8Array | undefined
  if (filter.vcpus?.length) {
    vcpus = new Uint8Array(256)
    for (const v of filter.vcpus) if (v >= 0 && v < 256) vcpus[v] = 1
  }
  // type (bits 1:0), write (bit 2) and client (bits 4:3) of the flags byte, as a table
  const flagsOk = new Uint8Array(32)
  for (let f = 0; f < 32; f++) {
    const type = TYPE_NAMES[f & 3]
    const client = CLIENT_NAMES[(f >> 3) & 3]
    const dir: TraceDir = f & 4 ? 'write' : 'read'
    flagsOk[f] =
      type !== undefined &&
      client !== undefined &&
      (!filter.types?.length || filter.types.includes(type)) &&
      (!filter.dirs?.length || filter.dirs.includes(dir)) &&
      (!filter.clients?.length || filter.clients.includes(client))
        ? 1
        : 0
  }
  const split = (v: bigint) => [Number(v >> 32n), Number(v & 0xffff_ffffn)] as const
  const [fromHi, fromLo] = filter.addr ? split(filter.addr.from) : [0, 0]
  const [toHi, toLo] = filter.addr ? split(filter.addr.to) : [0, 0]
  const addr = filter.addr !== undefined
  return (w, o) => {
    const meta = w[o + 7]!
    if (flagsOk[(meta >>> 24) & 31] === 0) return false
    if (vcpus && vcpus[(meta >>> 16) & 0xff] === 0) return false
    if (vmids && !vmids.has(meta & 0xffff)) return false
    if (addr) {
      const hi = w[o + 3]!
      const lo = w[o + 2]!
      if (hi < fromHi || (hi === fromHi && lo < fromLo)) return false
      if (hi > toHi || (hi === toHi && lo > toLo)) return false
    }
    return true
  }
}

/** The filter in words, for the watch header: "vm 1,2 type pio dir write". */
export function describeFilter(
  filter: TraceFilter,
  vmNames: (vmid: number) => string = String,
): string {
  const parts: string[] = []
  if (filter.vmids?.length) parts.push(`vm ${filter.vmids.map(vmNames).join(',')}`)
  if (filter.vcpus?.length) parts.push(`vcpu ${filter.vcpus.join(',')}`)
  if (filter.types?.length) parts.push(`type ${filter.types.join(',')}`)
  if (filter.dirs?.length) parts.push(`dir ${filter.dirs.join(',')}`)
  if (filter.clients?.length) parts.push(`client ${filter.clients.join(',')}`)
  if (filter.addr)
    parts.push(`addr 0x${filter.addr.from.toString(16)}-0x${filter.addr.to.toString(16)}`)
  return parts.join(' ') || 'none'
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
    const from = parseInteger(String(a.from), { name: 'filter.addr.from' })
    const to = parseInteger(String(a.to ?? a.from), { name: 'filter.addr.to' })
    if (to < from) throw new UsageError("param 'filter.addr': the range ends before it starts")
    out.addr = { from, to }
  }
  return out
}

/** A filter for the wire and for recording headers: bigint addresses as hex strings. */
export function filterToWire(filter: TraceFilter): Record<string, unknown> {
  const { addr, ...rest } = filter
  return addr
    ? { ...rest, addr: { from: `0x${addr.from.toString(16)}`, to: `0x${addr.to.toString(16)}` } }
    : rest
}
