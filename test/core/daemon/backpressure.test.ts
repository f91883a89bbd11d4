// Every server stops reading a client whose unsent replies pass a bound, and reads it again
// once they have gone (issue 13 item 4): a client that pipelines requests and never reads
// the replies must not grow the server's memory without bound, and other clients are
// still served meanwhile. The bound is checked on the server's own count of the bytes it
// holds for the client (its stats), not on RSS or timing.

import { mkdtempSync, rmSync } from 'node:fs'
import { connect as netConnect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { connect } from '../../../src/core/daemon/client.js'
import { socketPath } from '../../../src/core/daemon/paths.js'
import {
  listen,
  MAX_IN_FLIGHT,
  MAX_UNSENT,
  type ConnectionStats,
} from '../../../src/core/daemon/server.js'
import { startVmmDaemon } from '../../../src/core/daemon/vmm-daemon.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-backpressure-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A client that writes and never reads (a paused socket reads nothing). */
function deafClient(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(path)
    socket.once('connect', () => resolve(socket))
    socket.once('error', reject)
  })
}

/**
 * Wait until the server holds still: it has stopped reading the client, or it has
 * answered every request (what happens without backpressure). A hang guard, not a timer
 * the result depends on.
 */
async function settle(stats: () => ConnectionStats | undefined, requests: number) {
  const deadline = Date.now() + 60_000
  for (;;) {
    const s = stats()
    if (s && (!s.reading || s.answered === requests)) {
      // and the handlers already started have answered into the buffer
      if (s.inFlight === 0) return s
    }
    if (Date.now() > deadline) throw new Error(`the server never settled: ${JSON.stringify(s)}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** Read everything a paused client was sent, until `count` lines came. */
function drainLines(socket: Socket, count: number): Promise<number> {
  return new Promise((resolve) => {
    let lines = 0
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      for (let i = chunk.indexOf('\n'); i >= 0; i = chunk.indexOf('\n', i + 1)) lines++
      if (lines >= count) resolve(lines)
    })
  })
}

describe('hsmd’s JSON-RPC server', () => {
  it('a client that never reads: the server stops reading it at the bound, serves others, and answers all once it reads', async () => {
    const path = join(dir, 'rpc.sock')
    const REPLY = 64 * 1024
    const server = await listen(path, {
      blob: (params) => 'x'.repeat((params as { size: number }).size),
      echo: (params) => params,
    })
    try {
      const deaf = await deafClient(path)
      const requests = 1000 // 64 MiB of replies if they were all held
      for (let id = 1; id <= requests; id++)
        deaf.write(`{"jsonrpc":"2.0","id":${id},"method":"blob","params":{"size":${REPLY}}}\n`)
      const held = await settle(() => server.stats()[0], requests)
      expect(held.reading).toBe(false)
      expect(held.answered).toBeLessThan(requests)
      // what it holds: the bound, overshot by the replies of the requests in flight when it was passed
      expect(held.unsentBytes).toBeLessThanOrEqual(MAX_UNSENT + MAX_IN_FLIGHT * (REPLY + 100))
      // another client is served meanwhile
      const other = await connect(path)
      expect(await other.call('echo', { ok: 1 })).toEqual({ ok: 1 })
      other.close()
      // and once the client reads, every request is answered
      expect(await drainLines(deaf, requests)).toBe(requests)
      deaf.destroy()
    } finally {
      await server.close()
    }
  })
})

describe('hsmd with VMs (the issue’s vm.show, pipelined)', () => {
  it('a client pipelining vm.show and never reading: the bytes hsmd holds for it stay bounded', async () => {
    const env = { HSMCTL_RUNTIME_DIR: join(dir, 'run'), HSMCTL_STATE_DIR: join(dir, 'state') }
    const daemon = await startVmmDaemon({ backend: 'sim', env })
    try {
      const client = await connect(socketPath('sim', env))
      await client.call('vm.create', { name: 'shown', vcpus: 1, memory: '0x100000' })
      const reply = JSON.stringify(await client.call('vm.show', { name: 'shown' })).length + 100
      const deaf = await deafClient(socketPath('sim', env))
      const requests = 5000 // 5000 replies of several KB if they were all held
      let batch = ''
      for (let id = 1; id <= requests; id++)
        batch += `{"jsonrpc":"2.0","id":${id},"method":"vm.show","params":{"name":"shown"}}\n`
      deaf.write(batch)
      // the deaf client's connection: the one that answered most
      const deafStats = () => daemon.server.stats().sort((a, b) => b.answered - a.answered)[0]
      const held = await settle(deafStats, requests)
      expect(held.reading).toBe(false)
      expect(held.unsentBytes).toBeLessThanOrEqual(MAX_UNSENT + MAX_IN_FLIGHT * reply)
      expect(held.answered).toBeLessThan(requests)
      // another client is served meanwhile
      expect(await client.call('vm.list')).toHaveLength(1)
      client.close()
      deaf.destroy()
    } finally {
      await daemon.stop()
    }
  })
})
