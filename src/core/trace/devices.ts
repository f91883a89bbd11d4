// A recording's traffic by device (`ioreq report --by device`). A recording holds requests,
// not the VM's device table (the device model that owns the BARs, acrn-dm, never tells the
// HSM where they are), so devices are inferred from the requests themselves:
//
// - PCI functions by the BDF of their config requests, named by the vendor/device IDs and
//   class the guest read from their config space, when it did;
// - their BARs by the values the guest read from or wrote to the BAR registers (the first
//   value seen is taken to hold from the start: the device model assigned it before the
//   guest ran), sized when the guest sized them (wrote all ones, read the mask back);
//   port or MMIO requests in a BAR count to its function, at the time they were made;
// - PIO ports of the PC platform by their standard names (COM1-4, PIT, RTC, PIC, PCI's
//   0xCF8/0xCFC, ...) and acrn-dm's own (PM1a, CMOS 0x74, POST 0x84; its source's
//   include/acpi.h, hw/platform/cmos_io.c, core/post.c), and the x86 MMIO windows (IOAPIC,
//   HPET, LAPIC);
// - anything else by port, or by 4 KiB page of MMIO. The notes say where that happened.

import type { TraceFile } from './file.js'
import { formatBdf } from '../parse/bdf.js'
import {
  CLIENT_NAMES,
  RECORD_WORDS,
  TYPE_PCICFG,
  TYPE_PIO,
  flagClient,
  flagSize,
  flagType,
  flagWrite,
  type RecordFilter,
  type TraceClient,
  type TraceType,
} from './record.js'

interface Range {
  device: string
  from: number
  to: number
}

/** Ports of the PC platform and of acrn-dm, by device (inclusive ranges). */
export const STANDARD_PORTS: readonly Range[] = [
  { device: 'PIC (master)', from: 0x20, to: 0x21 },
  { device: 'PIT', from: 0x40, to: 0x43 },
  { device: 'keyboard controller', from: 0x60, to: 0x60 },
  { device: 'NMI status/control', from: 0x61, to: 0x61 },
  { device: 'keyboard controller', from: 0x64, to: 0x64 },
  { device: 'RTC', from: 0x70, to: 0x71 },
  { device: 'CMOS (acrn-dm)', from: 0x74, to: 0x75 },
  { device: 'POST code', from: 0x80, to: 0x80 },
  { device: 'POST data (acrn-dm)', from: 0x84, to: 0x84 },
  { device: 'PIC (slave)', from: 0xa0, to: 0xa1 },
  { device: 'SMI command', from: 0xb2, to: 0xb2 },
  { device: 'debug exit', from: 0xf4, to: 0xf4 },
  { device: 'COM4', from: 0x2e8, to: 0x2ef },
  { device: 'COM2', from: 0x2f8, to: 0x2ff },
  { device: 'COM3', from: 0x3e8, to: 0x3ef },
  { device: 'COM1', from: 0x3f8, to: 0x3ff },
  { device: 'PM1a event', from: 0x400, to: 0x403 },
  { device: 'PM1a control', from: 0x404, to: 0x405 },
  { device: 'ELCR', from: 0x4d0, to: 0x4d1 },
  { device: 'PCI config address', from: 0xcf8, to: 0xcf8 },
  { device: 'reset control', from: 0xcf9, to: 0xcf9 },
  { device: 'PCI config address', from: 0xcfa, to: 0xcfb },
  { device: 'PCI config data', from: 0xcfc, to: 0xcff },
]

/** MMIO windows of the x86 platform (inclusive). */
export const STANDARD_MMIO: readonly Range[] = [
  { device: 'IOAPIC', from: 0xfec0_0000, to: 0xfec0_0fff },
  { device: 'HPET', from: 0xfed0_0000, to: 0xfed0_03ff },
  { device: 'LAPIC', from: 0xfee0_0000, to: 0xfee0_0fff },
]

