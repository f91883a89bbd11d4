// The trace filter flags of `ioreq watch|tail|record|report`, and their translation into
// a TraceFilter (VM names become vmids using the daemon's VM table).
import { Flags } from '@oclif/core'
import { UsageError } from '../core/errors.js'
import { parseInteger } from '../core/parse/number.js'
import {
  parseAddrRange,
  parseClients,
  parseDirs,
  parseTypes,
  type TraceFilter,
} from '../core/trace/filter.js'

export const traceFilterFlags = {
  vm: Flags.string({
    description: 'Only this VM (name or vmid); repeatable.',
    multiple: true,
    helpGroup: 'FILTER',
  }),
  vcpu: Flags.string({
    description: 'Only this vCPU; repeatable.',
    multiple: true,
    helpGroup: 'FILTER',
  }),
  type: Flags.string({
    description: 'Only pio, mmio or pcicfg; repeatable.',
    multiple: true,
    helpGroup: 'FILTER',
  }),
  dir: Flags.string({ description: 'Only read or write.', multiple: true, helpGroup: 'FILTER' }),
  addr: Flags.string({
    description: 'Only addresses in FROM-TO, FROM+LEN or ADDR.',
    helpGroup: 'FILTER',
    helpValue: 'RANGE',
  }),
  client: Flags.string({
    description: 'Only default, ioeventfd or kernel; repeatable.',
    multiple: true,
    helpGroup: 'FILTER',
  }),
}

export interface TraceFilterFlagValues {
  vm?: string[]
  vcpu?: string[]
  type?: string[]
  dir?: string[]
  addr?: string
  client?: string[]
}

/** Resolve VM names (and the positional NAME list) against the daemon's VMs. */
export function filterFromFlags(
  flags: TraceFilterFlagValues,
  names: string[],
  vms: { vmid: number; name: string }[],
): TraceFilter {
  const filter: TraceFilter = {}
  const wanted = [...names, ...(flags.vm ?? [])]
  if (wanted.length) {
    filter.vmids = wanted.map((w) => {
      const byName = vms.find((v) => v.name === w)
      if (byName) return byName.vmid
      if (/^\d+$/.test(w)) return Number(w)
      throw new UsageError(`no VM named '${w}'`, { flag: '--vm', hint: 'see `hsmctl vm list`' })
    })
  }
  if (flags.vcpu?.length)
    filter.vcpus = flags.vcpu.map((v) => Number(parseInteger(v, { name: '--vcpu', max: 255n })))
  if (flags.type?.length) filter.types = parseTypes(flags.type)
  if (flags.dir?.length) filter.dirs = parseDirs(flags.dir)
  if (flags.client?.length) filter.clients = parseClients(flags.client)
  if (flags.addr) filter.addr = parseAddrRange(flags.addr)
  return filter
}

/** A filter for the wire: bigint addresses as hex strings. */
export function filterToWire(filter: TraceFilter): Record<string, unknown> {
  const { addr, ...rest } = filter
  return addr
    ? { ...rest, addr: { from: `0x${addr.from.toString(16)}`, to: `0x${addr.to.toString(16)}` } }
    : rest
}
