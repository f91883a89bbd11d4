// A whole VM in one file (UX.md, "Scripting"): what `vm apply -f` creates and `vm dump`
// prints back. YAML or JSON; numbers may be written as in flags (0x1000, 64M, 00:1f.3),
// and every problem is reported with the file and the path of the offending value.

import { parse as parseYaml, stringify as stringifyYaml } from 'yaml'
import { UsageError } from '../errors.js'
import { parseAccess, formatAccess } from '../parse/access.js'
import { formatBdf, parsePackedBdf } from '../parse/bdf.js'
import { formatPciId } from '../parse/pci-id.js'
import { parseMsiAddress, parseMsiData } from '../parse/msi.js'
import { parseInteger, formatHex } from '../parse/number.js'
import { parseSize, formatSize } from '../parse/size.js'
import { parseVmFlag, vmFlagNames } from './flags.js'

export type VmRunState = 'created' | 'running' | 'paused'

/** The vCPU entry states `vm regs set --preset` knows (issue 10: acrn-dm's and vm-sample's). */
export const REGS_PRESETS = ['real-mode', 'protected-mode', 'long-mode'] as const
export type RegsPreset = (typeof REGS_PRESETS)[number]

export interface MemsegSpec {
  gpa: bigint
  size: bigint
  type: 'ram' | 'mmio'
  /** EPT access bits (r=1, w=2, x=4). */
  access: number
  /** MMIO: the host physical address mapped at gpa. */
  hpa?: bigint
  /** RAM: a payload loaded at gpa (path, relative to the spec file). */
  file?: string
}

export interface RegsSpec {
  vcpu: number
  preset: RegsPreset
  rip?: bigint
  rsp?: bigint
  cr0?: bigint
  cr3?: bigint
  cr4?: bigint
}

export interface PtdevSpec {
  phys: number
  virt: number
  quirk: boolean
  /** INTx/MSI routing set with SET_PTDEV_INTR (§7.4). */
  intr?: { type: 'intx' | 'msi' | 'msix'; virtPin: number; physPin: number; picPin: boolean }
}

export interface MmiodevSpec {
  devName: string
  res: { gpa: bigint; hpa: bigint; size: bigint; memType: bigint }[]
}

export interface VdevSpec {
  vendor: number
  device: number
  legacyId: number
  slot: bigint
  ioAddr: number[]
  ioSize: number[]
}

export interface IoeventfdSpec {
  addr: bigint
  len: number
  pio: boolean
  datamatch?: bigint
}

export interface IrqfdSpec {
  msiAddr: bigint
  msiData: bigint
}

export interface VmSpec {
  name: string
  vcpus?: number
  cpuAffinity?: bigint
  flags: bigint
  memory: MemsegSpec[]
  regs: RegsSpec[]
  ptdevs: PtdevSpec[]
  mmiodevs: MmiodevSpec[]
  vdevs: VdevSpec[]
  ioeventfds: IoeventfdSpec[]
  irqfds: IrqfdSpec[]
  state: VmRunState
}

/**
 * The hypervisor reads CREATE_VM's 16 "uuid" bytes as a NUL-terminated name and tells VMs
 * apart by it (A.1): a longer name would be cut, and two names sharing their first 15
 * bytes would be one VM to it. acrn-dm keeps to 15 bytes too.
 */
export const MAX_VM_NAME_BYTES = 15

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/

export function checkVmName(name: unknown, where = 'name'): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new UsageError(`'${String(name)}' is not a valid VM name`, {
      flag: where,
      hint: `use up to ${MAX_VM_NAME_BYTES} letters, digits, _ . - (starting with a letter or digit)`,
    })
  }
  // the name is ASCII: one byte a character
  if (name.length > MAX_VM_NAME_BYTES) {
    throw new UsageError(
      `'${name}' is ${name.length} bytes long; a VM name has at most ${MAX_VM_NAME_BYTES}`,
      {
        flag: where,
        hint: `the hypervisor keeps the first ${MAX_VM_NAME_BYTES} bytes of a VM’s name (16 with the NUL) and tells VMs apart by them; pick a shorter name`,
      },
    )
  }
  return name
}

