// The device shim's extension of the helper frame protocol: the TypeScript twin of
// helper/hsm-shim.h (helper/SHIM.md describes the design). The frames themselves are
// those of protocol.ts; these are the extra ops and their payloads.

import { FrameError } from './protocol.js'

export const ShimOp = {
  /** shim -> server, reply: u32 pid, u32 0, then the program name. */
  HELLO: 0x100,
  /** shim -> server, no reply: u32 region, u32 role, u64 address, u64 length. */
  MIRROR: 0x101,
  /** both ways, no reply: u32 region, u32 count, count x {u32 offset, u32 length, bytes}. */
  DIFF: 0x102,
  /** shim -> server, no reply: i32 fd, u32 kind, u64 id, u64 eventfd count. */
  FD: 0x103,
  /** shim -> server, reply: u64 eventfd id, u64 value. */
  EFD_WRITE: 0x104,
  /** shim -> server, no reply: u64 eventfd id. */
  EFD_READ: 0x105,
  /** shim -> server, no reply: u64 eventfd id. */
  EFD_RELEASE: 0x106,
  /** shim -> server, no reply, empty: a signal arrived during a blocking ioctl. */
  INTERRUPT: 0x107,
  /** server -> shim, no reply: u64 eventfd id, u64 value to add. */
  SIGNAL: 0x108,
  /** server -> shim, replied with the same op and id: u32 mode, u32 0. */
  SYNC: 0x109,
  /**
   * shim -> server, right after HELLO; reply result 0 or refused: u32 ring size, u32 0,
   * the ring file's path. Accepted: every later frame goes on the ring (ring.ts).
   */
  RING: 0x10a,
  /**
   * shim -> server, reply result 0 or -1 with an errno: u32 region, u32 role (RAM), u64
   * address, u64 length, u64 file offset of `address`, u32 the file's page size, u32 0,
   * then the file's path (/proc/PID/fd/N). The server maps the same file: no copy.
   */
  SHARE: 0x10b,
  /**
   * shim -> server, reply result 0 or -1 with an errno: i32 HSM fd (the server's), u32 0,
   * then the path (/proc/PID/fd/N) of a 64 KiB file holding a lane page
   * (helper/hsm-lane.h). The server maps it and serves the fd's VM through it (src/core/
   * sim/lane.ts); refused, the shim keeps every call on the ring.
   */
  LANE: 0x10c,
} as const

export const ShimRole = { IOREQ: 1, RAM: 2, MONITOR: 3 } as const
export type ShimRoleCode = (typeof ShimRole)[keyof typeof ShimRole]

export const ShimFdKind = { NOT_OPEN: 0, EVENTFD: 1, HSM: 2, OTHER: 3 } as const

export const SyncMode = { ACK: 0, PULL: 1 } as const

export const ShimSize = {
  HELLO_FIXED: 8,
  MIRROR: 24,
  DIFF_FIXED: 8,
  RANGE_HEADER: 8,
  FD: 24,
  EFD_WRITE: 16,
  EFD_ID: 8,
  SIGNAL: 16,
  SYNC: 8,
  RING_FIXED: 8,
  SHARE_FIXED: 40,
  LANE_FIXED: 8,
  MAX_PROGRAM: 255,
} as const

const EINVAL = 22
const decoder = new TextDecoder('utf-8', { fatal: false })

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength)
}

function expectSize(what: string, payload: Uint8Array, size: number): DataView {
  if (payload.byteLength !== size) {
    throw new FrameError(EINVAL, `${what} payload is ${payload.byteLength} bytes, expected ${size}`)
  }
  return view(payload)
}

export interface ShimHello {
  readonly pid: number
  readonly program: string
}

export function decodeShimHello(payload: Uint8Array): ShimHello {
  if (
    payload.byteLength < ShimSize.HELLO_FIXED ||
    payload.byteLength > ShimSize.HELLO_FIXED + ShimSize.MAX_PROGRAM
  ) {
    throw new FrameError(EINVAL, `shim hello payload of ${payload.byteLength} bytes`)
  }
  const v = view(payload)
  if (v.getUint32(4, true) !== 0) throw new FrameError(EINVAL, 'shim hello: reserved bytes')
  return {
    pid: v.getUint32(0, true),
    program: decoder.decode(payload.subarray(ShimSize.HELLO_FIXED)),
  }
}

