// The framed binary protocol between hsmctl and hsm-helper (helper/PROTOCOL.md), the
// TypeScript twin of helper/hsm-protocol.h. Frames and payloads are encoded and decoded
// here for both directions: `hsmctl sim serve` (sim-server.ts, which answers the device
// shim's frames with the simulated platform) reuses this module as it is.
//
// A frame is a 32-byte little-endian header and a payload:
//   0 u32 magic 'HSMP' | 4 u8 version | 5 u8 flags | 6 u16 op | 8 u32 id
//   12 u32 payload length | 16 i64 result | 24 i32 errno | 28 u32 check (FNV-1a of 0..27)

export const MAGIC = 0x504d5348
export const VERSION = 1
export const HEADER_SIZE = 32
/** The largest payload either side sends or accepts. */
export const MAX_PAYLOAD = 1 << 20
/** The longest path the open op carries (PATH_MAX - 1). */
export const MAX_PATH = 4095

export const Op = {
  HELLO: 0,
  OPEN: 1,
  CLOSE: 2,
  IOCTL: 3,
  MMAP: 4,
  READ: 5,
  WRITE: 6,
  EVENTFD: 7,
  EVENTFD_READ: 8,
  EVENTFD_WRITE: 9,
  MUNMAP: 10,
  /** Only in the test build of the helper (hsm-helper-testing); unknown op elsewhere. */
  TEST_WAIT: 0x7f00,
  /** Unsolicited, id 0: the input was not a frame (bad magic or header check). */
  PROTOCOL_ERROR: 0xffff,
} as const
export type OpCode = (typeof Op)[keyof typeof Op]

const OP_NAMES = new Map<number, string>(
  Object.entries(Op).map(([name, code]) => [code, name.toLowerCase()]),
)

/** 'ioctl', 'eventfd_read', ... or 'op 0x1234' for codes this side does not know. */
export function opName(op: number): string {
  return OP_NAMES.get(op) ?? `op 0x${op.toString(16)}`
}

/** Reply flag: the helper refused the frame itself; the payload is a UTF-8 message. */
export const FLAG_REFUSED = 0x01

/** How an ioctl's argument travels. */
export const ArgKind = {
  /** The kernel ignores the argument. */
  NONE: 0,
  /** The u64 is the argument (SET_IRQLINE, VM_INTR_MONITOR). */
  VALUE: 1,
  /** The payload bytes are what the pointer points at. */
  BUFFER: 2,
  /** The u64 is an address inside the helper's own mappings. */
  POINTER: 3,
} as const
export type ArgKindCode = (typeof ArgKind)[keyof typeof ArgKind]

/** HELLO reply feature bits. */
export const FEATURE_TESTING = 0x01

/** Fixed payload sizes (PROTOCOL.md, "Payloads"). */
export const PayloadSize = {
  CLOSE: 8,
  IOCTL_FIXED: 24,
  MMAP: 8,
  READ: 16,
  WRITE_FIXED: 8,
  EVENTFD: 8,
  EVENTFD_READ: 8,
  EVENTFD_WRITE: 16,
  MUNMAP: 16,
  TEST_WAIT: 8,
  HELLO_FIXED: 16,
} as const

export interface FrameHeader {
  readonly version: number
  readonly flags: number
  readonly op: number
  /** Chosen by the requester; 0 is reserved for unsolicited protocol errors. */
  readonly id: number
  /** Payload length in bytes. */
  readonly length: number
  /** Replies: the call's return value (an fd, an address, 0), -1 on failure. */
  readonly result: bigint
  /** Replies: the errno when the call failed, else 0. */
  readonly errno: number
}

export interface Frame extends FrameHeader {
  readonly payload: Uint8Array
}

export interface FrameInit {
  readonly op: number
  readonly id: number
  readonly payload?: Uint8Array
  readonly flags?: number
  readonly result?: bigint
  readonly errno?: number
  readonly version?: number
}

/** A payload that does not decode; `errno` is what a receiver refuses it with. */
export class FrameError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message)
    this.name = 'FrameError'
  }
}

const EINVAL = 22