/** Reads values out of a parsed document, naming `file:path` in every error. */
class Reader {
  constructor(private readonly source: string) {}

  fail(path: string, message: string, hint?: string): never {
    throw new UsageError(`${this.source}: ${path}: ${message}`, { hint })
  }

  object(value: unknown, path: string, keys: readonly string[]): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      this.fail(path, 'expected a mapping')
    const record = value as Record<string, unknown>
    for (const key of Object.keys(record)) {
      if (!keys.includes(key))
        this.fail(`${path}.${key}`, 'unknown key', `known keys: ${keys.join(', ')}`)
    }
    return record
  }

  list(value: unknown, path: string): unknown[] {
    if (value === undefined || value === null) return []
    if (!Array.isArray(value)) this.fail(path, 'expected a list')
    return value
  }

  /** Run a flag-style parser on a scalar, rewording its error with the path. */
  scalar<T>(value: unknown, path: string, parse: (text: string) => T): T {
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'bigint') {
      this.fail(path, `expected a value, got ${value === null ? 'nothing' : typeof value}`)
    }
    if (typeof value === 'number' && !Number.isSafeInteger(value)) {
      this.fail(path, `${value} is not exact; write large numbers as strings ("0x...")`)
    }
    try {
      return parse(String(value))
    } catch (e) {
      if (e instanceof UsageError) this.fail(path, e.message, e.hint)
      throw e
    }
  }

  bool(value: unknown, path: string, fallback = false): boolean {
    if (value === undefined) return fallback
    if (typeof value !== 'boolean') this.fail(path, 'expected true or false')
    return value
  }
}

const SPEC_KEYS = [
  'name',
  'vcpus',
  'cpuAffinity',
  'flags',
  'memory',
  'regs',
  'ptdevs',
  'mmiodevs',
  'vdevs',
  'ioeventfds',
  'irqfds',
  'state',
] as const

