// The watch view's filter as the user types it (`f`): field/value pairs, e.g.
//   type pio dir write vm demo addr 0x3f0-0x3ff client default vcpu 0
// Lists are comma-separated (`type pio,mmio`), a field may repeat, `field=value` works
// too, and the value words alone (`pio write`) say which field they belong to. An empty
// line (or `all`) clears the filter.
//
// VMs stay names here: the view resolves them against the daemon's VM table on every
// sample, which is what lets it notice a VM going away and pick up its successor.

import { UsageError } from '../../core/errors.js'
import { parseInteger } from '../../core/parse/number.js'
import {
  parseAddrRange,
  parseClients,
  parseDirs,
  parseTypes,
  type TraceFilter,
} from '../../core/trace/filter.js'
import type { TraceClient, TraceDir, TraceType } from '../../core/trace/record.js'

export interface FilterSpec {
  /** VM names, or vmids as typed. */
  vms?: string[]
  vcpus?: number[]
  types?: TraceType[]
  dirs?: TraceDir[]
  clients?: TraceClient[]
  addr?: { from: bigint; to: bigint }
}

type Field = 'vm' | 'vcpu' | 'type' | 'dir' | 'client' | 'addr'

const FIELDS: Readonly<Record<string, Field>> = {
  vm: 'vm',
  vms: 'vm',
  vcpu: 'vcpu',
  vcpus: 'vcpu',
  type: 'type',
  types: 'type',
  dir: 'dir',
  direction: 'dir',
  client: 'client',
  clients: 'client',
  addr: 'addr',
  address: 'addr',
  range: 'addr',
}

/** Value words that name their field. */
const BARE: Readonly<Record<string, Field>> = {
  pio: 'type',
  mmio: 'type',
  pcicfg: 'type',
  read: 'dir',
  write: 'dir',
  default: 'client',
  ioeventfd: 'client',
  kernel: 'client',
}

export const FILTER_FIELDS_HELP = 'vm, vcpu, type, dir, addr, client'

/** A parser's UsageError, reworded for the line editor (no `--flag:` prefix). */
function reword<T>(field: string, parse: () => T): T {
  try {
    return parse()
  } catch (e) {
    if (!(e instanceof UsageError)) throw e
    const message = e.message.replace(/^--?[\w.-]+: /, '')
    throw new UsageError(`${field}: ${message}`, e.hint ? { hint: e.hint } : {})
  }
}

const uniq = <T>(list: T[]): T[] => [...new Set(list)]

function addValues(spec: FilterSpec, field: Field, value: string): void {
  const list = value
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '')
  if (list.length === 0) throw new UsageError(`${field}: needs a value`)
  switch (field) {
    case 'vm':
      spec.vms = uniq([...(spec.vms ?? []), ...list])
      break
    case 'vcpu':
      spec.vcpus = uniq([
        ...(spec.vcpus ?? []),
        ...list.map((v) => reword('vcpu', () => Number(parseInteger(v, { max: 255n })))),
      ])
      break
    case 'type':
      spec.types = uniq([...(spec.types ?? []), ...reword('type', () => parseTypes(list))])
      break
    case 'dir':
      spec.dirs = uniq([...(spec.dirs ?? []), ...reword('dir', () => parseDirs(list))])
      break
    case 'client':
      spec.clients = uniq([...(spec.clients ?? []), ...reword('client', () => parseClients(list))])
      break
    case 'addr':
      if (list.length > 1) throw new UsageError('addr: one range (FROM-TO, FROM+LEN or ADDR)')
      spec.addr = reword('addr', () => parseAddrRange(list[0]!))
      break
  }
}

