// The daemon's socket server: newline-delimited JSON-RPC, one handler per method.
// Every malformed message gets an error response and the connection goes on; a line over
// MAX_LINE closes that connection (it cannot be resynchronised cheaply).

import { lstatSync, unlinkSync } from 'node:fs'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { dirname } from 'node:path'
import { ensurePrivateDir } from './private-files.js'
import {
  checkRequest,
  errorToRpc,
  LineSplitter,
  MAX_LINE,
  RpcCode,
  stringify,
  type RpcResponse,
} from './protocol.js'

export type Handler = (params: unknown, context: { connection: Socket }) => unknown

export interface RpcServer {
  readonly path: string
  close(): Promise<void>
  /** Connections open now (for `daemon status`). */
  connections(): number
  /** Each open connection's backlog: what backpressure holds back. */
  stats(): ConnectionStats[]
}

/** Whether a daemon answers on the socket at `path`. */
export function isAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path)
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
}

function lstatOrUndefined(path: string) {
  try {
    return lstatSync(path)
  } catch {
    return undefined
  }
}

export async function listen(path: string, handlers: Record<string, Handler>): Promise<RpcServer> {
  ensurePrivateDir({
    path: dirname(path),
    role: 'runtime directory',
    variable: 'HSMCTL_RUNTIME_DIR',
  })
  // lstat: a link left there is removed itself, never followed
  if (lstatOrUndefined(path)) {
    if (await isAlive(path)) {
      const e = new Error(`another hsmd is already serving ${path}`) as Error & { code: string }
      e.code = 'EADDRINUSE'
      throw e
    }
    unlinkSync(path) // a stale socket left by a daemon that was killed
  }
  const connections = new Map<Socket, Connection>()
  const server: Server = createServer((socket) => serve(socket, handlers, connections))
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    // Create the socket 0600 from the start: no window where others could connect.
    const oldMask = process.umask(0o177)
    server.listen(path, () => {
      process.umask(oldMask)
      server.off('error', reject)
      resolve()
    })
  })
  // no chmod after the fact: the umask made it 0600, and chmod would follow a link
  return {
    path,
    connections: () => connections.size,
    stats: () => [...connections.values()].map((c) => c.stats()),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of connections.keys()) s.destroy()
        server.close(() => resolve())
      }),
  }
}

/**
 * Unsent reply bytes past which hsmd stops reading a connection: a client that sends
 * requests and never reads the replies must not make the daemon hold them all (issue 13
 * item 4). It is read again once the replies have gone.
 */
export const MAX_UNSENT = 1 << 20
/** Requests of one connection handled at once; the rest wait, and the socket is not read. */
export const MAX_IN_FLIGHT = 64

/** One connection's backlog, for tests and `daemon status`. */
export interface ConnectionStats {
  /** Reply bytes written but not yet taken by the client. */
  unsentBytes: number
  /** Requests read and not yet started (at most one read's worth). */
  waiting: number
  inFlight: number
  /** Requests answered so far. */
  answered: number
  /** False while hsmd has stopped reading it (backpressure). */
  reading: boolean
}

/** One client: requests are started while its replies flow, and it is not read while they do not. */
class Connection {
  private readonly waiting: string[] = []
  private inFlight = 0
  private answered = 0
  private overflowed = false

  constructor(
    private readonly socket: Socket,
    private readonly handlers: Record<string, Handler>,
  ) {
    socket.setEncoding('utf8')
    const splitter = new LineSplitter(
      (line) => this.waiting.push(line),
      () => this.overflow(),
    )
    socket.on('data', (chunk: string) => {
      if (this.overflowed) return
      splitter.push(chunk)
      this.dispatch()
    })
    socket.on('drain', () => this.dispatch())
  }

  stats(): ConnectionStats {
    return {
      unsentBytes: this.socket.writableLength,
      waiting: this.waiting.length,
      inFlight: this.inFlight,
      answered: this.answered,
      reading: !this.socket.isPaused(),
    }
  }

  private send(response: RpcResponse): void {
    if (!this.socket.destroyed) this.socket.write(stringify(response) + '\n')
  }

  private congested(): boolean {
    return this.socket.writableLength > MAX_UNSENT || this.inFlight >= MAX_IN_FLIGHT
  }

  /** Start what may start; read more only when nothing waits and the replies flow. */
  private dispatch(): void {
    while (this.waiting.length && !this.congested()) {
      const line = this.waiting.shift()!
      this.inFlight++
      void handleLine(line, this.handlers, this.socket, (r) => this.send(r)).finally(() => {
        this.inFlight--
        this.answered++
        this.dispatch()
      })
    }
    if (this.socket.destroyed || this.overflowed) return
    const hold = this.waiting.length > 0 || this.socket.writableLength > MAX_UNSENT
    if (hold && !this.socket.isPaused()) this.socket.pause()
    else if (!hold && this.socket.isPaused()) this.socket.resume()
  }

  private overflow(): void {
    // a usage error the client can rebuild (exit 2), not a lost daemon (exit 5)
    this.send({
      jsonrpc: '2.0',
      id: null,
      error: {
        code: RpcCode.INVALID_REQUEST,
        message: `the request is larger than ${MAX_LINE} bytes (1 MiB), the most hsmd takes; closing the connection`,
        data: {
          kind: 'usage',
          exitCode: 2,
          hint: 'send less at once (a smaller spec, fewer entries)',
        },
      },
    })
    this.overflowed = true
    this.waiting.length = 0
    // read the rest and drop it: a close with unread data would reset the connection
    // before the client reads the answer
    this.socket.resume()
    this.socket.end()
  }
}

function serve(
  socket: Socket,
  handlers: Record<string, Handler>,
  connections: Map<Socket, Connection>,
) {
  connections.set(socket, new Connection(socket, handlers))
  socket.on('error', () => socket.destroy())
  socket.on('close', () => connections.delete(socket))
}

async function handleLine(
  line: string,
  handlers: Record<string, Handler>,
  socket: Socket,
  send: (r: RpcResponse) => void,
) {
  let message: unknown
  try {
    message = JSON.parse(line)
  } catch {
    send({
      jsonrpc: '2.0',
      id: null,
      error: { code: RpcCode.PARSE_ERROR, message: 'request is not valid JSON' },
    })
    return
  }
  const request = checkRequest(message)
  if (!('method' in request)) {
    send(request)
    return
  }
  const handler = Object.hasOwn(handlers, request.method) ? handlers[request.method] : undefined
  if (!handler) {
    send({
      jsonrpc: '2.0',
      id: request.id,
      error: { code: RpcCode.METHOD_NOT_FOUND, message: `unknown method '${request.method}'` },
    })
    return
  }
  try {
    const result = await handler(request.params ?? {}, { connection: socket })
    send({ jsonrpc: '2.0', id: request.id, result: result ?? null })
  } catch (error) {
    send({ jsonrpc: '2.0', id: request.id, error: errorToRpc(error) })
  }
}
