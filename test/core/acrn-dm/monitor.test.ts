// acrn-dm's monitor socket (../shared/acrn-dm/README.md, "Monitor socket"): the 280-byte
// mngr_msg as libacrn-mngr lays it out, and the client against a server that answers as
// acrn-dm does, not at all, garbled, or not there.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  decodeMngrMsg,
  DmMsg,
  encodeMngrMsg,
  MNGR_MSG_SIZE,
  MonitorError,
  monitorRequest,
  monitorSocketName,
  parseMonitorSocketName,
} from '../../../src/core/acrn-dm/monitor.js'

describe('struct mngr_msg (acrn_mngr.h), 280 bytes, x86-64 layout', () => {
  it('puts magic "vmm msg\\0" at 0, msgid at 8, timestamp at 16 and the data union at 24', () => {
    const msg = encodeMngrMsg({ msgid: DmMsg.STOP, timestamp: 0x1122334455n, value: 1 })
    expect(msg.length).toBe(MNGR_MSG_SIZE)
    expect(msg.subarray(0, 8).toString('latin1')).toBe('vmm msg\0')
    expect(msg.readUInt32LE(8)).toBe(3)
    expect(msg.readUInt32LE(12)).toBe(0) // padding
    expect(msg.readBigInt64LE(16)).toBe(0x1122334455n)
    expect(msg.readInt32LE(24)).toBe(1) // data.acrnd_stop.force
    expect(msg.subarray(28).every((b) => b === 0)).toBe(true)
  })

  it('carries DM_BLKRESCAN devargs as a NUL-terminated string of at most 255 bytes', () => {
    const msg = encodeMngrMsg({ msgid: DmMsg.BLKRESCAN, devargs: '3,/tmp/disk.img' })
    expect(msg.subarray(24, 40).toString('latin1')).toBe('3,/tmp/disk.img\0')
    expect(decodeMngrMsg(msg)!.devargs).toBe('3,/tmp/disk.img')
    expect(() => encodeMngrMsg({ msgid: DmMsg.BLKRESCAN, devargs: 'x'.repeat(256) })).toThrow(
      /at most 255/,
    )
    expect(() => encodeMngrMsg({ msgid: DmMsg.BLKRESCAN, devargs: 'a\0b' })).toThrow(RangeError)
  })

  it('decodes a reply, and nothing from a short record or another magic', () => {
    const reply = encodeMngrMsg({ msgid: DmMsg.QUERY, timestamp: 7n, value: 4 })
    expect(decodeMngrMsg(reply)).toMatchObject({ msgid: 6, timestamp: 7n, value: 4 })
    expect(decodeMngrMsg(reply.subarray(0, 279))).toBeUndefined()
    const bad = Buffer.from(reply)
    bad[0] = 0
    expect(decodeMngrMsg(bad)).toBeUndefined()
  })
})

describe('monitor socket names, parsed exactly (never libacrn-mngr’s prefix match)', () => {
  it.each([
    ['vm1.monitor.123.socket', { name: 'vm1', pid: 123 }],
    ['vm10.monitor.4567.socket', { name: 'vm10', pid: 4567 }],
    ['vm1.monitor.0.socket', undefined],
    ['vm1.monitor.12x.socket', undefined],
    ['vm1.monitor.12.socket.old', undefined],
    ['.monitor.12.socket', undefined],
    ['acrnd.12.socket', undefined],
    ['a.b.monitor.12.socket', undefined],
  ])('%s', (file, expected) => {
    expect(parseMonitorSocketName(file)).toEqual(expected)
  })

  it('round-trips the name acrn-dm gives its socket', () => {
    expect(parseMonitorSocketName(monitorSocketName('vm10', 99))).toEqual({ name: 'vm10', pid: 99 })
  })
})

describe('monitorRequest: one request, one reply, a bounded wait', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-monitor-'))
  const servers: Server[] = []
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
    rmSync(dir, { recursive: true, force: true })
  })

  /** A server that hands each whole request to `answer`, as acrn-dm's poll thread does. */
  async function serve(
    name: string,
    answer: (req: Buffer, socket: Socket) => void,
  ): Promise<string> {
    const path = join(dir, name)
    const server = createServer((socket) => {
      let buf = Buffer.alloc(0)
      socket.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d])
        while (buf.length >= MNGR_MSG_SIZE) {
          answer(buf.subarray(0, MNGR_MSG_SIZE), socket)
          buf = buf.subarray(MNGR_MSG_SIZE)
        }
      })
      socket.on('error', () => {})
    })
    servers.push(server)
    await new Promise<void>((r) => server.listen(path, r))
    return path
  }

  it('returns the reply that copies the request’s magic, id and timestamp', async () => {
    const path = await serve('query', (req, s) => {
      const r = Buffer.from(req)
      r.writeInt32LE(4, 24) // suspended
      s.write(r)
    })
    const reply = await monitorRequest(path, { msgid: DmMsg.QUERY, timestamp: 42n })
    expect(reply).toMatchObject({ msgid: DmMsg.QUERY, timestamp: 42n, value: 4 })
  })

  it('takes a reply that arrives in pieces', async () => {
    const path = await serve('pieces', (req, s) => {
      s.write(req.subarray(0, 100))
      setImmediate(() => s.write(req.subarray(100)))
    })
    expect((await monitorRequest(path, { msgid: DmMsg.STOP, value: 1 })).value).toBe(1)
  })

  it('gives up after its timeout when acrn-dm does not answer (an unknown id gets no reply)', async () => {
    const path = await serve('silent', () => {})
    const err = await monitorRequest(path, { msgid: 99 }, 200).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(MonitorError)
    expect((err as MonitorError).failure).toEqual({ kind: 'timeout', ms: 200 })
  })

  it('refuses a reply for another request (timestamp or id) as garbled', async () => {
    const path = await serve('garbled', (req, s) => {
      const r = Buffer.from(req)
      r.writeBigInt64LE(1n, 16)
      s.write(r)
    })
    const err = await monitorRequest(path, { msgid: DmMsg.QUERY, timestamp: 5n }).catch(
      (e: unknown) => e,
    )
    expect((err as MonitorError).failure).toEqual({ kind: 'garbled' })
  })

  it('says the connection closed when acrn-dm exits before answering', async () => {
    const path = await serve('closes', (_req, s) => s.destroy())
    const err = await monitorRequest(path, { msgid: DmMsg.QUERY }).catch((e: unknown) => e)
    expect((err as MonitorError).failure).toEqual({ kind: 'closed' })
  })

  it('names the errno when the socket is not there', async () => {
    const err = await monitorRequest(join(dir, 'none.monitor.1.socket'), {
      msgid: DmMsg.QUERY,
    }).catch((e: unknown) => e)
    expect((err as MonitorError).failure).toMatchObject({ kind: 'connect', code: 'ENOENT' })
    expect((err as Error).message).toMatch(/cannot connect to .*none\.monitor\.1\.socket: ENOENT/)
  })
})
