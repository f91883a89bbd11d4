// A recording as Trace Event JSON (the "JSON Object Format" of Chrome's Trace Event Format),
// which Perfetto's UI and chrome://tracing open: one process per VM, one thread per vCPU,
// one complete ('X') slice per request from PENDING to COMPLETE.
//
// What a record holds (record.ts): `t`, when the request became PENDING (ms on the daemon's
// trace clock), and its latency, PENDING to COMPLETE in ns. The trace publishes a request
// when it completes, so every record has its completion: ts = t, dur = latency. The latency
// field saturates at 0xffffffff ns (4.29 s): such a slice is marked `latency_saturated`
// and its dur is a lower bound. Requests still pending when the recorder stopped are in
// the header (where the daemon could say: the simulation); their slices end at the
// recorder's stop and are marked `pending`.
//
// Times are µs on the daemon's trace clock (ms since the daemon started, × 1000), to the ns.
// Slices are written sorted by VM, vCPU and ts, so each track's ts never decreases.

import { pendingRecords, type TraceFile } from './file.js'
import { addrText, dirText } from './format.js'
import {
  CLIENT_NAMES,
  RECORD_SIZE,
  RECORD_WORDS,
  TYPE_NAMES,
  flagClient,
  flagSize,
  flagType,
  flagWrite,
  type RecordFilter,
} from './record.js'

/** Latency of a record whose true latency did not fit its u32 field (record.ts). */
export const LATENCY_SATURATED = 0xffff_ffff

/** pid of a VM's process: vmid + 1 (trace viewers treat pid 0 as the kernel's idle task). */
export const vmPid = (vmid: number) => vmid + 1
/** tid of a vCPU's thread, unique across VMs: 1000 × pid + vCPU. */
export const vcpuTid = (vmid: number, vcpu: number) => vmPid(vmid) * 1000 + vcpu

export interface ChromeTraceSummary {
  /** Slices written ('X' events): one per record that passed the filter. */
  slices: number
  /** Of them, requests still pending when the recorder stopped. */
  pending: number
  /** Slices whose latency saturated (dur is a lower bound). */
  saturated: number
  vms: number
  vcpus: number
}

/** µs with at most 3 decimals (ns), without floating noise such as 1.2340000000000002. */
const micros = (ns: number) => Math.round(ns) / 1000

/**
 * The Trace Event JSON of a recording, in chunks of a few hundred kB (a recording of a
 * boot has millions of requests: the caller writes each chunk as it comes). `keep`, when
 * given, selects the records exported (the report's filter flags). The summary is filled
 * in when the generator finishes.
 */