/** FNV-1a over header bytes 0..27: tells a real header from payload bytes holding the magic. */
export function headerCheck(bytes: Uint8Array, offset = 0): number {
  let x = 0x811c9dc5
  for (let i = offset; i < offset + 28; i++) {
    x ^= bytes[i]!
    x = Math.imul(x, 0x01000193) >>> 0
  }
  return x
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

// Frames and payloads of up to SLAB_PIECE bytes are views into shared slabs (so mind
// their byteOffset): a small Uint8Array of its own lives on V8's heap, and the DataView
// an encoder or decoder puts over it would move it off the heap, a malloc and a copy for
// every frame. A slab is never reused, only dropped once no view is left: a fresh view is
// zeroed and nobody else's.
const SLAB = 16 * 1024
const SLAB_PIECE = 1024
let slab = new ArrayBuffer(SLAB)
let slabUsed = 0

function zeroed(n: number): Uint8Array {
  if (n > SLAB_PIECE) return new Uint8Array(n)
  if (slabUsed + n > SLAB) {
    slab = new ArrayBuffer(SLAB)
    slabUsed = 0
  }
  const out = new Uint8Array(slab, slabUsed, n)
  slabUsed += (n + 7) & ~7 // 8-byte aligned, as a malloc'd buffer would be
  return out
}

/** A copy of bytes[start, end) that the receiver may keep (Buffer#slice would share memory). */
function copyOf(bytes: Uint8Array, start: number, end = bytes.byteLength): Uint8Array {
  const out = zeroed(Math.max(0, end - start))
  out.set(bytes.subarray(start, end))
  return out
}

/** Write a header at `offset` of `into` (which must have HEADER_SIZE bytes there). */
export function encodeHeaderInto(into: Uint8Array, offset: number, h: FrameHeader): void {
  const v = view(into)
  v.setUint32(offset, MAGIC, true)
  v.setUint8(offset + 4, h.version)
  v.setUint8(offset + 5, h.flags)
  v.setUint16(offset + 6, h.op, true)
  v.setUint32(offset + 8, h.id, true)
  v.setUint32(offset + 12, h.length, true)
  if (h.result === 0n) {
    v.setUint32(offset + 16, 0, true)
    v.setUint32(offset + 20, 0, true)
  } else {
    v.setBigInt64(offset + 16, h.result, true)
  }
  v.setInt32(offset + 24, h.errno, true)
  v.setUint32(offset + 28, headerCheck(into, offset), true)
}

/** One frame: header and payload. */
export function encodeFrame(init: FrameInit): Uint8Array {
  const payload = init.payload ?? new Uint8Array(0)
  const out = zeroed(HEADER_SIZE + payload.byteLength)
  encodeHeaderInto(out, 0, {
    version: init.version ?? VERSION,
    flags: init.flags ?? 0,
    op: init.op,
    id: init.id,
    length: payload.byteLength,
    result: init.result ?? 0n,
    errno: init.errno ?? 0,
  })
  out.set(payload, HEADER_SIZE)
  return out
}

export type HeaderStatus = 'bad-magic' | 'bad-check'

/** Decode the header at `offset` (HEADER_SIZE bytes must be there); the version is not judged. */
export function decodeHeader(bytes: Uint8Array, offset = 0): FrameHeader | HeaderStatus {
  return headerAt(view(bytes), bytes, offset)
}

/** A frame of a decoded header (written out: a spread costs more than the decode). */
function withPayload(h: FrameHeader, payload: Uint8Array): Frame {
  const { version, flags, op, id, length, result, errno } = h
  return { version, flags, op, id, length, result, errno, payload }
}

/** decodeHeader over a DataView of `bytes` the caller already has. */
function headerAt(v: DataView, bytes: Uint8Array, offset: number): FrameHeader | HeaderStatus {
  if (v.getUint32(offset, true) !== MAGIC) return 'bad-magic'
  if (v.getUint32(offset + 28, true) !== headerCheck(bytes, offset)) return 'bad-check'
  return {
    version: v.getUint8(offset + 4),
    flags: v.getUint8(offset + 5),
    op: v.getUint16(offset + 6, true),
    id: v.getUint32(offset + 8, true),
    length: v.getUint32(offset + 12, true),
    // Most results are 0: no BigInt to make for them.
    result:
      v.getUint32(offset + 16, true) === 0 && v.getUint32(offset + 20, true) === 0
        ? 0n
        : v.getBigInt64(offset + 16, true),
    errno: v.getInt32(offset + 24, true),
  }
}

export interface FrameDecoderEvents {
  /** A whole frame (its payload is a copy the receiver may keep). */
  frame(frame: Frame): void
  /** The stream held bytes that are not a header; reported once per run of garbage. */
  garbage?(status: HeaderStatus): void
  /** A frame over MAX_PAYLOAD: its payload is skipped, the header reported. */
  oversize?(header: FrameHeader): void
}

const MAGIC_BYTES = [0x48, 0x53, 0x4d, 0x50] // 'HSMP'

/**
 * Splits a byte stream into frames, exactly as hsm-helper reads its stdin: after bytes
 * that are not a header it reports once and resynchronises at the next valid header; a
 * frame over the limit has its payload skipped.
 */
export class FrameDecoder {
  private chunks: Uint8Array[] = []
  private buffered = 0
  private discard = 0
  private resyncing = false

  constructor(private readonly events: FrameDecoderEvents) {}

  /** Bytes received that are not yet a whole frame. */
  get pending(): number {
    return this.buffered + this.discard
  }

  /**
   * Bytes of the stream. `transient`: the chunk's memory is reused after this call, so
   * what is kept for a later frame is copied (payloads always are).
   */
  push(chunk: Uint8Array, transient = false): void {
    if (chunk.byteLength === 0) return
    let at = 0
    if (this.buffered === 0 && this.discard === 0 && !this.resyncing) {
      // Nothing held back: take the whole frames straight out of the chunk.
      const v = view(chunk)
      while (chunk.byteLength - at >= HEADER_SIZE) {
        const header = headerAt(v, chunk, at)
        if (typeof header === 'string') break
        const { length } = header
        if (length > MAX_PAYLOAD || chunk.byteLength - at - HEADER_SIZE < length) break
        const start = at + HEADER_SIZE
        at = start + length
        const payload = copyOf(chunk, start, at)
        this.events.frame(withPayload(header, payload))
      }
      if (at === chunk.byteLength) return
    }
    // A part of a frame, or something to report: the general path.
    const rest = transient ? chunk.slice(at) : at === 0 ? chunk : chunk.subarray(at)
    this.chunks.push(rest)
    this.buffered += rest.byteLength
    this.drain()
  }

  /** The first chunk holding at least `n` bytes, merging chunks only when a frame spans them. */
  private head(n: number): Uint8Array {
    let first = this.chunks[0]!
    if (first.byteLength >= n) return first
    const merged = new Uint8Array(this.buffered)
    let at = 0
    for (const c of this.chunks) {
      merged.set(c, at)
      at += c.byteLength
    }
    this.chunks = [merged]
    first = merged
    return first
  }

  private consume(n: number): void {
    this.buffered -= n
    while (n > 0) {
      const first = this.chunks[0]!
      if (first.byteLength <= n) {
        this.chunks.shift()
        n -= first.byteLength
      } else {
        this.chunks[0] = first.subarray(n)
        n = 0
      }
    }
  }

  private drain(): void {
    for (;;) {
      if (this.discard > 0) {
        const skip = Math.min(this.discard, this.buffered)
        this.consume(skip)
        this.discard -= skip
        if (this.discard > 0) return
        continue
      }
      if (this.buffered < HEADER_SIZE) return
      const bytes = this.head(HEADER_SIZE)
      const header = decodeHeader(bytes, 0)
      if (typeof header === 'string') {
        if (!this.resyncing) {
          this.resyncing = true
          this.events.garbage?.(header)
        }
        this.consume(this.skipToMagic())
        continue
      }
      this.resyncing = false
      if (header.length > MAX_PAYLOAD) {
        this.consume(HEADER_SIZE)
        this.discard = header.length
        this.events.oversize?.(header)
        continue
      }
      const total = HEADER_SIZE + header.length
      if (this.buffered < total) return
      const whole = this.head(total)
      const payload = copyOf(whole, HEADER_SIZE, total)
      this.consume(total)
      this.events.frame(withPayload(header, payload))
    }
  }

  /** Bytes to drop so the stream starts at the next possible magic (at least 1). */
  private skipToMagic(): number {
    const bytes = this.head(this.buffered)
    for (let i = 1; i + 4 <= bytes.byteLength; i++) {
      if (
        bytes[i] === MAGIC_BYTES[0] &&
        bytes[i + 1] === MAGIC_BYTES[1] &&
        bytes[i + 2] === MAGIC_BYTES[2] &&
        bytes[i + 3] === MAGIC_BYTES[3]
      ) {
        return i
      }
    }
    // Keep a tail that may be the start of a magic split across chunks.
    return Math.max(1, bytes.byteLength - 3)
  }
}

// --- Payloads ---------------------------------------------------------------------------

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: false })