export function encodeShimHello(hello: ShimHello): Uint8Array {
  const name = new TextEncoder().encode(hello.program).subarray(0, ShimSize.MAX_PROGRAM)
  const out = new Uint8Array(ShimSize.HELLO_FIXED + name.byteLength)
  view(out).setUint32(0, hello.pid, true)
  out.set(name, ShimSize.HELLO_FIXED)
  return out
}

export interface Mirror {
  readonly region: number
  readonly role: number
  readonly address: bigint
  readonly length: bigint
}

export function decodeMirror(payload: Uint8Array): Mirror {
  const v = expectSize('mirror', payload, ShimSize.MIRROR)
  return {
    region: v.getUint32(0, true),
    role: v.getUint32(4, true),
    address: v.getBigUint64(8, true),
    length: v.getBigUint64(16, true),
  }
}

export function encodeMirror(m: Mirror): Uint8Array {
  const out = new Uint8Array(ShimSize.MIRROR)
  const v = view(out)
  v.setUint32(0, m.region, true)
  v.setUint32(4, m.role, true)
  v.setBigUint64(8, m.address, true)
  v.setBigUint64(16, m.length, true)
  return out
}

export interface DiffRange {
  readonly offset: number
  readonly bytes: Uint8Array
}

/** A DIFF payload's ranges (views into the payload), checked against the frame's length. */
export function decodeDiff(payload: Uint8Array): { region: number; ranges: DiffRange[] } {
  if (payload.byteLength < ShimSize.DIFF_FIXED) {
    throw new FrameError(EINVAL, `diff payload of ${payload.byteLength} bytes`)
  }
  const v = view(payload)
  const region = v.getUint32(0, true)
  const count = v.getUint32(4, true)
  const ranges: DiffRange[] = []
  let at = ShimSize.DIFF_FIXED
  for (let i = 0; i < count; i++) {
    if (payload.byteLength - at < ShimSize.RANGE_HEADER) {
      throw new FrameError(EINVAL, `diff: range ${i} of ${count} is cut off`)
    }
    const offset = v.getUint32(at, true)
    const length = v.getUint32(at + 4, true)
    at += ShimSize.RANGE_HEADER
    if (length > payload.byteLength - at) {
      throw new FrameError(EINVAL, `diff: range ${i} runs past the frame`)
    }
    ranges.push({ offset, bytes: payload.subarray(at, at + length) })
    at += length
  }
  if (at !== payload.byteLength) throw new FrameError(EINVAL, 'diff: bytes after the last range')
  return { region, ranges }
}

export function encodeDiff(region: number, ranges: readonly DiffRange[]): Uint8Array {
  let size = ShimSize.DIFF_FIXED
  for (const r of ranges) size += ShimSize.RANGE_HEADER + r.bytes.byteLength
  const out = new Uint8Array(size)
  const v = view(out)
  v.setUint32(0, region, true)
  v.setUint32(4, ranges.length, true)
  let at = ShimSize.DIFF_FIXED
  for (const r of ranges) {
    v.setUint32(at, r.offset, true)
    v.setUint32(at + 4, r.bytes.byteLength, true)
    out.set(r.bytes, at + ShimSize.RANGE_HEADER)
    at += ShimSize.RANGE_HEADER + r.bytes.byteLength
  }
  return out
}

export interface FdDeclaration {
  readonly fd: number
  readonly kind: number
  readonly id: bigint
  readonly count: bigint
}

export function decodeFdDeclaration(payload: Uint8Array): FdDeclaration {
  const v = expectSize('fd', payload, ShimSize.FD)
  const kind = v.getUint32(4, true)
  if (kind > ShimFdKind.OTHER) throw new FrameError(EINVAL, `fd: unknown kind ${kind}`)
  return {
    fd: v.getInt32(0, true),
    kind,
    id: v.getBigUint64(8, true),
    count: v.getBigUint64(16, true),
  }
}

export function encodeFdDeclaration(d: FdDeclaration): Uint8Array {
  const out = new Uint8Array(ShimSize.FD)
  const v = view(out)
  v.setInt32(0, d.fd, true)
  v.setUint32(4, d.kind, true)
  v.setBigUint64(8, d.id, true)
  v.setBigUint64(16, d.count, true)
  return out
}

/** EFD_WRITE and SIGNAL: u64 id, u64 value. */
export function decodeIdValue(what: string, payload: Uint8Array): { id: bigint; value: bigint } {
  const v = expectSize(what, payload, 16)
  return { id: v.getBigUint64(0, true), value: v.getBigUint64(8, true) }
}

export function encodeIdValue(id: bigint, value: bigint): Uint8Array {
  const out = new Uint8Array(16)
  const v = view(out)
  v.setBigUint64(0, id, true)
  v.setBigUint64(8, value, true)
  return out
}