/** Parse a filter line; throws UsageError with a message fit for the status line. */
export function parseFilterLine(text: string): FilterSpec {
  const words = text.trim().split(/\s+/).filter(Boolean)
  const spec: FilterSpec = {}
  if (words.length === 1 && /^(all|none|clear|-)$/i.test(words[0]!)) return spec
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!
    const eq = word.indexOf('=')
    const head = (eq > 0 ? word.slice(0, eq) : word).toLowerCase()
    const field = FIELDS[head]
    if (field) {
      const value = eq > 0 ? word.slice(eq + 1) : words[++i]
      if (value === undefined || value === '') throw new UsageError(`${head}: needs a value`)
      addValues(spec, field, value)
      continue
    }
    const bare = BARE[word.toLowerCase()]
    if (bare) {
      addValues(spec, bare, word)
      continue
    }
    throw new UsageError(`'${word}' is not a filter field`, {
      hint: `fields: ${FILTER_FIELDS_HELP}`,
    })
  }
  return spec
}

/** The spec as a line that parses back to it (the editor starts from it). */
export function filterLineText(spec: FilterSpec): string {
  const parts: string[] = []
  if (spec.vms?.length) parts.push(`vm ${spec.vms.join(',')}`)
  if (spec.vcpus?.length) parts.push(`vcpu ${spec.vcpus.join(',')}`)
  if (spec.types?.length) parts.push(`type ${spec.types.join(',')}`)
  if (spec.dirs?.length) parts.push(`dir ${spec.dirs.join(',')}`)
  if (spec.clients?.length) parts.push(`client ${spec.clients.join(',')}`)
  if (spec.addr) parts.push(`addr 0x${spec.addr.from.toString(16)}-0x${spec.addr.to.toString(16)}`)
  return parts.join(' ')
}

export interface ResolvedFilter {
  /**
   * The filter with VMs as vmids. When VMs are asked for and none of them exists, vmids
   * is [-1], which no record has (this filter stays on the client side).
   */
  filter: TraceFilter
  /** Each asked-for VM and the vmid it has now (undefined: gone, or not there yet). */
  bound: { vm: string; vmid: number | undefined; name: string | undefined }[]
  gone: string[]
}

/** Bind the spec's VMs to the daemon's VM table: by name first, then as a vmid. */
export function resolveFilter(
  spec: FilterSpec,
  vms: readonly { vmid: number; name: string }[],
): ResolvedFilter {
  const { vms: wanted, ...rest } = spec
  const filter: TraceFilter = { ...rest }
  if (!wanted?.length) return { filter, bound: [], gone: [] }
  const bound = wanted.map((vm) => {
    const match =
      vms.find((v) => v.name === vm) ??
      (/^\d+$/.test(vm) ? vms.find((v) => v.vmid === Number(vm)) : undefined)
    return { vm, vmid: match?.vmid, name: match?.name }
  })
  const vmids = uniq(bound.flatMap((b) => (b.vmid === undefined ? [] : [b.vmid])))
  filter.vmids = vmids.length ? vmids : [-1]
  return { filter, bound, gone: bound.filter((b) => b.vmid === undefined).map((b) => b.vm) }
}

const list = (values: string[] | undefined): string[] =>
  (values ?? [])
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '')

/** The spec of the command line: positional VM names, then the filter flags. */
export function specFromFlags(
  flags: {
    vm?: string[]
    vcpu?: string[]
    type?: string[]
    dir?: string[]
    addr?: string
    client?: string[]
  },
  names: string[] = [],
): FilterSpec {
  const spec: FilterSpec = {}
  const vms = [...names, ...list(flags.vm)]
  if (vms.length) spec.vms = uniq(vms)
  const vcpus = list(flags.vcpu)
  if (vcpus.length)
    spec.vcpus = uniq(vcpus.map((v) => Number(parseInteger(v, { name: '--vcpu', max: 255n }))))
  if (list(flags.type).length) spec.types = uniq(parseTypes(list(flags.type)))
  if (list(flags.dir).length) spec.dirs = uniq(parseDirs(list(flags.dir)))
  if (list(flags.client).length) spec.clients = uniq(parseClients(list(flags.client)))
  if (flags.addr) spec.addr = parseAddrRange(flags.addr)
  return spec
}
