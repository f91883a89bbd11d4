// Live per-row statistics of the trace: rows keyed by VM, vCPU, type, direction, client
// and address, each with a count and latency min/avg/p99/max. Ingest reads records as
// u32 words and updates an open-addressing hash table held in typed arrays, so the hot
// loop allocates nothing and never builds a string or a bigint.

import {
  RECORD_SIZE,
  RECORD_WORDS,
  flagClient,
  flagType,
  flagWrite,
  CLIENT_NAMES,
  TYPE_NAMES,
} from './record.js'
import type { TraceClient, TraceDir, TraceType } from './record.js'

/** Latency histogram: 4 sub-buckets per power of two of nanoseconds. */
const BUCKETS = 128
const SIZE_BITS_MASK = ~(0x60 << 24) // the access size is not part of a row's key

function bucketOf(ns: number): number {
  if (ns < 4) return ns
  const e = 31 - Math.clz32(ns)
  return e * 4 + ((ns >>> (e - 2)) & 3)
}

/** The upper bound (ns) of a histogram bucket. */
function bucketTop(b: number): number {
  if (b < 4) return b
  const e = b >> 2
  return (4 + (b & 3) + 1) * 2 ** (e - 2) - 1
}

/** The lower bound (ns) of a histogram bucket. */
function bucketBottom(b: number): number {
  if (b < 4) return b
  const e = b >> 2
  return (4 + (b & 3)) * 2 ** (e - 2)
}

/** A row's latency histogram, sparse and flat (it travels as JSON): bucket, requests, ... */
export type LatencyHistogram = number[]

export interface RowKey {
  vmid: number
  /** -1 when the row merges every vCPU. */
  vcpu: number
  type: TraceType
  dir: TraceDir
  client: TraceClient
  addr: bigint
}

export interface TraceRow extends RowKey {
  count: number
  /** Latencies in nanoseconds. */
  latMin: number
  latAvg: number
  latP99: number
  latMax: number
  /** Size of the last access (bytes). */
  size: number
  /**
   * With `rows(..., { histograms: true })`: the sum of the latencies and their histogram,
   * what a view needs to describe only the requests after an earlier sample (latencySince).
   */
  latSum?: number
  latHist?: LatencyHistogram
}

/** A row's numbers at one sample, as far as latencySince needs them. */
export type LatencySample = Pick<TraceRow, 'count' | 'latMin' | 'latMax'> & {
  latSum: number
  latHist: LatencyHistogram
}

/**
 * Latency min/avg/p99/max of the requests a row gained between two samples of it (`base`
 * the earlier). Count and average are exact. The extremes are exact when the row's own
 * min or max moved since `base` (the new extreme came after it); otherwise they are taken
 * to the bucket of the histogram difference, like p99: min at most 20% below the true
 * value and max at most 25% above it, never past the row's own min and max.
 */
export function latencySince(
  now: LatencySample,
  base: LatencySample,
): Pick<TraceRow, 'latMin' | 'latAvg' | 'latP99' | 'latMax'> {
  const count = now.count - base.count
  if (count <= 0) return { latMin: 0, latAvg: 0, latP99: 0, latMax: 0 }
  const hist = new Float64Array(BUCKETS)
  for (let i = 0; i + 1 < now.latHist.length; i += 2) hist[now.latHist[i]!]! += now.latHist[i + 1]!
  for (let i = 0; i + 1 < base.latHist.length; i += 2)
    hist[base.latHist[i]!]! -= base.latHist[i + 1]!
  let lo = 0
  while (lo < BUCKETS - 1 && hist[lo]! <= 0) lo++
  let hi = BUCKETS - 1
  while (hi > 0 && hist[hi]! <= 0) hi--
  const latMax = now.latMax > base.latMax ? now.latMax : Math.min(bucketTop(hi), now.latMax)
  const latMin = now.latMin < base.latMin ? now.latMin : Math.max(bucketBottom(lo), now.latMin)
  return {
    latMin,
    latAvg: Math.max(0, now.latSum - base.latSum) / count,
    latP99: p99(hist, count, latMax),
    latMax,
  }
}

