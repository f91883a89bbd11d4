// The client side of the daemon socket: calls with ids, any number in flight, answers
// matched by id; errors come back as the same hsmctl error classes the daemon threw.

import { createConnection, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { DaemonUnreachableError, UsageError } from '../errors.js'
import { LineSplitter, MAX_LINE, rpcToError, stringify, type RpcResponse } from './protocol.js'

export interface DaemonClient {
  call<T = unknown>(method: string, params?: unknown): Promise<T>
  close(): void
  /** Settles when the connection has closed (either side). */
  readonly closed: Promise<void>
}

export function connect(path: string): Promise<DaemonClient> {
  return new Promise((resolve, reject) => {
    const socket: Socket = createConnection(path)
    socket.once('error', (e: NodeJS.ErrnoException) => reject(e))
    socket.once('connect', () => {
      socket.removeAllListeners('error')
      resolve(clientOver(socket, { label: path }))
    })
  })
}

function tooLarge(method: string, line: string): UsageError {
  return new UsageError(
    `the request to hsmd (${method}) is ${Buffer.byteLength(line)} bytes; hsmd takes at most ${MAX_LINE} (1 MiB)`,
    {
      hint: 'hsmd reads requests of at most 1 MiB: send less at once (a smaller spec, fewer entries)',
    },
  )
}

/** How a client over some stream names it and reports its failures. */
export interface ChannelOptions {
  /** What the connection is to, in messages: the socket's path, `hsmd on HOST`. */
  label: string
  /**
   * Why the stream broke (called when it closes or sends garbage, with what we saw): the
   * error pending calls reject with. Default: hsmd at `label` became unreachable.
   */
  lost?: (why: string) => Error
  /** An error hsmd (or what carries the stream) sent about the connection, not one call. */
  connectionError?: (error: Error) => Error
  /** A line with id null and a result: a notice from the far end (dial-stdio's hello). */
  onNotice?: (result: unknown) => void
}

/**
 * The JSON-lines RPC over any duplex stream: a unix socket here, an ssh child's stdio for
 * a remote host (ssh/transport.ts). Requests are written at once, so calls made before
 * the far end is ready are pipelined behind its start.
 */
export function clientOver(socket: Duplex, options: ChannelOptions): DaemonClient {
  const path = options.label
  const lost =
    options.lost ??
    ((why: string) =>
      new DaemonUnreachableError(why, 'check `hsmctl daemon status` and the daemon log'))
  let nextId = 1
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  const failAll = (why: string) => {
    if (pending.size === 0) return
    const error = lost(why)
    for (const p of pending.values()) p.reject(error)
    pending.clear()
  }
  socket.setEncoding('utf8')
  const splitter = new LineSplitter(
    (line) => {
      let response: RpcResponse
      try {
        response = JSON.parse(line) as RpcResponse
      } catch {
        failAll('hsmd sent a line that is not JSON')
        socket.destroy()
        return
      }
      if (response.id === null && response.error) {
        // not an answer to one call: about the connection (a request hsmd could not take)
        const error = (options.connectionError ?? ((e) => e))(rpcToError(response.error))
        for (const p of pending.values()) p.reject(error)
        pending.clear()
        return
      }
      if (response.id === null) {
        options.onNotice?.(response.result)
        return
      }
      const entry = typeof response.id === 'number' ? pending.get(response.id) : undefined
      if (!entry) return
      pending.delete(response.id as number)
      if (response.error) entry.reject(rpcToError(response.error))
      else entry.resolve(response.result)
    },
    () => {
      failAll('hsmd sent an over-long line')
      socket.destroy()
    },
  )
  socket.on('data', (chunk: string) => splitter.push(chunk))
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) =>
    socket.on('close', () => {
      failAll(`the connection to hsmd (${path}) closed`)
      resolve()
    }),
  )
  return {
    closed,
    call<T>(method: string, params: unknown = {}): Promise<T> {
      if (socket.destroyed) {
        return Promise.reject(lost(`not connected to hsmd (${path})`))
      }
      const id = nextId++
      const line = stringify({ jsonrpc: '2.0', id, method, params })
      // hsmd would refuse it and close the connection: say so without sending it
      if (line.length > MAX_LINE) return Promise.reject(tooLarge(method, line))
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
        socket.write(line + '\n')
      })
    },
    close() {
      socket.end()
    },
  }
}