export function* chromeTraceChunks(
  file: TraceFile,
  keep: RecordFilter | undefined,
  summary: ChromeTraceSummary = { slices: 0, pending: 0, saturated: 0, vms: 0, vcpus: 0 },
): Generator<string> {
  // the completed requests, then those still pending when the recorder stopped
  const pending = pendingRecords(file)
  const total = file.count + pending.count
  let bytes = file.records
  if (pending.count) {
    bytes = new Uint8Array(total * RECORD_SIZE)
    bytes.set(file.records)
    bytes.set(pending.records, file.records.byteLength)
  }
  const traceEnd = file.header.traceEnd ?? 0
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, total * RECORD_WORDS)
  const times = new Float64Array(bytes.buffer, bytes.byteOffset, (total * RECORD_WORDS) / 2)
  const u64 = new BigUint64Array(bytes.buffer, bytes.byteOffset, (total * RECORD_WORDS) / 2)
  const chosen: number[] = []
  for (let i = 0; i < total; i++) if (!keep || keep(words, i * RECORD_WORDS)) chosen.push(i)
  const track = (i: number) => words[i * RECORD_WORDS + 7]! & 0xffffff // vmid | vcpu << 16
  const order = Uint32Array.from(chosen).sort((a, b) => {
    const ka = track(a)
    const kb = track(b)
    const vmA = ka & 0xffff
    const vmB = kb & 0xffff
    if (vmA !== vmB) return vmA - vmB
    if (ka !== kb) return (ka >>> 16) - (kb >>> 16)
    return times[a * 4]! - times[b * 4]! || a - b
  })

  // names: a vmid the recorder saw under several names (destroyed and created again) has them all
  const names = new Map<number, string[]>()
  for (const v of file.header.vms) {
    const list = names.get(v.vmid) ?? []
    if (!list.includes(v.name)) list.push(v.name)
    names.set(v.vmid, list)
  }
  const vms = new Set<number>()
  const vcpus = new Set<number>()
  for (const i of order) {
    const k = track(i)
    vms.add(k & 0xffff)
    vcpus.add(k)
  }
  summary.vms = vms.size
  summary.vcpus = vcpus.size

  const otherData: Record<string, string> = {
    recordedBy: file.header.source ?? 'hsmctl',
    createdAt: file.header.createdAt,
    clock: "µs since the daemon's trace epoch (its start)",
  }
  if (file.header.stoppedAt) otherData.stoppedAt = file.header.stoppedAt
  if (file.header.dropped) otherData.dropped = String(file.header.dropped)
  yield `{"displayTimeUnit":"ns","otherData":${JSON.stringify(otherData)},"traceEvents":[\n`

  const meta: string[] = []
  for (const vmid of [...vms].sort((a, b) => a - b)) {
    const pid = vmPid(vmid)
    const name = names.get(vmid)?.join(' / ') ?? `vm ${vmid}`
    meta.push(
      JSON.stringify({ name: 'process_name', ph: 'M', pid, tid: 0, args: { name } }),
      JSON.stringify({
        name: 'process_labels',
        ph: 'M',
        pid,
        tid: 0,
        args: { labels: `vmid ${vmid}` },
      }),
      JSON.stringify({
        name: 'process_sort_index',
        ph: 'M',
        pid,
        tid: 0,
        args: { sort_index: vmid },
      }),
    )
  }
  for (const k of [...vcpus].sort(
    (a, b) => (a & 0xffff) - (b & 0xffff) || (a >>> 16) - (b >>> 16),
  )) {
    const vmid = k & 0xffff
    const vcpu = k >>> 16
    const pid = vmPid(vmid)
    const tid = vcpuTid(vmid, vcpu)
    meta.push(
      JSON.stringify({ name: 'thread_name', ph: 'M', pid, tid, args: { name: `vCPU ${vcpu}` } }),
      JSON.stringify({ name: 'thread_sort_index', ph: 'M', pid, tid, args: { sort_index: vcpu } }),
    )
  }
  let out = meta.join(',\n')
  let first = meta.length === 0

  for (const i of order) {
    const o = i * RECORD_WORDS
    const word7 = words[o + 7]!
    const vmid = word7 & 0xffff
    const vcpu = (word7 >>> 16) & 0xff
    const flags = word7 >>> 24
    const latency = words[o + 6]!
    const type = TYPE_NAMES[flagType(flags)] ?? 'pio'
    const dir = flagWrite(flags) ? 'write' : 'read'
    const address = addrText(type, u64[i * 4 + 1]!)
    const still = i >= file.count
    let tail: string
    if (still) {
      tail = ',"pending":true'
      summary.pending++
    } else if (latency === LATENCY_SATURATED) {
      tail = `,"latency_ns":${latency},"latency_saturated":true`
      summary.saturated++
    } else tail = `,"latency_ns":${latency}`
    const ts = micros(times[i * 4]! * 1e6)
    // a pending request's slice ends when the recorder stopped
    const dur = still ? Math.max(0, micros((traceEnd - times[i * 4]!) * 1e6)) : latency / 1000
    const client = CLIENT_NAMES[flagClient(flags)] ?? 'default'
    // written by hand, not JSON.stringify: every field is a number or plain ASCII (hex,
    // names from fixed tables), and this is most of an export's time
    const event =
      `{"name":"${type.toUpperCase()} ${address} ${dirText(type, dir)}","cat":"${type}","ph":"X",` +
      `"ts":${ts},"dur":${dur},"pid":${vmPid(vmid)},"tid":${vcpuTid(vmid, vcpu)},` +
      `"args":{"address":"${address}","size":${flagSize(flags)},"direction":"${dir}",` +
      `"value":"0x${u64[i * 4 + 2]!.toString(16)}","client":"${client}","type":"${type}"${tail}}}`
    out += (first ? '' : ',\n') + event
    first = false
    summary.slices++
    if (out.length >= 256 * 1024) {
      yield out
      out = ''
    }
  }
  yield `${out}\n]}\n`
}