export class TraceStats {
  private capacity = 0
  private mask = 0
  private used!: Uint8Array
  private keys!: Uint32Array
  private counts!: Float64Array
  private latSum!: Float64Array
  private latMin!: Uint32Array
  private latMax!: Uint32Array
  private sizes!: Uint8Array
  private hist!: Uint32Array
  private readonly order: number[] = []
  /** Records ingested. */
  total = 0

  constructor(initialRows = 1024) {
    this.allocate(initialRows)
  }

  get rowCount(): number {
    return this.order.length
  }

  private allocate(capacity: number) {
    this.capacity = capacity
    this.mask = capacity - 1
    this.used = new Uint8Array(capacity)
    this.keys = new Uint32Array(capacity * 3)
    this.counts = new Float64Array(capacity)
    this.latSum = new Float64Array(capacity)
    this.latMin = new Uint32Array(capacity)
    this.latMax = new Uint32Array(capacity)
    this.sizes = new Uint8Array(capacity)
    this.hist = new Uint32Array(capacity * BUCKETS)
  }

  private grow() {
    this.rebuild(this.capacity * 2, () => true)
  }

  /**
   * Drop a VM's rows (it was destroyed: a new VM may get its vmid). Returns the requests
   * dropped with them; `total` keeps counting everything ever ingested.
   */
  forgetVm(vmid: number): number {
    let dropped = 0
    for (const i of this.order)
      if ((this.keys[i * 3 + 2]! & 0xffff) === vmid) dropped += this.counts[i]!
    if (dropped > 0) this.rebuild(this.capacity, (meta) => (meta & 0xffff) !== vmid)
    return dropped
  }

  /** Move the rows that `keep` accepts into fresh arrays of `capacity` slots. */
  private rebuild(capacity: number, keep: (meta: number) => boolean) {
    const old = {
      used: this.used,
      keys: this.keys,
      counts: this.counts,
      latSum: this.latSum,
      latMin: this.latMin,
      latMax: this.latMax,
      sizes: this.sizes,
      hist: this.hist,
    }
    const oldOrder = this.order.splice(0)
    this.allocate(capacity)
    for (const i of oldOrder) {
      if (!keep(old.keys[i * 3 + 2]!)) continue
      const j = this.slot(old.keys[i * 3]!, old.keys[i * 3 + 1]!, old.keys[i * 3 + 2]!)
      this.counts[j] = old.counts[i]!
      this.latSum[j] = old.latSum[i]!
      this.latMin[j] = old.latMin[i]!
      this.latMax[j] = old.latMax[i]!
      this.sizes[j] = old.sizes[i]!
      this.hist.set(old.hist.subarray(i * BUCKETS, (i + 1) * BUCKETS), j * BUCKETS)
    }
  }

  /** The slot of a key, claiming a free one for a new key. */
  private slot(lo: number, hi: number, meta: number): number {
    let i =
      (Math.imul(lo, 0x9e3779b1) ^ Math.imul(hi, 0x85ebca77) ^ Math.imul(meta, 0xc2b2ae3d)) &
      this.mask
    const keys = this.keys
    for (;;) {
      if (this.used[i] === 0) {
        this.used[i] = 1
        keys[i * 3] = lo
        keys[i * 3 + 1] = hi
        keys[i * 3 + 2] = meta
        this.latMin[i] = 0xffff_ffff
        this.order.push(i)
        return i
      }
      if (keys[i * 3] === lo && keys[i * 3 + 1] === hi && keys[i * 3 + 2] === meta) return i
      i = (i + 1) & this.mask
    }
  }

  /** Add records (whole 32-byte records; a partial tail is ignored). */
  ingest(bytes: Uint8Array): void {
    const n = Math.floor(bytes.byteLength / RECORD_SIZE)
    const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice()
    const w = new Uint32Array(aligned.buffer, aligned.byteOffset, n * RECORD_WORDS)
    for (let o = 0; o < n * RECORD_WORDS; o += RECORD_WORDS)
      this.add(w[o + 2]!, w[o + 3]!, w[o + 7]!, w[o + 6]!)
  }