export function specFromObject(doc: unknown, source = 'spec'): VmSpec {
  const r: Reader = new Reader(source)
  const o = r.object(doc, '$', SPEC_KEYS)
  let name: string
  try {
    name = checkVmName(o.name)
  } catch (e) {
    r.fail('name', (e as UsageError).message.replace(/^name: /, ''), (e as UsageError).hint)
  }
  const spec: VmSpec = {
    name,
    flags: 0n,
    memory: [],
    regs: [],
    ptdevs: [],
    mmiodevs: [],
    vdevs: [],
    ioeventfds: [],
    irqfds: [],
    state: 'running',
  }
  if (o.vcpus !== undefined) {
    spec.vcpus = Number(r.scalar(o.vcpus, 'vcpus', (t) => parseInteger(t, { min: 1n, max: 16n })))
  }
  if (o.cpuAffinity !== undefined) {
    spec.cpuAffinity = r.scalar(o.cpuAffinity, 'cpuAffinity', (t) => parseInteger(t, { min: 1n }))
    if (spec.vcpus !== undefined) r.fail('cpuAffinity', 'give vcpus or cpuAffinity, not both')
  }
  for (const [i, f] of r.list(o.flags, 'flags').entries()) {
    spec.flags |= r.scalar(f, `flags[${i}]`, (t) => parseVmFlag(t, 'flag'))
  }
  for (const [i, m] of r.list(o.memory, 'memory').entries()) {
    const p = `memory[${i}]`
    const seg = r.object(m, p, ['gpa', 'size', 'type', 'access', 'hpa', 'file'])
    const type = seg.type ?? 'ram'
    if (type !== 'ram' && type !== 'mmio')
      r.fail(`${p}.type`, `'${String(type)}' is not ram or mmio`)
    const memseg: MemsegSpec = {
      gpa: r.scalar(seg.gpa, `${p}.gpa`, (t) => parseInteger(t, { align: 4096n })),
      size: r.scalar(seg.size, `${p}.size`, (t) => parseSize(t, { min: 4096n, align: 4096n })),
      type,
      access:
        seg.access === undefined ? 7 : r.scalar(seg.access, `${p}.access`, (t) => parseAccess(t)),
    }
    if (seg.hpa !== undefined) {
      if (type !== 'mmio') r.fail(`${p}.hpa`, 'only MMIO segments map a host physical address')
      memseg.hpa = r.scalar(seg.hpa, `${p}.hpa`, (t) => parseInteger(t, { align: 4096n }))
    } else if (type === 'mmio') {
      r.fail(`${p}.hpa`, 'an MMIO segment needs hpa, the host physical address to map')
    }
    if (seg.file !== undefined) {
      if (type !== 'ram') r.fail(`${p}.file`, 'only RAM segments load a payload')
      if (typeof seg.file !== 'string' || seg.file === '')
        r.fail(`${p}.file`, 'expected a file path')
      memseg.file = seg.file
    }
    spec.memory.push(memseg)
  }
  for (const [i, g] of r.list(o.regs, 'regs').entries()) {
    const p = `regs[${i}]`
    const regs = r.object(g, p, ['vcpu', 'preset', 'rip', 'rsp', 'cr0', 'cr3', 'cr4'])
    const preset = regs.preset ?? 'real-mode'
    if (!REGS_PRESETS.includes(preset as RegsPreset)) {
      r.fail(`${p}.preset`, `'${String(preset)}' is not one of ${REGS_PRESETS.join(', ')}`)
    }
    const out: RegsSpec = {
      vcpu: Number(r.scalar(regs.vcpu ?? 0, `${p}.vcpu`, (t) => parseInteger(t, { max: 15n }))),
      preset: preset as RegsPreset,
    }
    for (const reg of ['rip', 'rsp', 'cr0', 'cr3', 'cr4'] as const) {
      if (regs[reg] !== undefined)
        out[reg] = r.scalar(regs[reg], `${p}.${reg}`, (t) => parseInteger(t))
    }
    spec.regs.push(out)
  }
  for (const [i, d] of r.list(o.ptdevs, 'ptdevs').entries()) {
    const p = `ptdevs[${i}]`
    const dev = r.object(d, p, ['phys', 'virt', 'quirk', 'intr'])
    const phys = r.scalar(dev.phys, `${p}.phys`, (t) => parsePackedBdf(t))
    const ptdev: PtdevSpec = {
      phys,
      virt:
        dev.virt === undefined ? phys : r.scalar(dev.virt, `${p}.virt`, (t) => parsePackedBdf(t)),
      quirk: r.bool(dev.quirk, `${p}.quirk`),
    }
    if (dev.intr !== undefined) {
      const q = r.object(dev.intr, `${p}.intr`, ['type', 'virtPin', 'physPin', 'pic'])
      const type = q.type ?? 'intx'
      if (type !== 'intx' && type !== 'msi' && type !== 'msix') {
        r.fail(`${p}.intr.type`, `'${String(type)}' is not intx, msi or msix`)
      }
      const pin = (v: unknown, at: string) =>
        Number(r.scalar(v ?? 0, at, (t) => parseInteger(t, { max: 255n })))
      ptdev.intr = {
        type,
        virtPin: pin(q.virtPin, `${p}.intr.virtPin`),
        physPin: pin(q.physPin, `${p}.intr.physPin`),
        picPin: r.bool(q.pic, `${p}.intr.pic`),
      }
    }
    spec.ptdevs.push(ptdev)
  }
  for (const [i, d] of r.list(o.mmiodevs, 'mmiodevs').entries()) {
    const p = `mmiodevs[${i}]`
    const dev = r.object(d, p, ['name', 'res'])
    if (
      typeof dev.name !== 'string' ||
      dev.name === '' ||
      new TextEncoder().encode(dev.name).byteLength > 8
    ) {
      r.fail(`${p}.name`, 'expected a device name of 1 to 8 bytes')
    }
    const res = r.list(dev.res, `${p}.res`)
    if (res.length < 1 || res.length > 3) r.fail(`${p}.res`, 'an MMIO device has 1 to 3 resources')
    spec.mmiodevs.push({
      devName: dev.name,
      res: res.map((x, j) => {
        const q = r.object(x, `${p}.res[${j}]`, ['gpa', 'hpa', 'size', 'memType'])
        return {
          gpa: r.scalar(q.gpa, `${p}.res[${j}].gpa`, (t) => parseInteger(t, { align: 4096n })),
          hpa: r.scalar(q.hpa, `${p}.res[${j}].hpa`, (t) => parseInteger(t, { align: 4096n })),
          size: r.scalar(q.size, `${p}.res[${j}].size`, (t) =>
            parseSize(t, { min: 4096n, align: 4096n }),
          ),
          memType:
            q.memType === undefined
              ? 0n
              : r.scalar(q.memType, `${p}.res[${j}].memType`, (t) => parseInteger(t)),
        }
      }),
    })
  }
  for (const [i, d] of r.list(o.vdevs, 'vdevs').entries()) {
    const p = `vdevs[${i}]`
    const dev = r.object(d, p, ['vendor', 'device', 'legacyId', 'slot', 'io'])
    const num = (v: unknown, at: string, max: bigint) =>
      Number(r.scalar(v ?? 0, at, (t) => parseInteger(t, { max })))
    const io = r.list(dev.io, `${p}.io`)
    if (io.length > 6) r.fail(`${p}.io`, 'at most 6 I/O resources')
    const ranges = io.map((x, j) => {
      const q = r.object(x, `${p}.io[${j}]`, ['addr', 'size'])
      return {
        addr: num(q.addr, `${p}.io[${j}].addr`, 0xffff_ffffn),
        size: num(q.size, `${p}.io[${j}].size`, 0xffff_ffffn),
      }
    })
    spec.vdevs.push({
      vendor: num(dev.vendor, `${p}.vendor`, 0xffffn),
      device: num(dev.device, `${p}.device`, 0xffffn),
      legacyId: num(dev.legacyId, `${p}.legacyId`, 0xffff_ffffn),
      slot: dev.slot === undefined ? 0n : r.scalar(dev.slot, `${p}.slot`, (t) => parseInteger(t)),
      ioAddr: ranges.map((x) => x.addr),
      ioSize: ranges.map((x) => x.size),
    })
  }
  for (const [i, e] of r.list(o.ioeventfds, 'ioeventfds').entries()) {
    const p = `ioeventfds[${i}]`
    const ev = r.object(e, p, ['addr', 'len', 'pio', 'datamatch'])
    const entry: IoeventfdSpec = {
      addr: r.scalar(ev.addr, `${p}.addr`, (t) => parseInteger(t)),
      len: Number(r.scalar(ev.len ?? 4, `${p}.len`, (t) => parseInteger(t, { min: 1n, max: 8n }))),
      pio: r.bool(ev.pio, `${p}.pio`),
    }
    if (![1, 2, 4, 8].includes(entry.len)) r.fail(`${p}.len`, `${entry.len} is not 1, 2, 4 or 8`)
    if (ev.datamatch !== undefined)
      entry.datamatch = r.scalar(ev.datamatch, `${p}.datamatch`, (t) => parseInteger(t))
    spec.ioeventfds.push(entry)
  }
  for (const [i, q] of r.list(o.irqfds, 'irqfds').entries()) {
    const p = `irqfds[${i}]`
    const irq = r.object(q, p, ['msiAddr', 'msiData'])
    spec.irqfds.push({
      msiAddr: r.scalar(irq.msiAddr, `${p}.msiAddr`, (t) => parseMsiAddress(t)),
      msiData: r.scalar(irq.msiData, `${p}.msiData`, (t) => parseMsiData(t)),
    })
  }
  if (o.state !== undefined) {
    if (o.state !== 'created' && o.state !== 'running' && o.state !== 'paused') {
      r.fail('state', `'${String(o.state)}' is not created, running or paused`)
    }
    spec.state = o.state
  }
  return spec
}