export function decodeId(what: string, payload: Uint8Array): bigint {
  return expectSize(what, payload, ShimSize.EFD_ID).getBigUint64(0, true)
}

export function encodeSync(mode: number): Uint8Array {
  const out = new Uint8Array(ShimSize.SYNC)
  view(out).setUint32(0, mode, true)
  return out
}

export interface RingOffer {
  readonly size: number
  readonly path: string
}

export function decodeRingOffer(payload: Uint8Array): RingOffer {
  if (
    payload.byteLength <= ShimSize.RING_FIXED ||
    payload.byteLength > ShimSize.RING_FIXED + 4095
  ) {
    throw new FrameError(EINVAL, `ring offer payload of ${payload.byteLength} bytes`)
  }
  const v = view(payload)
  if (v.getUint32(4, true) !== 0) throw new FrameError(EINVAL, 'ring offer: reserved bytes')
  const path = decoder.decode(payload.subarray(ShimSize.RING_FIXED))
  if (!path.startsWith('/') || path.includes('\0')) {
    throw new FrameError(EINVAL, 'ring offer: the path must be absolute')
  }
  return { size: v.getUint32(0, true), path }
}

/** `fixed` bytes (zero but for the u32 `first` at 0), then `path`. */
function pathPayload(fixed: number, first: number, path: string): Uint8Array {
  const bytes = new TextEncoder().encode(path)
  const out = new Uint8Array(fixed + bytes.byteLength)
  view(out).setUint32(0, first >>> 0, true)
  out.set(bytes, fixed)
  return out
}

export function encodeRingOffer(offer: RingOffer): Uint8Array {
  return pathPayload(ShimSize.RING_FIXED, offer.size, offer.path)
}

/** A RAM range the shimmed process maps MAP_SHARED from a file it names (SHARE). */
export interface Share {
  readonly region: number
  readonly role: number
  /** In the shimmed process: page-aligned. */
  readonly address: bigint
  readonly length: bigint
  /** Where `address` is in the file. */
  readonly offset: bigint
  /** The file's page size (a hugetlbfs file's is its huge page): mappings align to it. */
  readonly pageSize: number
  readonly path: string
}

/**
 * A payload of `fixed` bytes, whose u32 at `reserved` must be 0, then a path (/proc/PID/fd/N)
 * of at most 4095 bytes: its view and the path.
 */
function withPath(
  what: string,
  payload: Uint8Array,
  fixed: number,
  reserved: number,
): { v: DataView; path: string } {
  if (payload.byteLength <= fixed || payload.byteLength > fixed + 4095)
    throw new FrameError(EINVAL, `${what} payload of ${payload.byteLength} bytes`)
  const v = view(payload)
  if (v.getUint32(reserved, true) !== 0) throw new FrameError(EINVAL, `${what}: reserved bytes`)
  const path = decoder.decode(payload.subarray(fixed))
  if (path.includes('\0')) throw new FrameError(EINVAL, `${what}: a NUL in the path`)
  return { v, path }
}

export function decodeShare(payload: Uint8Array): Share {
  const { v, path } = withPath('share', payload, ShimSize.SHARE_FIXED, 36)
  return {
    region: v.getUint32(0, true),
    role: v.getUint32(4, true),
    address: v.getBigUint64(8, true),
    length: v.getBigUint64(16, true),
    offset: v.getBigUint64(24, true),
    pageSize: v.getUint32(32, true),
    path,
  }
}

export interface LaneOffer {
  readonly fd: number
  readonly path: string
}

export function decodeLane(payload: Uint8Array): LaneOffer {
  const { v, path } = withPath('lane', payload, ShimSize.LANE_FIXED, 4)
  return { fd: v.getInt32(0, true), path }
}

export function encodeLane(l: LaneOffer): Uint8Array {
  return pathPayload(ShimSize.LANE_FIXED, l.fd, l.path)
}

export function encodeShare(s: Share): Uint8Array {
  const path = new TextEncoder().encode(s.path)
  const out = new Uint8Array(ShimSize.SHARE_FIXED + path.byteLength)
  const v = view(out)
  v.setUint32(0, s.region, true)
  v.setUint32(4, s.role, true)
  v.setBigUint64(8, s.address, true)
  v.setBigUint64(16, s.length, true)
  v.setBigUint64(24, s.offset, true)
  v.setUint32(32, s.pageSize, true)
  out.set(path, ShimSize.SHARE_FIXED)
  return out
}
