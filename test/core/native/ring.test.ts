// The shim's shared-memory ring (helper/hsm-ring.h, helper/SHIM.md "The ring"):
//  - the server side's addon (build/hsm_ring.node), driven here against a ring file that
//    this test plays the shim's side of with plain file reads and writes (the same page
//    cache the addon maps), wrap-around and full rings included;
//  - SimServer taking a ring offer from a raw client and serving frames through it, bad
//    bytes and bad offers included;
//  - the real shim: falling back to its socket when the server has no ring, a transfer
//    larger than the ring, and the server going away mid-run.

import { spawn } from 'node:child_process'
import { closeSync, mkdtempSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { errnoByCode } from '../../../src/core/abi/errno.js'
import { Ioctl } from '../../../src/core/abi/ioctls.js'
import { shimLoadPath, shimPath } from '../../../src/core/native/preflight.js'
import {
  decodeMessage,
  encodeFrame,
  encodeOpen,
  type Frame,
  FrameDecoder,
  type FrameInit,
  Op,
} from '../../../src/core/native/protocol.js'
import { type RingAddon, type RingHandle, ringAddon } from '../../../src/core/native/ring.js'
import { MAX_UNSENT, SimServer } from '../../../src/core/native/sim-server.js'
import { encodeRingOffer, encodeShimHello, ShimOp } from '../../../src/core/native/shim-protocol.js'
import { createSimPlatform, Memmap } from '../../../src/index.js'
import { guestOf, memmap, runningVm } from '../sim/conformance/helpers.js'
import { nativeBackend, useNativeBackend } from '../sim/conformance/native-backend.js'
import { buildHelper, expectRefused, helperUnavailable, ROOT } from './support.js'

const E = (code: string) => errnoByCode(code)!.errno
const dir = mkdtempSync(join(tmpdir(), 'hsmctl-ring-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// hsm-ring.h's layout.
const MAGIC = 0x524d5348
const AT = {
  magic: 0,
  version: 4,
  size: 8,
  upTail: 64,
  upHead: 128,
  downTail: 192,
  downHead: 256,
  serverIdle: 320,
  shimIdle: 384,
  data: 4096,
}

/** The shim's side of a ring file (a sealed memfd, as the shim makes it), through its fd. */
class ShimSide {
  readonly path: string
  private readonly fd: number
  private readonly word = Buffer.alloc(4)

  constructor(
    readonly size: number,
    options: { magic?: number } = {},
  ) {
    this.fd = addon!.createRingFile(size)
    this.path = `/proc/self/fd/${this.fd}` // what the shim offers: /proc/PID/fd/N
    if (options.magic !== undefined) this.set(AT.magic, options.magic)
  }

  get(at: number): number {
    readSync(this.fd, this.word, 0, 4, at)
    return this.word.readUInt32LE(0)
  }

  set(at: number, value: number): void {
    this.word.writeUInt32LE(value >>> 0, 0)
    writeSync(this.fd, this.word, 0, 4, at)
  }

  /** Copy bytes into the up ring as far as they fit; how many did. */
  put(bytes: Uint8Array): number {
    const tail = this.get(AT.upTail)
    const room = this.size - ((tail - this.get(AT.upHead)) >>> 0)
    const n = Math.min(room, bytes.byteLength)
    const at = tail % this.size
    const first = Math.min(n, this.size - at)
    writeSync(this.fd, bytes, 0, first, AT.data + at)
    if (n > first) writeSync(this.fd, bytes, first, n - first, AT.data)
    this.set(AT.upTail, tail + n) // after the bytes, as the shim's release store
    return n
  }

  /** Everything the server has put in the down ring. */
  take(): Uint8Array {
    const head = this.get(AT.downHead)
    const n = (this.get(AT.downTail) - head) >>> 0
    const out = new Uint8Array(n)
    const at = head % this.size
    const first = Math.min(n, this.size - at)
    readSync(this.fd, out, 0, first, AT.data + this.size + at)
    if (n > first) readSync(this.fd, out, first, n - first, AT.data + this.size)
    this.set(AT.downHead, head + n)
    return out
  }

  close(): void {
    closeSync(this.fd)
  }
}

const addon = ringAddon()
// HSMCTL_CI=1: the ring must be there (the machine has Node.js's headers).
const noAddon =
  addon || process.env.HSMCTL_CI === '1'
    ? undefined
    : 'build/hsm_ring.node is not built here (no node_api.h): the shim uses its socket alone'

/** n bytes of a simple generator seeded by `seed`. */
function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n)
  let x = seed | 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

function errnoOf(f: () => unknown): number | undefined {
  try {
    f()
  } catch (e) {
    return (e as { errno?: number }).errno
  }
  return undefined
}

describe.skipIf(noAddon)('hsm_ring.node (the server side of the ring)', () => {
  const ring: RingAddon = addon!
  beforeAll(() => expect(ring, 'build/hsm_ring.node').toBeDefined())

  it('maps only a sealed ring file: absent, unsealed, wrong size, wrong magic or a bad ring size are refused', () => {
    const made = new ShimSide(4096)
    expect(made.get(AT.magic)).toBe(MAGIC) // createRingFile writes the header as the shim does
    expect([made.get(AT.size), made.get(AT.serverIdle), made.get(AT.shimIdle)]).toEqual([
      4096, 1, 1,
    ])
    expect(errnoOf(() => ring.open(join(dir, 'absent'), 4096))).toBe(E('ENOENT'))
    // A plain file, right but for the seal: the shim could shrink it under us (SIGBUS).
    expect(errnoOf(() => ring.open(plainRing(), 4096))).toBe(E('EPERM'))
    const alien = new ShimSide(4096, { magic: 0x12345678 })
    expect(errnoOf(() => ring.open(alien.path, 4096))).toBe(E('EPROTO'))
    expect(errnoOf(() => ring.open(made.path, 8192))).toBe(E('EINVAL')) // the file is 4096's
    expect(errnoOf(() => ring.open(made.path, 6144))).toBe(E('EINVAL')) // not a power of 2
    const h = ring.open(made.path, 4096)
    ring.close(h)
    expect(() => ring.readInto(h, new Uint8Array(8))).toThrow(/closed/)
    for (const s of [made, alien]) s.close()
  })

  it('carries byte streams both ways in order across the wrap, as far as there is room (a property)', () => {
    fc.assert(
      fc.property(
        // Sizes drawn, bytes made up: fast-check's own arrays are mostly short, and these
        // must go round a 4 KiB ring several times.
        fc.array(fc.integer({ min: 500, max: 3000 }), { minLength: 9, maxLength: 14 }),
        fc.integer({ min: 1, max: 5000 }),
        fc.integer(),
        (sizes, readSize, seed) => {
          const chunks = sizes.map((n, i) => noise(n, seed + i))
          const shim = new ShimSide(4096)
          const h = ring.open(shim.path, 4096)
          try {
            // Up: the shim puts what fits, the server reads in pieces of readSize.
            const sent: number[] = []
            const got: number[] = []
            const into = new Uint8Array(readSize)
            for (const c of chunks) {
              let at = 0
              while (at < c.byteLength) {
                const n = shim.put(c.subarray(at))
                sent.push(...c.subarray(at, at + n))
                at += n
                for (let k; (k = ring.readInto(h, into)) > 0;) got.push(...into.subarray(0, k))
              }
            }
            expect(sent.length).toBeGreaterThan(4096) // it went round
            expect(got).toEqual(sent)
            // Down: the server writes what fits (write says how much), the shim drains.
            const out: number[] = []
            const back: number[] = []
            for (const c of chunks) {
              let at = 0
              while (at < c.byteLength) {
                const n = ring.write(h, c, at)
                expect(n).toBeLessThanOrEqual(4096)
                out.push(...c.subarray(at, at + n))
                at += n
                back.push(...shim.take())
              }
            }
            expect(back).toEqual(out)
            expect(ring.write(h, new Uint8Array(5000), 0)).toBe(4096) // a full ring takes no more
            expect(ring.write(h, new Uint8Array(1), 0)).toBe(0)
          } finally {
            ring.close(h)
            shim.close()
          }
        },
      ),
      { numRuns: 60 },
    )
  })

  it('says who must ring: goIdle loses to input that came, peerIdle reads the shim', () => {
    const shim = new ShimSide(4096)
    const h = ring.open(shim.path, 4096)
    ring.busy(h)
    expect(shim.get(AT.serverIdle)).toBe(0)
    expect(ring.goIdle(h)).toBe(true) // nothing came: the shim must ring from now on
    expect(shim.get(AT.serverIdle)).toBe(1)
    ring.busy(h)
    shim.put(Uint8Array.of(1, 2, 3))
    expect(ring.goIdle(h)).toBe(false) // input is there: keep polling
    expect(shim.get(AT.serverIdle)).toBe(0)
    expect(ring.peerIdle(h)).toBe(true)
    shim.set(AT.shimIdle, 0)
    expect(ring.peerIdle(h)).toBe(false)
    ring.close(h)
    shim.close()
  })

  it('wait() finds the ring with input, or gives up after its time', () => {
    const a = new ShimSide(4096)
    const b = new ShimSide(4096)
    const handles: RingHandle[] = [ring.open(a.path, 4096), ring.open(b.path, 4096)]
    const start = performance.now()
    expect(ring.wait(handles, 2_000_000)).toBe(-1)
    expect(performance.now() - start).toBeGreaterThanOrEqual(1.9)
    b.put(Uint8Array.of(9))
    expect(ring.wait(handles, 1e9)).toBe(1)
    for (const h of handles) ring.close(h)
    a.close()
    b.close()
  })

  it('refuses indices the shim could not have written instead of copying beyond the ring', () => {
    const shim = new ShimSide(4096)
    const h = ring.open(shim.path, 4096)
    shim.set(AT.upTail, 4097)
    expect(errnoOf(() => ring.readInto(h, new Uint8Array(8192)))).toBe(E('EPROTO'))
    shim.set(AT.downHead, 0x8000_0000) // "more room than the ring has"
    expect(errnoOf(() => ring.write(h, new Uint8Array(1 << 20), 0))).toBe(E('EPROTO'))
    // Its own indices are not read back: a peer rewriting them changes nothing here.
    shim.set(AT.upTail, 0)
    shim.set(AT.downHead, 0)
    shim.set(AT.downTail, 1234)
    expect(ring.write(h, Uint8Array.of(7), 0)).toBe(1)
    expect(shim.get(AT.downTail)).toBe(1)
    ring.close(h)
    shim.close()
  })
})

/** A raw client playing the shim: HELLO on the socket, then a ring offer, then frames. */
class RingClient {
  readonly onSocket: Frame[] = []
  bells = 0
  /** The offer was taken: what comes on the socket from now on are doorbells. */
  private ringing = false

  private constructor(
    readonly socket: Socket,
    readonly shim: ShimSide,
  ) {
    const decoder = new FrameDecoder({ frame: (f) => this.onSocket.push(f) })
    socket.on('data', (c: Buffer) => {
      if (this.ringing) this.bells += c.byteLength
      else decoder.push(c)
    })
  }

  static async connect(path: string, shim: ShimSide): Promise<RingClient> {
    const s = connect(path)
    await new Promise((resolve, reject) => s.once('connect', resolve).once('error', reject))
    return new RingClient(s, shim)
  }

  async socketCall(init: FrameInit): Promise<Frame> {
    this.socket.write(encodeFrame(init))
    const deadline = Date.now() + 30_000 // a hang guard
    for (;;) {
      const f = this.onSocket.find((x) => x.id === init.id)
      if (f) return f
      if (Date.now() > deadline) throw new Error(`no reply to ${init.op} on the socket`)
      await new Promise((r) => setTimeout(r, 5))
    }
  }

  async offer(path = this.shim.path, size = this.shim.size): Promise<Frame> {
    await this.socketCall({
      op: ShimOp.HELLO,
      id: 1,
      payload: encodeShimHello({ pid: 4242, program: 'fake' }),
    })
    const reply = await this.socketCall({
      op: ShimOp.RING,
      id: 2,
      payload: encodeRingOffer({ size, path }),
    })
    this.ringing = reply.result === 0n
    return reply
  }

  /** Frames into the ring, then the doorbell byte: what the shim does with an idle server. */
  send(bytes: Uint8Array): void {
    let at = 0
    while (at < bytes.byteLength) at += this.shim.put(bytes.subarray(at))
    this.socket.write(Buffer.of(1))
  }

  /** Frames out of the down ring until `count` have come. */
  async receive(count: number): Promise<Frame[]> {
    const frames: Frame[] = []
    const decoder = new FrameDecoder({ frame: (f) => frames.push(f) })
    const deadline = Date.now() + 30_000 // a hang guard
    while (frames.length < count) {
      decoder.push(this.shim.take())
      if (Date.now() > deadline) throw new Error(`only ${frames.length} of ${count} frames came`)
      await new Promise((r) => setTimeout(r, 2))
    }
    return frames
  }

  end(): void {
    this.socket.destroy()
  }
}

describe.skipIf(noAddon)('SimServer over a ring (a raw client playing the shim)', () => {
  let server: SimServer
  const logged: string[] = []
  beforeAll(async () => {
    server = await SimServer.listen(join(dir, 'raw.sock'), {
      platform: createSimPlatform(),
      log: (line) => logged.push(line),
    })
    return () => server.close()
  })

  it('takes the offer on the socket, then serves frames in the ring and rings the idle shim', async () => {
    const c = await RingClient.connect(server.path, new ShimSide(1 << 16))
    const accepted = await c.offer()
    expect(accepted.result, decodeMessage(accepted.payload)).toBe(0n)
    c.send(encodeFrame({ op: Op.OPEN, id: 3, payload: encodeOpen('/dev/acrn_hsm') }))
    const [open] = await c.receive(1)
    expect(open).toMatchObject({ op: Op.OPEN, id: 3, errno: 0 })
    expect(open!.result).toBeGreaterThanOrEqual(0n)
    // The shim said it was idle (shim_idle = 1): the reply came with a doorbell byte.
    await expect.poll(() => c.bells).toBeGreaterThan(0)
    expect(server.sessions().map((s) => s.program)).toContain('fake')
    expect(server.shimTransports.ring).toBeGreaterThan(0)
    c.end()
    c.shim.close()
  })

  it('reports garbage in the ring once, resynchronises and keeps serving', async () => {
    const c = await RingClient.connect(server.path, new ShimSide(4096))
    expect((await c.offer()).result).toBe(0n)
    const garbage = new Uint8Array(100).fill(0xab)
    const open = encodeFrame({ op: Op.OPEN, id: 7, payload: encodeOpen('/dev/acrn_hsm') })
    c.send(new Uint8Array([...garbage, ...open]))
    const [error, reply] = await c.receive(2)
    expect(error).toMatchObject({ op: Op.PROTOCOL_ERROR, id: 0, errno: E('EPROTO') })
    expect(reply).toMatchObject({ op: Op.OPEN, id: 7, errno: 0 })
    c.end()
    c.shim.close()
  })

  it('streams a reply larger than the ring as the shim takes it', async () => {
    const c = await RingClient.connect(server.path, new ShimSide(4096))
    expect((await c.offer()).result).toBe(0n)
    c.send(encodeFrame({ op: Op.MMAP, id: 4, payload: mmapPayload(65536n) }))
    const [mapped] = await c.receive(1)
    // 64 KiB read back through a 4 KiB ring: the server holds the rest until there is room.
    c.send(encodeFrame({ op: Op.READ, id: 5, payload: readPayload(mapped!.result, 65536) }))
    const [read] = await c.receive(1)
    expect(read).toMatchObject({ op: Op.READ, id: 5, errno: 0 })
    expect(read!.payload.byteLength).toBe(65536)
    c.end()
    c.shim.close()
  })

  // issue 13 item 4: every server is tested with a reader that never reads
  it('a process that puts READs in its ring and never takes the replies: the server stops reading its ring at MAX_UNSENT, and answers all once it takes them', async () => {
    const c = await RingClient.connect(server.path, new ShimSide(1 << 16))
    expect((await c.offer()).result).toBe(0n)
    const SIZE = 128 * 1024
    c.send(encodeFrame({ op: Op.MMAP, id: 3, payload: mmapPayload(BigInt(SIZE)) }))
    const [mapped] = await c.receive(1)
    const requests = 200 // 25 MiB of replies if they were all held; their frames fit the ring
    const frames = Array.from({ length: requests }, (_, i) =>
      encodeFrame({ op: Op.READ, id: 10 + i, payload: readPayload(mapped!.result, SIZE) }),
    )
    c.send(Buffer.concat(frames))
    const session = () => server.sessions().find((s) => s.program === 'fake' && s.handled > 0)!
    const deadline = Date.now() + 60_000 // a hang guard
    while (session().reading && session().handled < requests + 1) {
      if (Date.now() > deadline) throw new Error(`never settled: ${JSON.stringify(session())}`)
      await new Promise((r) => setTimeout(r, 10))
    }
    const held = session()
    expect(held.reading).toBe(false)
    expect(held.handled).toBeLessThan(requests)
    expect(held.unsentBytes).toBeLessThanOrEqual(MAX_UNSENT + SIZE + 64)
    // once it takes them, every READ is answered, in order
    const replies = await c.receive(requests)
    expect(replies.map((f) => [f.id, f.payload.byteLength])).toEqual(
      frames.map((_, i) => [10 + i, SIZE]),
    )
    c.end()
    c.shim.close()
  })

  it('ends the session of a process whose ring turns to nonsense, and serves the others', async () => {
    const bad = await RingClient.connect(server.path, new ShimSide(4096))
    const good = await RingClient.connect(server.path, new ShimSide(4096))
    expect((await bad.offer()).result).toBe(0n)
    expect((await good.offer()).result).toBe(0n)
    const closed = new Promise((resolve) => bad.socket.once('close', resolve))
    bad.shim.set(AT.upTail, 0x4000_0000) // a tail it could not have written
    bad.socket.write(Buffer.of(1))
    await closed
    good.send(encodeFrame({ op: Op.OPEN, id: 3, payload: encodeOpen('/dev/acrn_hsm') }))
    const [open] = await good.receive(1)
    expect(open).toMatchObject({ op: Op.OPEN, id: 3, errno: 0 })
    expect(logged.join('\n')).toMatch(
      /client pid 4242 \(fake\): the peer's ring tail: Protocol error; closing its connection/,
    )
    good.end()
    for (const c of [bad, good]) c.shim.close()
  })

  it('refuses bad offers with the errno of what is wrong, and only right after HELLO', async () => {
    const cases: Array<[string, (c: RingClient) => Promise<Frame>, string, RegExp]> = [
      [
        'absent file',
        (c) => c.offer('/proc/self/fd/99999'),
        'ENOENT',
        /ring .*99999: open: No such file/,
      ],
      ['unsealed file', (c) => c.offer(plainRing()), 'EPERM', /not sealed against shrinking/],
      ['relative path', (c) => c.offer('ring'), 'EINVAL', /path must be absolute/],
      ['wrong size', (c) => c.offer(c.shim.path, 8192), 'EINVAL', /ring file size/],
    ]
    for (const [label, offer, errno, message] of cases) {
      const c = await RingClient.connect(server.path, new ShimSide(4096))
      expectRefused(await offer(c), errno, message)
      // Refused: the socket still carries frames.
      const open = await c.socketCall({ op: Op.OPEN, id: 9, payload: encodeOpen('/dev/acrn_hsm') })
      expect(open.result, label).toBeGreaterThanOrEqual(0n)
      const late = await c.socketCall({
        op: ShimOp.RING,
        id: 10,
        payload: encodeRingOffer({ size: 4096, path: c.shim.path }),
      })
      expectRefused(late, 'EPROTO', /right after the shim hello/)
      c.end()
      c.shim.close()
    }
  })
})

/** A plain file laid out as a ring of 4 KiB: right but for the seal. */
function plainRing(): string {
  const path = join(dir, 'plain-ring')
  const bytes = new Uint8Array(4096 * 3)
  const v = new DataView(bytes.buffer)
  v.setUint32(0, MAGIC, true)
  v.setUint32(4, 1, true)
  v.setUint32(8, 4096, true)
  writeFileSync(path, bytes)
  return path
}

function mmapPayload(length: bigint): Uint8Array {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, length, true)
  return b
}

function readPayload(address: bigint, length: number): Uint8Array {
  const b = new Uint8Array(16)
  const v = new DataView(b.buffer)
  v.setBigUint64(0, address, true)
  v.setUint32(8, length, true)
  return b
}

/** Run a program to its end; its exit status and output. */
function run(
  cmd: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

/** `hsmctl sim serve` in a child process, ready once its socket answers. */
async function serveInChild(socket: string, env: Record<string, string> = {}) {
  const child = spawn(
    process.execPath,
    [join(ROOT, 'bin', 'run.js'), 'sim', 'serve', '--socket', socket],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let log = ''
  child.stdout.on('data', (d: Buffer) => (log += d.toString()))
  child.stderr.on('data', (d: Buffer) => (log += d.toString()))
  await expect.poll(() => log, { timeout: 20_000 }).toMatch(/serving|listening|socket/i)
  return { child, log: () => log }
}

describe.skipIf(helperUnavailable)('the shim on its ring', () => {
  beforeAll(() => buildHelper(), 120_000)

  it('falls back to its socket when the server has no ring, and says so only when told to use one', async () => {
    const socket = join(dir, 'noring.sock')
    const { child, log } = await serveInChild(socket, { HSMCTL_RING: '0' })
    try {
      expect(log()).toMatch(
        /sim serve: no shared-memory ring \(disabled by HSMCTL_RING=0\): shimmed programs use the socket alone/,
      )
      const env = { LD_PRELOAD: shimPath(), HSM_SHIM_SOCKET: socket }
      const quiet = await run(shimLoadPath(), ['1', '50'], env)
      expect(quiet.stderr).toBe('')
      expect(quiet.code).toBe(0)
      expect(quiet.stdout).toMatch(/^calls 50 /)
      const told = await run(shimLoadPath(), ['2', '50'], { ...env, HSM_SHIM_TRANSPORT: 'ring' })
      expect(told.stderr).toMatch(
        /hsm-shim: the server refused the ring \(Function not implemented: this server has no ring: disabled by HSMCTL_RING=0\); using the socket alone/,
      )
      expect(told.code).toBe(0)
      expect(told.stdout).toMatch(/^calls 100 /)
      const typo = await run(shimLoadPath(), ['1', '5'], { ...env, HSM_SHIM_TRANSPORT: 'rings' })
      expect(typo.stderr).toMatch(
        /HSM_SHIM_TRANSPORT=rings: expected ring, socket or auto; using auto/,
      )
      expect(typo.code).toBe(0)
    } finally {
      child.kill('SIGTERM')
    }
  }, 60_000)

  it.skipIf(noAddon)(
    'fails every call with EIO, once said, when the server goes away mid-run',
    async () => {
      const socket = join(dir, 'dies.sock')
      const { child, log } = await serveInChild(socket)
      expect(log()).toMatch(/sim serve: shimmed programs talk to it through a shared-memory ring/)
      const load = run(shimLoadPath(), ['2', '100000000'], {
        LD_PRELOAD: shimPath(),
        HSM_SHIM_SOCKET: socket,
        HSM_SHIM_TRANSPORT: 'ring',
      })
      await new Promise((r) => setTimeout(r, 300))
      child.kill('SIGKILL')
      const r = await load
      expect(r.code).not.toBe(0)
      expect(
        r.stderr.match(/lost the connection to .*dies\.sock; HSM calls now fail with EIO/g),
      ).toHaveLength(1)
      expect(r.stderr).toMatch(/NOTIFY_REQUEST_FINISH: Input\/output error/)
    },
    60_000,
  )
})

// RAM larger than the ring crosses it on SYNC (DIFF frames streamed as the server takes
// them): 8 MiB written by a shimmed hsm-helper, read by the guest.
describe.skipIf(helperUnavailable)('a sync larger than the ring', () => {
  useNativeBackend()

  it('8 MiB of RAM written in the process reaches the guest whole', async () => {
    const sys = nativeBackend.create()
    const vm = await runningVm(sys, { client: false })
    const size = 8 << 20
    const guest = await vm.proc.mmap(size)
    await vm.proc.ioctl(
      vm.fd,
      Ioctl.SET_MEMSEG,
      memmap({ type: Memmap.RAM, vma_base: guest, len: BigInt(size) }),
    )
    const pattern = new Uint8Array(size)
    for (let i = 0; i < size; i += 4)
      new DataView(pattern.buffer).setUint32(i, i ^ 0x5a5a5a5a, true)
    await vm.proc.write(guest, pattern)
    const access = guestOf(sys)
    for (const at of [0, 0x1f_fffc, 0x40_0000, size - 4]) {
      const value = await access({
        vmid: vm.vmid,
        vcpu: 0,
        type: 'mmio',
        dir: 'read',
        addr: at,
        size: 4,
      })
      expect(value, `guest RAM at 0x${at.toString(16)}`).toBe(BigInt((at ^ 0x5a5a5a5a) >>> 0))
    }
  }, 60_000)
})
