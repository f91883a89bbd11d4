// The daemon's wire format: newline-delimited JSON-RPC 2.0 over a unix socket, 64-bit
// values as hex strings. Both ends use these helpers, so every message that crosses the
// socket is checked the same way.

import {
  ConflictError,
  DaemonUnreachableError,
  HsmctlError,
  HsmError,
  InterruptedError,
  NotFoundError,
  UsageError,
} from '../errors.js'

/** Longest line either side accepts; a request is a few hundred bytes. */
export const MAX_LINE = 1 << 20

export interface RpcRequest {
  jsonrpc: '2.0'
  id: number | string
  method: string
  params?: unknown
}

export interface RpcErrorObject {
  code: number
  message: string
  data?: ErrorData
}

export interface RpcResponse {
  jsonrpc: '2.0'
  id: number | string | null
  result?: unknown
  error?: RpcErrorObject
}

/** JSON-RPC error codes: the standard ones, and one for errors of the hsmctl family. */
export const RpcCode = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL: -32603,
  HSMCTL: -32000,
} as const

/** What travels in `error.data` so the client can rebuild the same error class. */
export interface ErrorData {
  kind: 'hsm' | 'usage' | 'not-found' | 'conflict' | 'daemon' | 'interrupted'
  exitCode: number
  hint?: string
  errno?: number
  request?: string
  flag?: string
}

/** JSON.stringify replacer: bigint as `0x…` strings (64-bit values travel as hex). */
export function hexReplacer(_key: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `0x${v.toString(16)}` : v
}

/** JSON text with bigint as `0x…` strings. */
export function stringify(value: unknown, indent?: number): string {
  return JSON.stringify(value, hexReplacer, indent)
}

export function errorToRpc(error: unknown): RpcErrorObject {
  if (error instanceof HsmctlError) {
    const data: ErrorData = { kind: 'daemon', exitCode: error.exitCode }
    if (error.hint) data.hint = error.hint
    if (error instanceof HsmError)
      Object.assign(data, {
        kind: 'hsm',
        errno: error.errno,
        request: error.request,
        ...(error.flag ? { flag: error.flag } : {}),
      })
    else if (error instanceof UsageError)
      Object.assign(data, { kind: 'usage', ...(error.flag ? { flag: error.flag } : {}) })
    else if (error instanceof NotFoundError) data.kind = 'not-found'
    else if (error instanceof ConflictError) data.kind = 'conflict'
    else if (error instanceof InterruptedError) data.kind = 'interrupted'
    // HsmError renders its own message from errno; send the detail-free form and rebuild.
    return { code: RpcCode.HSMCTL, message: error.message, data }
  }
  return { code: RpcCode.INTERNAL, message: error instanceof Error ? error.message : String(error) }
}

/** Rebuild the error a handler threw, on the client side. */
export function rpcToError(error: RpcErrorObject): Error {
  const d = error.data
  if (!d)
    return new DaemonUnreachableError(
      `hsmd: ${error.message}`,
      'see the daemon log (hsmctl daemon status)',
    )
  let out: HsmctlError
  switch (d.kind) {
    case 'hsm': {
      const e = new HsmError(d.request ?? 'ioctl', d.errno ?? 0, d.hint, undefined, d.flag)
      // keep the daemon's wording, which may carry detail
      Object.defineProperty(e, 'message', { value: error.message })
      out = e
      break
    }
    case 'usage':
      out = new UsageError(error.message, { hint: d.hint })
      if (d.flag) Object.defineProperty(out, 'flag', { value: d.flag })
      Object.defineProperty(out, 'message', { value: error.message })
      break
    case 'not-found':
      out = new NotFoundError(error.message, d.hint)
      break
    case 'conflict':
      out = new ConflictError(error.message, d.hint)
      break
    case 'interrupted':
      out = new InterruptedError(error.message, d.hint)
      break
    default:
      out = new DaemonUnreachableError(error.message, d.hint)
  }
  return out
}

/** Validate one parsed request line; returns an error response for anything malformed. */
export function checkRequest(message: unknown): RpcRequest | RpcResponse {
  const bad = (msg: string, id: RpcResponse['id'] = null): RpcResponse => ({
    jsonrpc: '2.0',
    id,
    error: { code: RpcCode.INVALID_REQUEST, message: msg },
  })
  if (typeof message !== 'object' || message === null || Array.isArray(message)) {
    return bad('a request must be a JSON object')
  }
  const m = message as Record<string, unknown>
  const id = typeof m.id === 'number' || typeof m.id === 'string' ? m.id : null
  if (m.jsonrpc !== '2.0') return bad('jsonrpc must be "2.0"', id)
  if (id === null) return bad('id must be a number or a string')
  if (typeof m.method !== 'string' || m.method === '')
    return bad('method must be a non-empty string', id)
  return { jsonrpc: '2.0', id, method: m.method, params: m.params }
}

/**
 * Splits a byte stream into lines without holding more than MAX_LINE of one line;
 * calls `onLine` for each complete line and `onOverflow` once if a line is too long.
 */
export class LineSplitter {
  private buffer = ''

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly onOverflow: () => void,
  ) {}

  push(chunk: string): void {
    this.buffer += chunk
    let nl: number
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl)
      this.buffer = this.buffer.slice(nl + 1)
      if (line.trim() !== '') this.onLine(line)
    }
    if (this.buffer.length > MAX_LINE) {
      this.buffer = ''
      this.onOverflow()
    }
  }
}

/** A value as it arrives over the socket: every bigint became a `0x…` string. */
export type Wire<T> = T extends bigint
  ? string
  : T extends Uint8Array
    ? T
    : T extends (infer U)[]
      ? Wire<U>[]
      : T extends object
        ? { [K in keyof T]: Wire<T[K]> }
        : T
