// acrn-dm's monitor socket (../shared/acrn-dm/README.md, "Monitor socket"): the 280-byte
// `struct mngr_msg` of libacrn-mngr, its message ids, and a client that asks one socket one
// question and waits a bounded time for the answer. Sockets are found by their exact name,
// `NAME.monitor.PID.socket`: never libacrn-mngr's prefix match, which sends a request for
// `vm10` to the socket of `vm1`.

import { createConnection } from 'node:net'

/** sizeof(struct mngr_msg), native x86-64 layout. */
export const MNGR_MSG_SIZE = 280
/** The bytes "vmm msg\0" (MNGR_MSG_MAGIC, acrn_mngr.h), little-endian. */
export const MNGR_MSG_MAGIC = 0x0067736d206d6d76n
/** PARAM_LEN: devargs is a char[256], NUL-terminated. */
export const DEVARGS_MAX = 255

/** The ids acrn-dm answers (enum dm_msgid). Others are only logged, with no reply. */
export const DmMsg = {
  STOP: 3,
  SUSPEND: 4,
  RESUME: 5,
  QUERY: 6,
  BLKRESCAN: 7,
} as const
export type DmMsgId = (typeof DmMsg)[keyof typeof DmMsg]

export const DM_MSG_NAMES: Readonly<Record<number, string>> = {
  3: 'DM_STOP',
  4: 'DM_SUSPEND',
  5: 'DM_RESUME',
  6: 'DM_QUERY',
  7: 'DM_BLKRESCAN',
}

/** DM_QUERY's answer: acrn-dm's suspend mode (enum vm_suspend_how, pm.h). */
export const SUSPEND_MODES = [
  'NONE',
  'SYSTEM_RESET',
  'FULL_RESET',
  'POWEROFF',
  'SUSPEND',
  'HALT',
  'TRIPLEFAULT',
] as const

export function suspendModeName(mode: number): string {
  return SUSPEND_MODES[mode] ?? `UNKNOWN(${mode})`
}

export interface MngrMsg {
  msgid: number
  /** time_t; a reply copies the request's. */
  timestamp: bigint
  /** The data union's first i32: `err` of most replies, `state` of DM_QUERY's, `force`. */
  value: number
  /** The data union's second u32: `timeout` of a stop request. */
  value2: number
  /** The data union as a NUL-terminated string: DM_BLKRESCAN's `devargs`. */
  devargs: string
}

export interface MngrRequest {
  msgid: number
  timestamp?: bigint
  /** DM_STOP's `force`, or DM_RESUME's `reason`. */
  value?: number
  /** DM_BLKRESCAN's "slot,path". */
  devargs?: string
}

/** One 280-byte request as libacrn-mngr writes it (padding and unused data zero). */
export function encodeMngrMsg(req: MngrRequest): Buffer {
  const buf = Buffer.alloc(MNGR_MSG_SIZE)
  buf.writeBigUInt64LE(MNGR_MSG_MAGIC, 0)
  buf.writeUInt32LE(req.msgid, 8)
  buf.writeBigInt64LE(req.timestamp ?? BigInt(Math.floor(Date.now() / 1000)), 16)
  if (req.devargs !== undefined) {
    const bytes = Buffer.from(req.devargs, 'utf8')
    if (bytes.length > DEVARGS_MAX || bytes.includes(0)) {
      throw new RangeError(`devargs is ${bytes.length} bytes; at most ${DEVARGS_MAX}, no NUL`)
    }
    bytes.copy(buf, 24)
  } else if (req.value !== undefined) {
    buf.writeInt32LE(req.value | 0, 24)
  }
  return buf
}

/** A 280-byte record, or undefined when it is short or its magic is not libacrn-mngr's. */
export function decodeMngrMsg(buf: Uint8Array): MngrMsg | undefined {
  if (buf.byteLength < MNGR_MSG_SIZE) return undefined
  const b = Buffer.from(buf.buffer, buf.byteOffset, MNGR_MSG_SIZE)
  if (b.readBigUInt64LE(0) !== MNGR_MSG_MAGIC) return undefined
  const data = b.subarray(24, 24 + 256)
  const nul = data.indexOf(0)
  return {
    msgid: b.readUInt32LE(8),
    timestamp: b.readBigInt64LE(16),
    value: b.readInt32LE(24),
    value2: b.readUInt32LE(28),
    devargs: data.subarray(0, nul < 0 ? data.length : nul).toString('utf8'),
  }
}