function expectLength(what: string, payload: Uint8Array, size: number): DataView {
  if (payload.byteLength !== size) {
    throw new FrameError(EINVAL, `${what} payload is ${payload.byteLength} bytes, expected ${size}`)
  }
  return view(payload)
}

function expectZero(what: string, reserved: number | bigint): void {
  if (reserved !== 0 && reserved !== 0n) {
    throw new FrameError(EINVAL, `${what}: reserved bytes must be zero`)
  }
}

function fixed(size: number, fill: (v: DataView) => void): Uint8Array {
  const out = zeroed(size)
  fill(view(out))
  return out
}

/** open: the path as UTF-8 (1..MAX_PATH bytes, no NUL). */
export function encodeOpen(path: string): Uint8Array {
  return encoder.encode(path)
}

export function decodeOpen(payload: Uint8Array): string {
  if (payload.byteLength === 0 || payload.byteLength > MAX_PATH) {
    throw new FrameError(
      EINVAL,
      `open: the path must be 1 to ${MAX_PATH} bytes, got ${payload.byteLength}`,
    )
  }
  if (payload.includes(0)) throw new FrameError(EINVAL, 'open: the path contains a NUL byte')
  return decoder.decode(payload)
}

/** close, eventfd_read, test_wait: i32 fd, u32 reserved. */
export function encodeFd(fd: number): Uint8Array {
  return fixed(8, (v) => v.setInt32(0, fd, true))
}

