// One logged HSM ioctl decoded with the ABI tables (src/core/abi), for `hsmctl ioctl log`:
// its name, the struct fields it passed (and, for the read-back requests, those the kernel
// wrote back), the result, errno and duration. `ioctlLine` renders it strace-like:
//
//   CREATE_VM {vmid=0, vcpu_num=0, uuid="vm1", ...} => {vmid=1, vcpu_num=1} = 0 <12us>

import { PmCmd } from '../abi/constants.js'
import { errnoByCode, errnoInfo } from '../abi/errno.js'
import { formatRequest, ioctlByRequest, type IoctlInfo } from '../abi/ioctls.js'
import { decode, type FieldValue, type Layout, type StructValue } from '../abi/layout.js'
import { acrn_cstate_data, acrn_pstate_data } from '../abi/structs.js'
import { SOURCE_NAMES, type IoctlEntry, type IoctlSourceName } from './ioctl-log.js'

/** A decoded field, JSON-ready: 64-bit values and byte arrays as strings. */
export type FieldJson = number | string | FieldJson[] | { [name: string]: FieldJson }
export type FieldsJson = { [name: string]: FieldJson }

export interface IoctlCall {
  seq: number
  /** Daemon clock (ms) when the call started. */
  t: number
  source: IoctlSourceName
  pid: number
  tid: number
  /** The fd in the process (the tap's view; the simulation's own fd for source sim). */
  fd: number
  /** Without the ACRN_IOCTL_ prefix; `ioctl 0x...` for a request the HSM does not know. */
  name: string
  request: string
  /** The struct it passed, decoded; for value requests `{ value }`; absent for `_IO` ones. */
  arg?: FieldsJson
  /** What the kernel wrote back, on success (CREATE_VM, PM_GET_CPU_STATE). */
  out?: FieldsJson
  /** The argument's bytes could not all be read (a bad pointer: the kernel said EFAULT). */
  unreadable?: true
  result: number
  /** The errno symbol on failure, else null. */
  errno: string | null
  durationNs: number
}