/** Why a request got no answer. */
export type MonitorFailure =
  /** connect() failed: the errno code (ENOENT gone, ECONNREFUSED nobody listens, EACCES). */
  | { kind: 'connect'; code: string; message: string }
  /** No reply within the timeout (acrn-dm is busy or hung, or the id is unknown to it). */
  | { kind: 'timeout'; ms: number }
  /** It closed the connection without a whole reply (it exited meanwhile). */
  | { kind: 'closed' }
  /** A reply with a bad magic, another id or another timestamp. */
  | { kind: 'garbled' }

export class MonitorError extends Error {
  constructor(
    readonly socket: string,
    readonly failure: MonitorFailure,
  ) {
    super(describeFailure(socket, failure))
    this.name = 'MonitorError'
  }
}

function describeFailure(socket: string, f: MonitorFailure): string {
  switch (f.kind) {
    case 'connect':
      return `cannot connect to ${socket}: ${f.code}`
    case 'timeout':
      return `no answer from ${socket} within ${f.ms} ms`
    case 'closed':
      return `${socket} closed the connection before answering`
    case 'garbled':
      return `${socket} answered with a record that is not the reply (magic, id or timestamp)`
  }
}

/** acrnctl waits 1 s for a reply (mngr_send_msg's timeout). */
export const DEFAULT_MONITOR_TIMEOUT_MS = 1000

/**
 * Send one request to the socket at `path` and resolve with acrn-dm's reply (same magic,
 * id and timestamp), or reject with a MonitorError. The connection is closed either way.
 */
export function monitorRequest(
  path: string,
  req: MngrRequest,
  timeoutMs = DEFAULT_MONITOR_TIMEOUT_MS,
): Promise<MngrMsg> {
  const request = encodeMngrMsg(req)
  const timestamp = request.readBigInt64LE(16)
  return new Promise((resolve, reject) => {
    const socket = createConnection(path)
    const chunks: Buffer[] = []
    let length = 0
    let settled = false
    const finish = (result: MngrMsg | MonitorFailure) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      if ('msgid' in result) resolve(result)
      else reject(new MonitorError(path, result))
    }
    const timer = setTimeout(() => finish({ kind: 'timeout', ms: timeoutMs }), timeoutMs)
    let connected = false
    socket.once('connect', () => {
      connected = true
      socket.write(request)
    })
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      length += chunk.length
      if (length < MNGR_MSG_SIZE) return
      const reply = decodeMngrMsg(Buffer.concat(chunks, length))
      const ours = reply && reply.msgid === req.msgid && reply.timestamp === timestamp
      finish(ours ? reply : { kind: 'garbled' })
    })
    socket.once('error', (e: NodeJS.ErrnoException) => {
      // before connecting: the socket cannot be reached; after: it went away mid-request
      if (connected) finish({ kind: 'closed' })
      else finish({ kind: 'connect', code: e.code ?? 'EIO', message: e.message })
    })
    socket.once('close', () => finish({ kind: 'closed' }))
  })
}

/** A monitor socket in the directory: `NAME.monitor.PID.socket`, parsed exactly. */
export interface MonitorSocket {
  name: string
  pid: number
  path: string
}

const SOCKET_NAME = /^([^.]+)\.monitor\.([1-9][0-9]{0,9})\.socket$/

/** The VM name and pid of a monitor socket's file name, or undefined for other files. */
export function parseMonitorSocketName(file: string): { name: string; pid: number } | undefined {
  const m = SOCKET_NAME.exec(file)
  if (!m) return undefined
  const pid = Number(m[2])
  return pid <= 0x7fffffff ? { name: m[1]!, pid } : undefined
}

export function monitorSocketName(name: string, pid: number): string {
  return `${name}.monitor.${pid}.socket`
}