export function decodeFd(what: string, payload: Uint8Array): number {
  const v = expectLength(what, payload, 8)
  expectZero(what, v.getUint32(4, true))
  return v.getInt32(0, true)
}

export interface IoctlRequest {
  readonly fd: number
  readonly request: number
  readonly kind: ArgKindCode
  /** The value (VALUE), the address (POINTER), else 0. */
  readonly value: bigint
  /** The argument bytes (BUFFER), else empty. */
  readonly bytes: Uint8Array
}

/** ioctl: i32 fd, u32 request, u16 kind, u16 + u32 reserved, u64 value, then the bytes. */
export function encodeIoctl(req: IoctlRequest): Uint8Array {
  const out = zeroed(PayloadSize.IOCTL_FIXED + req.bytes.byteLength)
  const v = view(out)
  v.setInt32(0, req.fd, true)
  v.setUint32(4, req.request >>> 0, true)
  v.setUint16(8, req.kind, true)
  v.setBigUint64(16, BigInt.asUintN(64, req.value), true)
  out.set(req.bytes, PayloadSize.IOCTL_FIXED)
  return out
}

export function decodeIoctl(payload: Uint8Array): IoctlRequest {
  if (payload.byteLength < PayloadSize.IOCTL_FIXED) {
    throw new FrameError(
      EINVAL,
      `ioctl payload is ${payload.byteLength} bytes, shorter than its ${PayloadSize.IOCTL_FIXED}-byte fixed part`,
    )
  }
  const v = view(payload)
  expectZero('ioctl', v.getUint16(10, true) | v.getUint32(12, true))
  const kind = v.getUint16(8, true)
  if (kind > ArgKind.POINTER) throw new FrameError(EINVAL, `ioctl: unknown argument kind ${kind}`)
  return {
    fd: v.getInt32(0, true),
    request: v.getUint32(4, true),
    kind: kind as ArgKindCode,
    value: v.getBigUint64(16, true),
    bytes: copyOf(payload, PayloadSize.IOCTL_FIXED),
  }
}

/** mmap: u64 length. */
export function encodeMmap(length: bigint): Uint8Array {
  return fixed(8, (v) => v.setBigUint64(0, length, true))
}

export function decodeMmap(payload: Uint8Array): bigint {
  return expectLength('mmap', payload, 8).getBigUint64(0, true)
}

/** munmap: u64 address, u64 length. */
export function encodeMunmap(address: bigint, length: bigint): Uint8Array {
  return fixed(PayloadSize.MUNMAP, (v) => {
    v.setBigUint64(0, BigInt.asUintN(64, address), true)
    v.setBigUint64(8, BigInt.asUintN(64, length), true)
  })
}
export function decodeMunmap(payload: Uint8Array): { address: bigint; length: bigint } {
  const v = expectLength('munmap', payload, PayloadSize.MUNMAP)
  return { address: v.getBigUint64(0, true), length: v.getBigUint64(8, true) }
}

