// The daemon socket: JSON-RPC framing, bad messages, errors that keep their class,
// permissions, and stale sockets.

import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { connect } from '../../../src/core/daemon/client.js'
import { MAX_LINE, RpcCode } from '../../../src/core/daemon/protocol.js'
import { listen, type RpcServer } from '../../../src/core/daemon/server.js'
import { ConflictError, HsmError, NotFoundError, UsageError } from '../../../src/core/errors.js'

let dir: string
let server: RpcServer
const path = () => join(dir, 'run', 'test.sock')

const handlers = {
  echo: (params: unknown) => params,
  big: () => ({ gpa: 0xffff_ffff_ffff_f000n }),
  slow: async (params: unknown) => {
    await new Promise((r) => setTimeout(r, (params as { ms: number }).ms))
    return (params as { ms: number }).ms
  },
  hsm: () => {
    throw new HsmError('DESTROY_VM', 1, 'pause it first')
  },
  usage: () => {
    throw new UsageError('bad size', { flag: '--size', hint: 'use 4K' })
  },
  missing: () => {
    throw new NotFoundError("no VM named 'x'")
  },
  clash: () => {
    throw new ConflictError('name taken')
  },
  crash: () => {
    throw new TypeError('oops')
  },
}

/** Send raw lines, collect the raw response lines. */
function raw(lines: string, expected: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path())
    let buf = ''
    sock.setEncoding('utf8')
    sock.on('data', (d: string) => {
      buf += d
      const got = buf.split('\n').filter(Boolean)
      if (got.length >= expected) {
        sock.destroy()
        resolve(got)
      }
    })
    sock.on('close', () => resolve(buf.split('\n').filter(Boolean)))
    sock.on('error', reject)
    sock.write(lines)
  })
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hsmctl-daemon-'))
  server = await listen(path(), handlers)
})

afterEach(async () => {
  await server.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('calls', () => {
  it('answers by id, many in flight, out of order', async () => {
    const client = await connect(path())
    const results = await Promise.all([
      client.call('slow', { ms: 30 }),
      client.call('slow', { ms: 1 }),
      client.call('echo', { a: 1 }),
    ])
    expect(results).toEqual([30, 1, { a: 1 }])
    client.close()
  })

  it('sends 64-bit values as hex strings', async () => {
    const [line] = await raw('{"jsonrpc":"2.0","id":1,"method":"big"}\n', 1)
    expect(JSON.parse(line!)).toEqual({
      jsonrpc: '2.0',
      id: 1,
      result: { gpa: '0xfffffffffffff000' },
    })
  })

  it.each([
    ['hsm', HsmError, 1, /DESTROY_VM failed: EPERM/],
    ['usage', UsageError, 2, /--size: bad size/],
    ['missing', NotFoundError, 3, /no VM named 'x'/],
    ['clash', ConflictError, 4, /name taken/],
  ] as const)(
    'a %s error comes back as the same class and exit code',
    async (method, cls, exitCode, message) => {
      const client = await connect(path())
      const error = await client.call(method).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(cls)
      expect((error as { exitCode: number }).exitCode).toBe(exitCode)
      expect((error as Error).message).toMatch(message)
      if (error instanceof HsmError)
        expect([error.code, error.request, error.hint]).toEqual([
          'EPERM',
          'DESTROY_VM',
          'pause it first',
        ])
      if (error instanceof UsageError)
        expect([error.flag, error.hint]).toEqual(['--size', 'use 4K'])
      client.close()
    },
  )

  it('an unexpected handler failure is an internal error, and the daemon goes on', async () => {
    const [a, b] = await raw(
      '{"jsonrpc":"2.0","id":1,"method":"crash"}\n{"jsonrpc":"2.0","id":2,"method":"echo","params":5}\n',
      2,
    )
    expect(JSON.parse(a!).error).toEqual({ code: RpcCode.INTERNAL, message: 'oops' })
    expect(JSON.parse(b!).result).toBe(5)
  })
})

describe('bad messages get an error and change nothing', () => {
  it.each([
    ['not JSON', '{nope', RpcCode.PARSE_ERROR, /not valid JSON/],
    ['an array', '[1,2]', RpcCode.INVALID_REQUEST, /JSON object/],
    ['no jsonrpc', '{"id":1,"method":"echo"}', RpcCode.INVALID_REQUEST, /jsonrpc must be "2.0"/],
    ['no id', '{"jsonrpc":"2.0","method":"echo"}', RpcCode.INVALID_REQUEST, /id must be/],
    ['no method', '{"jsonrpc":"2.0","id":3}', RpcCode.INVALID_REQUEST, /method must be/],
    [
      'an unknown method',
      '{"jsonrpc":"2.0","id":4,"method":"vm.explode"}',
      RpcCode.METHOD_NOT_FOUND,
      /unknown method 'vm.explode'/,
    ],
    [
      'a prototype key as method',
      '{"jsonrpc":"2.0","id":5,"method":"toString"}',
      RpcCode.METHOD_NOT_FOUND,
      /unknown method/,
    ],
  ])('%s', async (_what, line, code, message) => {
    const [reply, after] = await raw(
      `${line}\n{"jsonrpc":"2.0","id":99,"method":"echo","params":"ok"}\n`,
      2,
    )
    const error = JSON.parse(reply!).error
    expect(error.code).toBe(code)
    expect(error.message).toMatch(message)
    expect(JSON.parse(after!)).toMatchObject({ id: 99, result: 'ok' }) // the connection goes on
  })

  it('an over-long line is refused as too large (exit 2) and that connection closed; others are unaffected', async () => {
    const replies = await raw('x'.repeat(MAX_LINE + 10), 1)
    const error = JSON.parse(replies[0]!).error
    expect(error.message).toBe(
      `the request is larger than ${MAX_LINE} bytes (1 MiB), the most hsmd takes; closing the connection`,
    )
    // a client rebuilds it as a usage error, not as a lost daemon
    expect(error.data).toMatchObject({ kind: 'usage', exitCode: 2 })
    const client = await connect(path())
    expect(await client.call('echo', 1)).toBe(1)
    client.close()
  })

  it('the client refuses a request over the limit as too large (exit 2) without sending it', async () => {
    const client = await connect(path())
    const refused = await client.call('echo', 'x'.repeat(MAX_LINE)).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(UsageError)
    expect((refused as UsageError).message).toMatch(
      /^the request to hsmd \(echo\) is \d+ bytes; hsmd takes at most 1048576 \(1 MiB\)$/,
    )
    expect(await client.call('echo', 2)).toBe(2) // the connection goes on
    client.close()
  })
})

describe('socket files', () => {
  it('the socket is 0600 in a 0700 directory', () => {
    expect(statSync(path()).mode & 0o777).toBe(0o600)
    expect(statSync(join(dir, 'run')).mode & 0o777).toBe(0o700)
  })

  it('refuses to start beside a live daemon', async () => {
    await expect(listen(path(), handlers)).rejects.toMatchObject({ code: 'EADDRINUSE' })
  })

  it('replaces a stale socket file left by a killed daemon', async () => {
    const stale = join(dir, 'run', 'stale.sock')
    writeFileSync(stale, '')
    const second = await listen(stale, handlers)
    const client = await connect(stale)
    expect(await client.call('echo', 2)).toBe(2)
    client.close()
    await second.close()
  })
})
