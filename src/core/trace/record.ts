// One I/O request as the trace keeps it: a fixed 32-byte little-endian record, so that
// the ring buffer, the live statistics and the recording files all work on the same
// bytes with typed arrays and allocate nothing per request.
//
//   0  f64  t        milliseconds since the trace epoch (performance.now() of the daemon)
//   8  u64  addr     port, guest physical address, or PCI bus<<20 | dev<<15 | func<<12 | reg
//  16  u64  value    the value written, or the value the guest read
//  24  u32  latency  nanoseconds from PENDING to COMPLETE, saturating at 0xffffffff
//  28  u16  vmid
//  30  u8   vcpu
//  31  u8   flags    type (bits 1:0), write (bit 2), client (bits 4:3), size log2 (bits 6:5)

export const RECORD_SIZE = 32
/** Words (u32) per record, for Uint32Array views. */
export const RECORD_WORDS = RECORD_SIZE / 4

/**
 * A predicate over one record in place: `words` is the buffer as u32 words and `o` the
 * record's first word (so word o+2/o+3 is the address, o+6 the latency, o+7 vmid/vcpu/flags).
 */
export type RecordFilter = (words: Uint32Array, o: number) => boolean

export const TYPE_PIO = 0
export const TYPE_MMIO = 1
export const TYPE_PCICFG = 2
export const CLIENT_DEFAULT = 0
export const CLIENT_IOEVENTFD = 1
export const CLIENT_KERNEL = 2

export type TraceType = 'pio' | 'mmio' | 'pcicfg'
export type TraceDir = 'read' | 'write'
export type TraceClient = 'default' | 'ioeventfd' | 'kernel'

export const TYPE_NAMES: readonly TraceType[] = ['pio', 'mmio', 'pcicfg']
export const CLIENT_NAMES: readonly TraceClient[] = ['default', 'ioeventfd', 'kernel']

const SIZE_LOG2: Readonly<Record<number, number>> = { 1: 0, 2: 1, 4: 2, 8: 3 }

export function packFlags(type: number, write: boolean, client: number, size: number): number {
  return (type & 3) | (write ? 4 : 0) | ((client & 3) << 3) | ((SIZE_LOG2[size] ?? 2) << 5)
}

export const flagType = (flags: number) => flags & 3
export const flagWrite = (flags: number) => (flags & 4) !== 0
export const flagClient = (flags: number) => (flags >> 3) & 3
export const flagSize = (flags: number) => 1 << ((flags >> 5) & 3)

/** PCI config address as the trace keeps it (room for the 12-bit extended register). */
export function pciAddr(bus: number, dev: number, func: number, reg: number): bigint {
  return BigInt(((bus & 0xff) << 20) | ((dev & 0x1f) << 15) | ((func & 7) << 12) | (reg & 0xfff))
}

export function unpackPciAddr(addr: bigint) {
  const a = Number(addr)
  return { bus: (a >>> 20) & 0xff, dev: (a >>> 15) & 0x1f, func: (a >>> 12) & 7, reg: a & 0xfff }
}

/** A decoded record, for the log view and tests (hot paths read the bytes directly). */
export interface TraceEvent {
  t: number
  addr: bigint
  value: bigint
  latencyNs: number
  vmid: number
  vcpu: number
  type: TraceType
  dir: TraceDir
  client: TraceClient
  size: number
}

export function writeRecord(
  view: DataView,
  offset: number,
  e: Omit<TraceEvent, 'type' | 'dir' | 'client'> & { flags: number },
) {
  view.setFloat64(offset, e.t, true)
  view.setBigUint64(offset + 8, e.addr, true)
  view.setBigUint64(offset + 16, e.value, true)
  view.setUint32(offset + 24, Math.min(0xffff_ffff, Math.max(0, Math.round(e.latencyNs))), true)
  view.setUint16(offset + 28, e.vmid, true)
  view.setUint8(offset + 30, e.vcpu)
  view.setUint8(offset + 31, e.flags)
}

export function readRecord(view: DataView, offset: number): TraceEvent {
  const flags = view.getUint8(offset + 31)
  return {
    t: view.getFloat64(offset, true),
    addr: view.getBigUint64(offset + 8, true),
    value: view.getBigUint64(offset + 16, true),
    latencyNs: view.getUint32(offset + 24, true),
    vmid: view.getUint16(offset + 28, true),
    vcpu: view.getUint8(offset + 30),
    type: TYPE_NAMES[flagType(flags)] ?? 'pio',
    dir: flagWrite(flags) ? 'write' : 'read',
    client: CLIENT_NAMES[flagClient(flags)] ?? 'default',
    size: flagSize(flags),
  }
}

export function* records(bytes: Uint8Array): Generator<TraceEvent> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let off = 0; off + RECORD_SIZE <= bytes.byteLength; off += RECORD_SIZE)
    yield readRecord(view, off)
}