/** PCI functions by vendor:device (acrn-dm's own and virtio's legacy IDs). */
const PCI_NAMES: Readonly<Record<string, string>> = {
  '1275:1275': 'hostbridge',
  '1022:7432': 'hostbridge',
  '8086:7000': 'lpc',
  '1af4:1000': 'virtio-net',
  '1af4:1001': 'virtio-blk',
  '1af4:1002': 'virtio-balloon',
  '1af4:1003': 'virtio-console',
  '1af4:1004': 'virtio-scsi',
  '1af4:1005': 'virtio-rng',
  '1af4:1009': 'virtio-9p',
}
/** Modern virtio (1af4:1040 + type), virtio spec §4.1.2.1. */
const VIRTIO_TYPES: Readonly<Record<number, string>> = {
  1: 'net',
  2: 'blk',
  3: 'console',
  4: 'rng',
  5: 'balloon',
  8: 'scsi',
  9: '9p',
  16: 'gpu',
  18: 'input',
  19: 'vsock',
}
/** Classes (base << 8 | subclass) for functions whose IDs are not above. */
const PCI_CLASSES: Readonly<Record<number, string>> = {
  0x0100: 'SCSI controller',
  0x0101: 'IDE controller',
  0x0106: 'SATA controller',
  0x0200: 'Ethernet controller',
  0x0300: 'VGA controller',
  0x0600: 'host bridge',
  0x0601: 'ISA bridge',
  0x0604: 'PCI bridge',
  0x0c03: 'USB controller',
}

export type DeviceKind = 'standard' | 'pci' | 'port' | 'page'

export interface RequestTotals {
  count: number
  reads: number
  writes: number
  latAvgNs: number
  latMaxNs: number
  /** Requests by the client that completed them. */
  clients: Record<TraceClient, number>
}

export interface DeviceRegion extends RequestTotals {
  /** `config`, `BAR1`, `ports`, `page`. */
  region: string
  /** As the table shows it: `PIO 0x3f8-0x3ff`, `PCICFG 00:03.0`, `BAR1 MMIO 0x...-0x...`. */
  where: string
  type: TraceType
  /** Hex addresses (inclusive); for config, the BDF. `to` is null for an unsized BAR. */
  from: string
  to: string | null
}

export interface DeviceRow extends RequestTotals {
  vm: string
  vmid: number
  device: string
  kind: DeviceKind
  /** PCI functions: `00:03.0`, and `1af4:1001` when the guest read the IDs. */
  bdf: string | null
  ids: string | null
  pct: number
  regions: DeviceRegion[]
}

export interface DeviceReport {
  total: number
  devices: DeviceRow[]
  /** Where the grouping had to guess (unsized BARs, MMIO by page, ports one by one). */
  notes: string[]
}

interface Bar {
  vmid: number
  bdf: number
  index: number
  io: boolean
  base: number
  /** Last address counted to the BAR. */
  end: number
  sized: boolean
  /** The times its base held: [from, to). */
  from: number
  to: number
}

interface FunctionInfo {
  vendor?: number
  device?: number
  classCode?: number
  headerType?: number
  /** BAR register (0..5) → its values over time, and the mask read back when sized. */
  bars: Map<number, { values: { t: number; v: number }[]; sizing: boolean; mask?: number }>
}

const hex = (n: number) => `0x${n.toString(16)}`
/** A BAR whose size the recording does not hold covers at most this much (and stops at the next BAR). */
const UNSIZED_IO = 0x100
const UNSIZED_MEM = 0x1000

const MAX_BAR_NOTES = 10

/**
 * The BARs of each VM and kind (I/O, memory) sorted by base, with the running maximum of
 * their ends: a lookup is a binary search and a walk back over the BARs that reach the
 * address, not a scan of every BAR (a recording of a boot sizes and moves many).
 */
class BarIndex {
  private readonly groups = new Map<string, { bars: Bar[]; maxEnd: number[] }>()

  constructor(bars: Bar[]) {
    for (const b of bars) {
      const key = `${b.vmid}/${b.io}`
      const g = this.groups.get(key) ?? { bars: [], maxEnd: [] }
      g.bars.push(b)
      this.groups.set(key, g)
    }
    for (const g of this.groups.values()) {
      g.bars.sort((x, y) => x.base - y.base || x.from - y.from)
      // an unsized BAR stops short of the next BAR's base
      let next = Infinity
      for (let j = g.bars.length - 1; j >= 0; j--) {
        const b = g.bars[j]!
        if (!b.sized && next <= b.end) b.end = next - 1
        if (j > 0 && g.bars[j - 1]!.base < b.base) next = b.base
      }
      let max = -Infinity
      g.maxEnd = g.bars.map((b) => (max = Math.max(max, b.end)))
    }
  }

  /** The BAR of VM `vmid` holding address `a` at time `at`. */
  find(vmid: number, io: boolean, a: number, at: number): Bar | undefined {
    const g = this.groups.get(`${vmid}/${io}`)
    if (!g) return undefined
    let lo = 0
    let hi = g.bars.length - 1
    let j = -1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (g.bars[mid]!.base <= a) {
        j = mid
        lo = mid + 1
      } else hi = mid - 1
    }
    for (let k = j; k >= 0 && g.maxEnd[k]! >= a; k--) {
      const b = g.bars[k]!
      if (a <= b.end && b.from <= at && at < b.to) return b
    }
    return undefined
  }
}