/** Parse a spec file's text (YAML, of which JSON is a subset). */
export function parseSpec(text: string, source = 'spec'): VmSpec {
  let doc: unknown
  try {
    doc = parseYaml(text, { intAsBigInt: false, uniqueKeys: true })
  } catch (e) {
    throw new UsageError(
      `${source}: not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`,
      {
        hint: 'see `hsmctl vm dump NAME` for the format',
      },
    )
  }
  return specFromObject(doc, source)
}

/** The plain-data form of a spec, with values written the way a user would type them. */
export function specToObject(spec: VmSpec): Record<string, unknown> {
  const out: Record<string, unknown> = { name: spec.name }
  if (spec.vcpus !== undefined) out.vcpus = spec.vcpus
  if (spec.cpuAffinity !== undefined) out.cpuAffinity = formatHex(spec.cpuAffinity)
  if (spec.flags !== 0n) out.flags = vmFlagNames(spec.flags)
  if (spec.memory.length) {
    out.memory = spec.memory.map((m) => ({
      gpa: formatHex(m.gpa),
      size: formatSize(m.size),
      type: m.type,
      access: formatAccess(m.access).replaceAll('-', ''),
      ...(m.hpa !== undefined ? { hpa: formatHex(m.hpa) } : {}),
      ...(m.file !== undefined ? { file: m.file } : {}),
    }))
  }
  if (spec.regs.length) {
    out.regs = spec.regs.map((g) => {
      const o: Record<string, unknown> = { vcpu: g.vcpu, preset: g.preset }
      for (const reg of ['rip', 'rsp', 'cr0', 'cr3', 'cr4'] as const)
        if (g[reg] !== undefined) o[reg] = formatHex(g[reg])
      return o
    })
  }
  if (spec.ptdevs.length) {
    out.ptdevs = spec.ptdevs.map((d) => ({
      phys: formatBdf(d.phys),
      virt: formatBdf(d.virt),
      ...(d.quirk ? { quirk: true } : {}),
      ...(d.intr
        ? {
            intr: {
              type: d.intr.type,
              virtPin: d.intr.virtPin,
              physPin: d.intr.physPin,
              ...(d.intr.picPin ? { pic: true } : {}),
            },
          }
        : {}),
    }))
  }
  if (spec.mmiodevs.length) {
    out.mmiodevs = spec.mmiodevs.map((m) => ({
      name: m.devName,
      res: m.res.map((x) => ({
        gpa: formatHex(x.gpa),
        hpa: formatHex(x.hpa),
        size: formatSize(x.size),
        ...(x.memType !== 0n ? { memType: formatHex(x.memType) } : {}),
      })),
    }))
  }
  if (spec.vdevs.length) {
    out.vdevs = spec.vdevs.map((v) => ({
      ...(v.vendor || v.device
        ? { vendor: formatPciId(v.vendor), device: formatPciId(v.device) }
        : {}),
      ...(v.legacyId ? { legacyId: v.legacyId } : {}),
      ...(v.slot !== 0n ? { slot: formatHex(v.slot) } : {}),
      ...(v.ioAddr.length
        ? {
            io: v.ioAddr.map((addr, j) => ({
              addr: formatHex(addr),
              size: formatHex(v.ioSize[j] ?? 0),
            })),
          }
        : {}),
    }))
  }
  if (spec.ioeventfds.length) {
    out.ioeventfds = spec.ioeventfds.map((e) => ({
      addr: formatHex(e.addr),
      len: e.len,
      ...(e.pio ? { pio: true } : {}),
      ...(e.datamatch !== undefined ? { datamatch: formatHex(e.datamatch) } : {}),
    }))
  }
  if (spec.irqfds.length) {
    out.irqfds = spec.irqfds.map((q) => ({
      msiAddr: formatHex(q.msiAddr),
      msiData: formatHex(q.msiData),
    }))
  }
  out.state = spec.state
  return out
}

export function dumpSpec(spec: VmSpec): string {
  return stringifyYaml(specToObject(spec))
}
