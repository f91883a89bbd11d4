// Trace filters, as flags and as the watch view edits them live: by VM, vCPU, type,
// direction, address range and client. A filter is plain data (it travels to the daemon
// and into recording headers) with a compiled predicate for rows and records.

import { UsageError } from '../errors.js'
import { parseInteger } from '../parse/number.js'
import type { TraceClient, TraceDir, TraceType } from './record.js'
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