  /** Add one record given its words: address low/high, word 7 (vmid, vcpu, flags), latency. */
  add(addrLo: number, addrHi: number, word7: number, ns: number): void {
    if (this.order.length * 2 >= this.capacity) this.grow()
    const i = this.slot(addrLo, addrHi, word7 & SIZE_BITS_MASK)
    this.counts[i]!++
    this.latSum[i]! += ns
    if (ns < this.latMin[i]!) this.latMin[i] = ns
    if (ns > this.latMax[i]!) this.latMax[i] = ns
    this.sizes[i] = 1 << ((word7 >>> 29) & 3)
    this.hist[i * BUCKETS + bucketOf(ns)]!++
    this.total++
  }

  /**
   * Rows that pass `keep`, with the vCPUs of a row merged unless `byVcpu` (histograms are
   * merged too, so a merged p99 is exact to the bucket). `vcpu` is -1 on merged rows.
   */
  rows(
    keep: (row: RowKey) => boolean = () => true,
    byVcpu = false,
    options: { histograms?: boolean } = {},
  ): TraceRow[] {
    const groups = new Map<string, { key: RowKey; slots: number[] }>()
    for (const i of this.order) {
      const key = this.keyOf(i)
      if (!keep(key)) continue
      const id = byVcpu ? String(i) : `${key.vmid}:${key.type}:${key.dir}:${key.client}:${key.addr}`
      const group = groups.get(id)
      if (group) group.slots.push(i)
      else groups.set(id, { key: byVcpu ? key : { ...key, vcpu: -1 }, slots: [i] })
    }
    const hist = new Uint32Array(BUCKETS)
    return [...groups.values()].map(({ key, slots }) => {
      let count = 0
      let sum = 0
      let min = 0xffff_ffff
      let max = 0
      let size = 0
      hist.fill(0)
      for (const i of slots) {
        count += this.counts[i]!
        sum += this.latSum[i]!
        min = Math.min(min, this.latMin[i]!)
        max = Math.max(max, this.latMax[i]!)
        size = this.sizes[i]!
        for (let b = 0; b < BUCKETS; b++) hist[b]! += this.hist[i * BUCKETS + b]!
      }
      // the key's fields one by one: a spread here made rows() ten times slower
      const row: TraceRow = {
        vmid: key.vmid,
        vcpu: key.vcpu,
        type: key.type,
        dir: key.dir,
        client: key.client,
        addr: key.addr,
        count,
        latMin: count ? min : 0,
        latAvg: count ? sum / count : 0,
        latP99: p99(hist, count, max),
        latMax: max,
        size,
      }
      if (options.histograms) {
        row.latSum = sum
        row.latHist = []
        for (let b = 0; b < BUCKETS; b++) if (hist[b]) row.latHist.push(b, hist[b]!)
      }
      return row
    })
  }

  private keyOf(i: number): RowKey {
    const meta = this.keys[i * 3 + 2]!
    const flags = meta >>> 24
    return {
      vmid: meta & 0xffff,
      vcpu: (meta >>> 16) & 0xff,
      type: TYPE_NAMES[flagType(flags)] ?? 'pio',
      dir: flagWrite(flags) ? 'write' : 'read',
      client: CLIENT_NAMES[flagClient(flags)] ?? 'default',
      addr: (BigInt(this.keys[i * 3 + 1]!) << 32n) | BigInt(this.keys[i * 3]!),
    }
  }
}

function p99(hist: ArrayLike<number>, count: number, max: number): number {
  const target = Math.ceil(count * 0.99)
  let seen = 0
  for (let b = 0; b < BUCKETS; b++) {
    seen += hist[b]!
    if (seen >= target) return Math.min(bucketTop(b), max)
  }
  return max
}