/** A function's config space first, then its BARs by number; other regions by address. */
const regionOrder = (r: Pick<DeviceRegion, 'region'>) =>
  r.region === 'config' ? -1 : r.region.startsWith('BAR') ? Number(r.region.slice(3)) : 6
const regionStart = (r: Pick<DeviceRegion, 'from' | 'type'>) =>
  r.type === 'pcicfg' ? 0 : Number(r.from)

function emptyTotals(): RequestTotals & { latSum: number } {
  return {
    count: 0,
    reads: 0,
    writes: 0,
    latAvgNs: 0,
    latMaxNs: 0,
    latSum: 0,
    clients: { default: 0, ioeventfd: 0, kernel: 0 },
  }
}

/**
 * The requests of a recording grouped by device. `keep`, when given, selects the requests
 * counted (the report's filter flags); devices and BARs are inferred from all of them.
 */
export function devicesOfRecording(file: TraceFile, keep?: RecordFilter): DeviceReport {
  const n = file.count
  const bytes = file.records
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, n * RECORD_WORDS)
  const f64 = new Float64Array(bytes.buffer, bytes.byteOffset, (n * RECORD_WORDS) / 2)
  const u64 = new BigUint64Array(bytes.buffer, bytes.byteOffset, (n * RECORD_WORDS) / 2)
  const t = (i: number) => f64[i * 4]!
  const word7 = (i: number) => words[i * RECORD_WORDS + 7]!
  const addr = (i: number) => Number(u64[i * 4 + 1]!)
  const value = (i: number) => Number(u64[i * 4 + 2]! & 0xffff_ffffn)

  // 1. what the guest's config accesses say of each PCI function, in time order
  const byTime = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => t(a) - t(b) || a - b)
  const functions = new Map<string, FunctionInfo>() // `${vmid}/${bdf}`
  for (const i of byTime) {
    const w7 = word7(i)
    const flags = w7 >>> 24
    if (flagType(flags) !== TYPE_PCICFG) continue
    const a = addr(i)
    const key = `${w7 & 0xffff}/${a >>> 12}`
    let fn = functions.get(key)
    if (!fn) functions.set(key, (fn = { bars: new Map() }))
    const reg = a & 0xfff
    const size = flagSize(flags)
    const v = value(i)
    const write = flagWrite(flags)
    if (!write && size === 4 && reg === 0) {
      fn.vendor = v & 0xffff
      fn.device = v >>> 16
    } else if (!write && size === 2 && reg === 0) fn.vendor = v & 0xffff
    else if (!write && size === 2 && reg === 2) fn.device = v & 0xffff
    else if (!write && size === 4 && reg === 8) fn.classCode = v >>> 8
    else if (!write && size === 4 && reg === 0xc) fn.headerType = (v >>> 16) & 0x7f
    else if (!write && size === 1 && reg === 0xe) fn.headerType = v & 0x7f
    else if (size === 4 && reg >= 0x10 && reg <= 0x24) {
      const index = (reg - 0x10) / 4
      let bar = fn.bars.get(index)
      if (!bar) fn.bars.set(index, (bar = { values: [], sizing: false }))
      if (write && v === 0xffff_ffff) bar.sizing = true
      else if (!write && bar.sizing) {
        bar.mask = v
        bar.sizing = false
      } else {
        bar.values.push({ t: t(i), v })
        bar.sizing = false
      }
    }
  }

  // 2. the BARs, each base with the times it held
  const bars: Bar[] = []
  for (const [key, fn] of functions) {
    const [vmid, bdf] = key.split('/').map(Number) as [number, number]
    const count = fn.headerType === 1 ? 2 : 6
    for (let index = 0; index < count; index++) {
      const bar = fn.bars.get(index)
      if (!bar || bar.values.length === 0 || bar.mask === 0) continue
      const first = bar.values[0]!.v
      const io = (first & 1) === 1
      const mem64 = !io && (first & 6) === 4
      const upper = mem64 ? fn.bars.get(index + 1) : undefined
      const upperAt = (at: number) => {
        if (!upper || upper.values.length === 0) return 0
        let v = upper.values[0]!.v
        for (const u of upper.values) if (u.t <= at) v = u.v
        return v
      }
      let size: number | undefined
      if (bar.mask !== undefined) {
        let mask = io ? bar.mask & ~3 : bar.mask & ~0xf
        if (io && mask >>> 16 === 0) mask |= 0xffff_0000 // 16-bit I/O decoders
        size = (~mask + 1) >>> 0 || undefined
      }
      bar.values.forEach(({ t: at, v }, k) => {
        const base = (io ? v & ~3 : v & ~0xf) >>> 0
        const high = mem64 ? upperAt(at) : 0
        const full = high * 2 ** 32 + base
        if (full === 0) return // unassigned
        const prev = bars.at(-1)
        const next = bar.values[k + 1]
        const from = k === 0 ? -Infinity : at
        const to = next ? next.t : Infinity
        // the same base again: the same interval, longer
        if (
          prev &&
          prev.vmid === vmid &&
          prev.bdf === bdf &&
          prev.index === index &&
          prev.base === full
        ) {
          prev.to = to
          return
        }
        bars.push({
          vmid,
          bdf,
          index,
          io,
          base: full,
          end: full + (size ?? (io ? UNSIZED_IO : UNSIZED_MEM)) - 1,
          sized: size !== undefined,
          from,
          to,
        })
      })
      if (mem64) index++
    }
  }
  const barIndex = new BarIndex(bars)

  // 3. each request kept, counted to its device and region
  const names = new Map<number, string>()
  for (const v of file.header.vms) {
    const had = names.get(v.vmid)
    names.set(v.vmid, had && had !== v.name ? `${had} / ${v.name}` : v.name)
  }
  interface Acc {
    row: Omit<DeviceRow, keyof RequestTotals | 'pct' | 'regions'>
    totals: ReturnType<typeof emptyTotals>
    regions: Map<
      string,
      Omit<DeviceRegion, keyof RequestTotals> & { totals: ReturnType<typeof emptyTotals> }
    >
  }
  const devices = new Map<string, Acc>()
  const notes = new Set<string>()
  /** Unsized BARs that requests were counted to: a note for each (the first base seen). */
  const unsized = new Map<string, string>()
  let total = 0
  const fnNames = new Map<string, { bdfText: string; ids: string | null; device: string }>()
  const fnName = (vmid: number, bdf: number) => {
    const key = `${vmid}/${bdf}`
    let name = fnNames.get(key)
    if (!name) fnNames.set(key, (name = describeFunction(functions.get(key), bdf)))
    return name
  }
  const describeFunction = (fn: FunctionInfo | undefined, bdf: number) => {
    const bdfText = formatBdf({
      segment: 0,
      bus: bdf >>> 8,
      dev: (bdf >>> 3) & 0x1f,
      func: bdf & 7,
    })
    const ids =
      fn?.vendor !== undefined && fn.device !== undefined
        ? `${fn.vendor.toString(16).padStart(4, '0')}:${fn.device.toString(16).padStart(4, '0')}`
        : null
    let what = ids ? PCI_NAMES[ids] : undefined
    if (!what && fn?.vendor === 0x1af4 && fn.device !== undefined && fn.device >= 0x1040)
      what = `virtio-${VIRTIO_TYPES[fn.device - 0x1040] ?? fn.device - 0x1040}`
    if (!what && fn?.classCode !== undefined) what = PCI_CLASSES[fn.classCode >>> 8]
    return { bdfText, ids, device: `PCI ${bdfText}${what ? ` ${what}` : ''}` }
  }
  const count = (
    i: number,
    deviceKey: string,
    row: () => Acc['row'],
    regionKey: string,
    region: () => Omit<DeviceRegion, keyof RequestTotals>,
  ) => {
    let acc = devices.get(deviceKey)
    if (!acc)
      devices.set(deviceKey, (acc = { row: row(), totals: emptyTotals(), regions: new Map() }))
    let reg = acc.regions.get(regionKey)
    if (!reg) acc.regions.set(regionKey, (reg = { ...region(), totals: emptyTotals() }))
    const w = words[i * RECORD_WORDS + 7]! >>> 24
    const latency = words[i * RECORD_WORDS + 6]!
    const client = CLIENT_NAMES[flagClient(w)] ?? 'default'
    for (const s of [acc.totals, reg.totals]) {
      s.count++
      if (flagWrite(w)) s.writes++
      else s.reads++
      s.latSum += latency
      if (latency > s.latMaxNs) s.latMaxNs = latency
      s.clients[client]++
    }
  }

  for (let i = 0; i < n; i++) {
    if (keep && !keep(words, i * RECORD_WORDS)) continue
    total++
    const w7 = word7(i)
    const vmid = w7 & 0xffff
    const vm = names.get(vmid) ?? String(vmid)
    const type = flagType(w7 >>> 24)
    const a = addr(i)
    if (type === TYPE_PCICFG) {
      const bdf = a >>> 12
      const fn = fnName(vmid, bdf)
      count(
        i,
        `${vmid}/pci/${bdf}`,
        () => ({ vm, vmid, device: fn.device, kind: 'pci', bdf: fn.bdfText, ids: fn.ids }),
        'config',
        () => ({
          region: 'config',
          where: `PCICFG ${fn.bdfText}`,
          type: 'pcicfg',
          from: fn.bdfText,
          to: fn.bdfText,
        }),
      )
      continue
    }
    const io = type === TYPE_PIO
    const at = t(i)
    const bar = barIndex.find(vmid, io, a, at)
    const kind = io ? 'PIO' : 'MMIO'
    if (bar) {
      const fn = fnName(vmid, bar.bdf)
      const range = bar.sized ? `${hex(bar.base)}-${hex(bar.end)}` : `${hex(bar.base)}+`
      const barKey = `${vmid}/${bar.bdf}/${bar.index}`
      if (!bar.sized && !unsized.has(barKey))
        unsized.set(
          barKey,
          `BAR${bar.index} of ${fn.bdfText} (${kind} ${hex(bar.base)}): the guest never sized it in the recording, so requests from its base up to ${hex(bar.end)} are counted to it`,
        )
      count(
        i,
        `${vmid}/pci/${bar.bdf}`,
        () => ({ vm, vmid, device: fn.device, kind: 'pci', bdf: fn.bdfText, ids: fn.ids }),
        `bar${bar.index}@${bar.base}`,
        () => ({
          region: `BAR${bar.index}`,
          where: `BAR${bar.index} ${kind} ${range}`,
          type: io ? 'pio' : 'mmio',
          from: hex(bar.base),
          to: bar.sized ? hex(bar.end) : null,
        }),
      )
      continue
    }
    const std = (io ? STANDARD_PORTS : STANDARD_MMIO).find((r) => r.from <= a && a <= r.to)
    if (std) {
      const range = std.from === std.to ? hex(std.from) : `${hex(std.from)}-${hex(std.to)}`
      count(
        i,
        `${vmid}/std/${std.device}`,
        () => ({ vm, vmid, device: std.device, kind: 'standard', bdf: null, ids: null }),
        hex(std.from),
        () => ({
          region: io ? 'ports' : 'window',
          where: `${kind} ${range}`,
          type: io ? 'pio' : 'mmio',
          from: hex(std.from),
          to: hex(std.to),
        }),
      )
      continue
    }
    if (io) {
      notes.add('ports of no known device or BAR are listed one by one')
      count(
        i,
        `${vmid}/port/${a}`,
        () => ({ vm, vmid, device: `port ${hex(a)}`, kind: 'port', bdf: null, ids: null }),
        'port',
        () => ({ region: 'port', where: `PIO ${hex(a)}`, type: 'pio', from: hex(a), to: hex(a) }),
      )
    } else {
      notes.add(
        "MMIO outside the BARs the recording shows (the guest's config accesses) is grouped by 4 KiB page",
      )
      const page = Math.floor(a / 4096) * 4096
      count(
        i,
        `${vmid}/page/${page}`,
        () => ({ vm, vmid, device: `MMIO page ${hex(page)}`, kind: 'page', bdf: null, ids: null }),
        'page',
        () => ({
          region: 'page',
          where: `MMIO ${hex(page)}-${hex(page + 4095)}`,
          type: 'mmio',
          from: hex(page),
          to: hex(page + 4095),
        }),
      )
    }
  }

  const finish = ({ latSum, ...s }: ReturnType<typeof emptyTotals>): RequestTotals => ({
    ...s,
    latAvgNs: s.count ? Math.round(latSum / s.count) : 0,
  })
  const rows: DeviceRow[] = [...devices.values()].map((acc) => ({
    ...acc.row,
    ...finish(acc.totals),
    pct: total ? (acc.totals.count / total) * 100 : 0,
    regions: [...acc.regions.values()]
      .map(({ totals, ...r }) => ({ ...r, ...finish(totals) }))
      .sort((a, b) => regionOrder(a) - regionOrder(b) || regionStart(a) - regionStart(b)),
  }))
  rows.sort((a, b) => a.vmid - b.vmid || b.count - a.count || (a.device < b.device ? -1 : 1))
  const barNotes = [...unsized.values()]
  if (barNotes.length > MAX_BAR_NOTES)
    barNotes.splice(
      MAX_BAR_NOTES,
      Infinity,
      `... and ${barNotes.length - MAX_BAR_NOTES} more BARs the guest never sized`,
    )
  return { total, devices: rows, notes: [...barNotes, ...notes] }
}
