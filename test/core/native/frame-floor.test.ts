// helper/frame-floor.c, the floor of `npm run bench -- native`: a C client and server
// exchanging a shimmed NOTIFY's frames over the shim's ring (waited on as the shim and the
// server wait: a learned poll, then the bell or the doorbell; or, ring-poll, polled as
// before) or a socket. It exits 0 only when every reply came back for its request, in
// order, so a run that ends well proves the exchange (and the ring's idle, bell and
// doorbell handshakes, which a lost wake-up would hang). ring-threads: THREADS threads each
// with one request out, waiting as a shim caller does; it exits 0 only when every thread got
// each of its replies (matched by id, a reply for no request out fails it).
import { spawnSync } from 'node:child_process'
import { beforeAll, describe, expect, it } from 'vitest'
import { frameFloorPath } from '../../../src/core/native/preflight.js'
import { buildHelper, helperUnavailable } from './support.js'

const LINE = /^calls (\d+) seconds [\d.]+ per_second (\d+) switches_per_call [\d.]+\n$/

function floor(...args: string[]) {
  return spawnSync(frameFloorPath(), args, { encoding: 'utf8', timeout: 60_000 })
}

describe.skipIf(helperUnavailable)('frame-floor (the native benchmark floor)', () => {
  beforeAll(() => buildHelper())

  // ring-piped: the server also drives the client through pipes, IN_FLIGHT calls at a time
  // (the pipelined native figure's floor); it exits 0 only when every call of every batch
  // came back through the ring and the pipe, for its request, in order.
  for (const transport of ['ring', 'ring-poll', 'ring-piped', 'socket']) {
    for (const inFlight of ['1', '16', ...(transport === 'ring-piped' ? ['1000'] : [])]) {
      it(`${transport}, ${inFlight} in flight: every request answered, in order`, () => {
        const r = floor(transport, '3000', inFlight)
        expect(r.stderr).toBe('')
        expect(r.status).toBe(0)
        const m = LINE.exec(r.stdout)
        expect(m?.[1]).toBe('3000')
        expect(Number(m?.[2])).toBeGreaterThan(0)
      })
    }
  }

  // shim-load's way (16 threads, each waiting for its own reply: a poll, then the ring's
  // bell, or its eventfd while another thread holds the bell and hands the reply over).
  for (const [threads, each] of [
    [1, 3000],
    [16, 200],
    [64, 50],
  ] as const) {
    it(`ring-threads, ${threads} threads x ${each}: every thread's reply handed to it`, () => {
      const r = floor('ring-threads', String(threads), String(each))
      expect(r.stderr).toBe('')
      expect(r.status).toBe(0)
      const m = LINE.exec(r.stdout)
      expect(m?.[1]).toBe(String(threads * each))
      expect(Number(m?.[2])).toBeGreaterThan(0)
    })
  }

  it('refuses a bad transport, count, window or thread count with its usage (exit 2)', () => {
    for (const args of [
      ['pipe', '10'],
      ['ring', '0'],
      ['ring', '10', '0'],
      ['socket', '10', '1025'],
      ['ring'],
      ['ring-piped', '10', '1025'],
      ['ring-threads', '0', '10'],
      ['ring-threads', '257', '10'],
      ['ring-threads', '16', '0'],
      ['ring-threads', '16'],
    ]) {
      const r = floor(...args)
      expect(r.status, args.join(' ')).toBe(2)
      expect(r.stderr).toMatch(
        /^usage: frame-floor ring\|ring-poll\|ring-piped\|socket CALLS \[IN_FLIGHT\(1-1024\)\]\n {7}frame-floor ring-threads THREADS\(1-256\) CALLS_PER_THREAD\n$/,
      )
      expect(r.stdout).toBe('')
    }
  })
})
