// The client side of the daemon socket: calls with ids, any number in flight, answers
// matched by id; errors come back as the same hsmctl error classes the daemon threw.

import { createConnection, type Socket } from 'node:net'
import { DaemonUnreachableError } from '../errors.js'
import { LineSplitter, rpcToError, stringify, type RpcResponse } from './protocol.js'

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
      resolve(clientOver(socket, path))
    })
  })
}

function clientOver(socket: Socket, path: string): DaemonClient {
  let nextId = 1
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  const failAll = (why: string) => {
    for (const p of pending.values()) {
      p.reject(new DaemonUnreachableError(why, 'check `hsmctl daemon status` and the daemon log'))
    }
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
        return Promise.reject(new DaemonUnreachableError(`not connected to hsmd (${path})`))
      }
      const id = nextId++
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
        socket.write(stringify({ jsonrpc: '2.0', id, method, params }) + '\n')
      })
    },
    close() {
      socket.end()
    },
  }
}
