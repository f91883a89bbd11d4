// The trace filter flags of `ioreq watch|tail|record|report`, and their translation into
// a TraceFilter (VM names become vmids using the daemon's VM table).
import { Flags } from '@oclif/core'
import type { DaemonClient } from '../core/daemon/client.js'
import { NotFoundError } from '../core/errors.js'
import { parseInteger } from '../core/parse/number.js'
import {
  parseAddrRange,
  parseClients,
  parseDirs,
  parseTypes,
  filterToWire,
  type TraceFilter,
} from '../core/trace/filter.js'

export const traceFilterFlags = {
  vm: Flags.string({
    description: 'Only this VM (name or vmid); repeatable, or a comma-separated list.',
    multiple: true,
    helpGroup: 'FILTER',
  }),
  vcpu: Flags.string({
    description: 'Only this vCPU; repeatable, or a comma-separated list.',
    multiple: true,
    helpGroup: 'FILTER',
  }),
  type: Flags.string({
    description: 'Only pio, mmio or pcicfg; repeatable, or a comma-separated list.',
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
    description: 'Only default, ioeventfd or kernel; repeatable, or a comma-separated list.',
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

/** Repeatable flags also take comma-separated lists: `--type pio,mmio`. */
const list = (values: string[] | undefined): string[] =>
  (values ?? [])
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '')

/** Resolve VM names (and the positional NAME list) against the daemon's VMs. */
export function filterFromFlags(
  flags: TraceFilterFlagValues,
  names: string[],
  vms: { vmid: number; name: string }[],
): TraceFilter {
  const filter: TraceFilter = {}
  const wanted = [...names, ...list(flags.vm)]
  if (wanted.length) {
    filter.vmids = [
      ...new Set(
        wanted.map((w) => {
          const byName = vms.find((v) => v.name === w)
          if (byName) return byName.vmid
          if (/^\d+$/.test(w) && Number(w) <= 0xffff) return Number(w)
          throw new NotFoundError(`no VM named '${w}'`, 'see `hsmctl vm list`')
        }),
      ),
    ]
  }
  const vcpus = list(flags.vcpu)
  if (vcpus.length)
    filter.vcpus = [
      ...new Set(vcpus.map((v) => Number(parseInteger(v, { name: '--vcpu', max: 255n })))),
    ]
  if (list(flags.type).length) filter.types = [...new Set(parseTypes(list(flags.type)))]
  if (list(flags.dir).length) filter.dirs = [...new Set(parseDirs(list(flags.dir)))]
  if (list(flags.client).length) filter.clients = [...new Set(parseClients(list(flags.client)))]
  if (flags.addr) filter.addr = parseAddrRange(flags.addr)
  return filter
}

export { filterToWire }

/** `--source` of `ioreq watch|tail|record`: the daemon's trace, or what the taps reported. */
export const traceSourceFlag = Flags.string({
  description:
    'Whose view of the requests: hsmd (the daemon’s trace: on the simulation every request) or tap (only what programs under the tap reported, helper/TAP.md).',
  options: ['hsmd', 'tap'],
  default: 'hsmd',
})

/** A client whose trace calls read `source`'s requests. */
export function sourcedClient(client: DaemonClient, source: string | undefined): DaemonClient {
  if (source === undefined || source === 'hsmd') return client
  return {
    call: <T>(method: string, params?: unknown) =>
      client.call<T>(
        method,
        method.startsWith('trace.')
          ? { ...((params ?? {}) as Record<string, unknown>), source }
          : params,
      ),
    close: () => client.close(),
    closed: client.closed,
  }
}
