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
}

function isAlive(path: string): Promise<boolean> {
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
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => serve(socket, handlers, sockets))
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
    connections: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}

function serve(socket: Socket, handlers: Record<string, Handler>, sockets: Set<Socket>) {
  sockets.add(socket)
  socket.setEncoding('utf8')
  const send = (response: RpcResponse) => {
    if (!socket.destroyed) socket.write(stringify(response) + '\n')
  }
  let overflowed = false
  const splitter = new LineSplitter(
    (line) => void handleLine(line, handlers, socket, send),
    () => {
      // a usage error the client can rebuild (exit 2), not a lost daemon (exit 5)
      send({
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
      overflowed = true
      // read the rest and drop it: a close with unread data would reset the connection
      // before the client reads the answer
      socket.end()
    },
  )
  socket.on('data', (chunk: string) => {
    if (!overflowed) splitter.push(chunk)
  })
  socket.on('error', () => socket.destroy())
  socket.on('close', () => sockets.delete(socket))
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
