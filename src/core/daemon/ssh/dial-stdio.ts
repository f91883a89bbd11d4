// `hsmctl daemon dial-stdio`: the far end of `--host ssh://...` (as `docker system
// dial-stdio`). It connects its stdin and stdout to this host's hsmd socket, starting
// hsmd as any local command would, so the client on the other side of ssh speaks the same
// JSON lines it speaks to a local socket. Before the first byte of hsmd's it writes one
// notice line (id null, a result) saying whether it reached hsmd; a failure is one line
// with id null and the JSON-RPC error object of the hsmctl error (the client rebuilds the
// same error class, with its hint), then it exits with that error's code.

import type { Socket } from 'node:net'
import type { Readable, Writable } from 'node:stream'
import { ensureDaemonSocket, connectSocket } from '../autostart.js'
import { checkDaemonDirs, socketPath, type Backend } from '../paths.js'
import { errorToRpc, stringify } from '../protocol.js'

export interface DialOptions {
  backend: Backend
  /** Start hsmd when none runs (false: `--no-start`, for status, stop and Tab completion). */
  start: boolean
  env?: NodeJS.ProcessEnv
  stdin: Readable
  stdout: Writable
  stderr: Writable
}

/** What dial-stdio's first line carries when it reached (or looked for) hsmd. */
export interface DialNotice {
  dial: 'hsmd'
  running: boolean
  backend: Backend
  /** This host's hsmd was started for this connection (its pid). */
  started?: number
  /** Its socket (the client's control master may forward to it: forward.ts). */
  socket?: string
}

const line = (value: unknown) => stringify({ jsonrpc: '2.0', id: null, ...value! }) + '\n'

/** Runs until either side closes; resolves with the exit code. */
export async function dialStdio(o: DialOptions): Promise<number> {
  const env = o.env ?? process.env
  let socket: Socket | undefined
  let started: number | undefined
  try {
    if (o.start) {
      socket = await ensureDaemonSocket({
        backend: o.backend,
        env,
        onStart: ({ pid, socket: path }) => {
          started = pid
          o.stderr.write(
            `hsmctl: started the hsmd daemon (pid ${pid}, ${path}); stop it with \`hsmctl daemon stop\`\n`,
          )
        },
      })
    } else {
      checkDaemonDirs(env, false)
      socket = await connectSocket(socketPath(o.backend, env)).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') return undefined
        throw e
      })
    }
  } catch (e) {
    const error = errorToRpc(e)
    await write(o.stdout, line({ error }))
    return (e as { exitCode?: number }).exitCode ?? 5
  }
  const notice: DialNotice = {
    dial: 'hsmd',
    running: socket !== undefined,
    backend: o.backend,
    ...(started !== undefined ? { started } : {}),
    ...(socket ? { socket: socketPath(o.backend, env) } : {}),
  }
  await write(o.stdout, line({ result: notice }))
  if (!socket) return 0
  const hsmd = socket
  return new Promise<number>((resolve) => {
    let done = false
    const finish = () => {
      if (done) return
      done = true
      o.stdin.unpipe(hsmd)
      o.stdin.destroy()
      hsmd.destroy()
      o.stdout.end(() => resolve(0))
    }
    // the client went away (ssh closed our stdin): end our side of hsmd's socket
    o.stdin.on('end', () => hsmd.end())
    o.stdin.on('error', finish)
    o.stdout.on('error', finish)
    hsmd.on('error', finish)
    hsmd.on('close', finish)
    o.stdin.pipe(hsmd, { end: false })
    hsmd.pipe(o.stdout, { end: false })
  })
}

function write(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve) => stream.write(text, () => resolve()))
}