/** read: u64 address, u32 length, u32 reserved. */
export function encodeRead(address: bigint, length: number): Uint8Array {
  return fixed(16, (v) => {
    v.setBigUint64(0, address, true)
    v.setUint32(8, length, true)
  })
}

export function decodeRead(payload: Uint8Array): { address: bigint; length: number } {
  const v = expectLength('read', payload, 16)
  expectZero('read', v.getUint32(12, true))
  return { address: v.getBigUint64(0, true), length: v.getUint32(8, true) }
}

/** write: u64 address, then the bytes. */
export function encodeWrite(address: bigint, bytes: Uint8Array): Uint8Array {
  const out = zeroed(PayloadSize.WRITE_FIXED + bytes.byteLength)
  view(out).setBigUint64(0, address, true)
  out.set(bytes, PayloadSize.WRITE_FIXED)
  return out
}

export function decodeWrite(payload: Uint8Array): { address: bigint; bytes: Uint8Array } {
  if (payload.byteLength < PayloadSize.WRITE_FIXED) {
    throw new FrameError(
      EINVAL,
      `write payload is ${payload.byteLength} bytes, shorter than ${PayloadSize.WRITE_FIXED}`,
    )
  }
  return {
    address: view(payload).getBigUint64(0, true),
    bytes: copyOf(payload, PayloadSize.WRITE_FIXED),
  }
}

/** eventfd: u32 initval, u32 reserved. */
export function encodeEventfd(initval: number): Uint8Array {
  return fixed(8, (v) => v.setUint32(0, initval, true))
}

export function decodeEventfd(payload: Uint8Array): number {
  const v = expectLength('eventfd', payload, 8)
  expectZero('eventfd', v.getUint32(4, true))
  return v.getUint32(0, true)
}

/** eventfd_write: i32 fd, u32 reserved, u64 value. */
export function encodeEventfdWrite(fd: number, value: bigint): Uint8Array {
  return fixed(16, (v) => {
    v.setInt32(0, fd, true)
    v.setBigUint64(8, value, true)
  })
}

export function decodeEventfdWrite(payload: Uint8Array): { fd: number; value: bigint } {
  const v = expectLength('eventfd_write', payload, 16)
  expectZero('eventfd_write', v.getUint32(4, true))
  return { fd: v.getInt32(0, true), value: v.getBigUint64(8, true) }
}

/** A u64 reply payload (eventfd_read, test_wait). */
export function encodeU64(value: bigint): Uint8Array {
  return fixed(8, (v) => v.setBigUint64(0, value, true))
}

export function decodeU64(what: string, payload: Uint8Array): bigint {
  return expectLength(what, payload, 8).getBigUint64(0, true)
}

export interface Hello {
  readonly maxPayload: number
  readonly pid: number
  readonly features: number
  /** The device path the helper was started with (the only one it opens). */
  readonly device: string
}

/** HELLO reply: u32 max payload, u32 pid, u32 features, u32 reserved, then the device path. */
export function encodeHello(hello: Hello): Uint8Array {
  const path = encoder.encode(hello.device)
  const out = new Uint8Array(PayloadSize.HELLO_FIXED + path.byteLength)
  const v = view(out)
  v.setUint32(0, hello.maxPayload, true)
  v.setUint32(4, hello.pid, true)
  v.setUint32(8, hello.features, true)
  out.set(path, PayloadSize.HELLO_FIXED)
  return out
}

export function decodeHello(payload: Uint8Array): Hello {
  if (payload.byteLength < PayloadSize.HELLO_FIXED) {
    throw new FrameError(EINVAL, `hello reply is ${payload.byteLength} bytes, too short`)
  }
  const v = view(payload)
  return {
    maxPayload: v.getUint32(0, true),
    pid: v.getUint32(4, true),
    features: v.getUint32(8, true),
    device: decoder.decode(payload.subarray(PayloadSize.HELLO_FIXED)),
  }
}

/** The message of a refused reply or a protocol error. */
export function encodeMessage(message: string): Uint8Array {
  return encoder.encode(message)
}

export function decodeMessage(payload: Uint8Array): string {
  return decoder.decode(payload)
}
