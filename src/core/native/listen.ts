// A unix socket only its owner may use (mode 0600), taking over a stale socket file that
// nobody listens on: what the shim server and the tap server both need.

import { chmod, lstat, unlink } from 'node:fs/promises'
import { connect as netConnect, type Server } from 'node:net'
import { ConflictError } from '../errors.js'

export interface ListenHints {
  /** The hint when `path` exists and is not a socket. */
  notSocket: string
  /** The hint when something already listens on `path`. */
  inUse: string
  /** What the error says listens there (default "something already serves"). */
  inUseText?: string
}

/** Listen on `path` (mode 0600). A stale socket file is replaced; a live one is a ConflictError. */
export async function listenPrivate(net: Server, path: string, hints: ListenHints): Promise<void> {
  try {
    await listenOn(net, path)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e
    const st = await lstat(path).catch(() => undefined)
    if (st && !st.isSocket())
      throw new ConflictError(`${path} exists and is not a socket`, hints.notSocket)
    if (await someoneListens(path))
      throw new ConflictError(
        `${hints.inUseText ?? 'something already serves'} ${path}`,
        hints.inUse,
      )
    await unlink(path).catch(() => {})
    await listenOn(net, path)
  }
  await chmod(path, 0o600)
}

function listenOn(net: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => {
      net.off('listening', onListening)
      reject(e)
    }
    const onListening = () => {
      net.off('error', onError)
      resolve()
    }
    net.once('error', onError)
    net.once('listening', onListening)
    net.listen(path)
  })
}

function someoneListens(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(path)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}