function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`
}

/** A u8 array: a C string if it reads as one (VM names, device names), else hex bytes. */
function bytesJson(b: Uint8Array): string {
  const end = b.indexOf(0)
  const text = b.subarray(0, end < 0 ? b.length : end)
  const printable = text.every((c) => c >= 0x20 && c < 0x7f)
  const tailZero = end < 0 || b.subarray(end).every((c) => c === 0)
  if (printable && tailZero) return JSON.stringify(String.fromCharCode(...text))
  return hex(BigInt('0x' + (Buffer.from(b).toString('hex') || '0')))
}

function fieldJson(v: FieldValue): FieldJson {
  if (typeof v === 'number') return v
  if (typeof v === 'bigint') return hex(v)
  if (v instanceof Uint8Array) return bytesJson(v)
  if (Array.isArray(v)) return v.map(fieldJson)
  return structJson(v)
}

function structJson(s: StructValue): FieldsJson {
  const out: FieldsJson = {}
  for (const [k, v] of Object.entries(s)) out[k] = fieldJson(v)
  return out
}

function decodeStruct(layout: Layout, bytes: Uint8Array): FieldsJson | undefined {
  return bytes.byteLength >= layout.size ? structJson(decode(layout, bytes)) : undefined
}

/** Bytes the kernel writes back for PM_GET_CPU_STATE by the command's type (§7.8). */
export function pmReplySize(cmd: bigint): number {
  const type = Number(cmd & 0xffn)
  if (type === PmCmd.GET_PX_CNT || type === PmCmd.GET_CX_CNT) return 8
  if (type === PmCmd.GET_PX_DATA) return acrn_pstate_data.size
  if (type === PmCmd.GET_CX_DATA) return acrn_cstate_data.size
  return 0
}

/** PM_GET_CPU_STATE's reply by the command's type (§7.8). */
function pmReply(cmd: bigint, bytes: Uint8Array): FieldsJson | undefined {
  const type = Number(cmd & 0xffn)
  if (type === PmCmd.GET_PX_DATA) return decodeStruct(acrn_pstate_data, bytes)
  if (type === PmCmd.GET_CX_DATA) return decodeStruct(acrn_cstate_data, bytes)
  if (bytes.byteLength >= 8)
    return { count: hex(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true)) }
  return undefined
}

/** The fields of `after` that differ from `before` (what the kernel wrote back). */
function changed(before: FieldsJson, after: FieldsJson): FieldsJson {
  const out: FieldsJson = {}
  for (const [k, v] of Object.entries(after))
    if (JSON.stringify(before[k]) !== JSON.stringify(v)) out[k] = v
  return out
}

function decodeArgument(info: IoctlInfo, e: IoctlEntry): Pick<IoctlCall, 'arg' | 'out'> {
  if (info.kind === 'value') return { arg: { value: hex(e.value) } }
  if (info.kind === 'none') return {}
  if (info.name === 'PM_GET_CPU_STATE') {
    // the tap sends the u64 command, then on success the reply
    if (e.bytes.byteLength < 8) return {}
    const cmd = new DataView(e.bytes.buffer, e.bytes.byteOffset).getBigUint64(0, true)
    const reply = e.result >= 0 ? pmReply(cmd, e.bytes.subarray(8)) : undefined
    return { arg: { cmd: hex(cmd) }, ...(reply ? { out: reply } : {}) }
  }
  const layout = info.layout!
  const arg = decodeStruct(layout, e.bytes)
  if (!arg) return {}
  if (info.dir !== 'rw' || e.result < 0) return { arg }
  // read-back: the bytes before the call, then those after
  const after = decodeStruct(layout, e.bytes.subarray(layout.size))
  return after ? { arg, out: changed(arg, after) } : { arg }
}

export function decodeIoctlEntry(e: IoctlEntry): IoctlCall {
  const info = ioctlByRequest(e.request)
  const failed = e.result < 0
  return {
    seq: e.seq,
    t: e.t,
    source: SOURCE_NAMES[e.source] ?? 'tap',
    pid: e.pid,
    tid: e.tid,
    fd: e.fd,
    name: info ? info.name : `ioctl ${formatRequest(e.request)}`,
    request: formatRequest(e.request),
    ...(info ? decodeArgument(info, e) : {}),
    ...(e.flags & 1 ? { unreadable: true as const } : {}),
    result: e.result,
    errno: failed ? errnoInfo(e.errno).code : null,
    durationNs: e.durationNs,
  }
}

// --- the strace-like line -----------------------------------------------------------

/** Arrays longer than this are cut with `...` in a line (JSON keeps every element). */
const LINE_ARRAY_MAX = 8

function valueText(v: FieldJson, depth: number): string {
  // a number beyond 16 bits is an address, a limit or a mask more often than a count
  if (typeof v === 'number') return v > 0xffff ? hex(v) : String(v)
  if (typeof v === 'string') return v
  if (Array.isArray(v)) {
    const shown = v.slice(0, LINE_ARRAY_MAX).map((x) => valueText(x, depth + 1))
    return `[${shown.join(', ')}${v.length > LINE_ARRAY_MAX ? ', ...' : ''}]`
  }
  return fieldsText(v, depth + 1)
}

const isZero = (v: FieldJson): boolean =>
  v === 0 ||
  v === '0x0' ||
  v === '""' ||
  (Array.isArray(v) && v.every(isZero)) ||
  (typeof v === 'object' && !Array.isArray(v) && Object.values(v).every(isZero))

/**
 * `{a=1, b=0x2}`: reserved fields only when not zero (the kernel checks them), and inside
 * nested structs only the fields that are not zero, so a line stays readable.
 */
export function fieldsText(f: FieldsJson, depth = 0): string {
  const parts: string[] = []
  for (const [k, v] of Object.entries(f)) {
    if ((depth > 0 || k.startsWith('reserved')) && isZero(v)) continue
    parts.push(`${k}=${valueText(v, depth)}`)
  }
  return `{${parts.join(', ')}}`
}

export function durationText(ns: number): string {
  if (ns < 10_000) return `${(ns / 1000).toFixed(1)}us`
  if (ns < 1_000_000) return `${Math.round(ns / 1000)}us`
  if (ns < 1_000_000_000) return `${(ns / 1e6).toFixed(ns < 10_000_000 ? 2 : 1)}ms`
  return `${(ns / 1e9).toFixed(2)}s`
}

export function ioctlLine(c: IoctlCall): string {
  const arg = c.arg
    ? c.arg.value !== undefined && Object.keys(c.arg).length === 1
      ? ` ${String(c.arg.value)}`
      : ` ${fieldsText(c.arg)}`
    : ''
  const out = c.out && Object.keys(c.out).length ? ` => ${fieldsText(c.out)}` : ''
  const cut = c.unreadable ? ' (argument unreadable)' : ''
  const result =
    c.errno === null
      ? `= ${c.result}`
      : `= ${c.result} ${c.errno} (${errnoByCode(c.errno)?.message ?? c.errno})`
  return `${c.name}${arg}${out}${cut} ${result} <${durationText(c.durationNs)}>`
}
