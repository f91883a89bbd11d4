// SimServer (what `hsmctl sim serve` and `hsmd --serve-sim` run) fed raw frames on its
// unix socket: the helper's ops against a SimProcess, the shim's ops, and bad input of
// every kind, each refused while the server keeps serving (helper/SHIM.md).

import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { errnoByCode } from '../../../src/core/abi/errno.js'
import { Ioctl } from '../../../src/core/abi/ioctls.js'
import {
  ArgKind,
  decodeHello,
  decodeMessage,
  decodeU64,
  encodeEventfd,
  encodeEventfdWrite,
  encodeFd,
  encodeFrame,
  encodeIoctl,
  encodeMmap,
  encodeOpen,
  encodeRead,
  FLAG_REFUSED,
  type Frame,
  FrameDecoder,
  type FrameInit,
  HEADER_SIZE,
  MAX_PAYLOAD,
  Op,
} from '../../../src/core/native/protocol.js'
import { diffRanges, MAX_UNSENT, SimServer } from '../../../src/core/native/sim-server.js'
import {
  encodeDiff,
  encodeMirror,
  encodeLane,
  encodeShare,
  encodeShimHello,
  type Share,
  ShimOp,
  ShimRole,
} from '../../../src/core/native/shim-protocol.js'
import { createSimPlatform, type SimPlatform } from '../../../src/index.js'
import { expectRefused, ROOT } from './support.js'

const E = (code: string) => errnoByCode(code)!.errno
const dir = mkdtempSync(join(tmpdir(), 'hsmctl-simserve-'))
let n = 0
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A client speaking raw frames to the server. */
class RawClient {
  readonly frames: Frame[] = []
  private waiters: Array<() => void> = []
  closed = false

  private constructor(readonly socket: Socket) {
    const decoder = new FrameDecoder({
      frame: (f) => {
        this.frames.push(f)
        for (const w of this.waiters.splice(0)) w()
      },
    })
    socket.on('data', (c: Buffer) => decoder.push(c))
    socket.on('close', () => {
      this.closed = true
      for (const w of this.waiters.splice(0)) w()
    })
  }

  static connect(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect(path)
      s.once('connect', () => resolve(new RawClient(s)))
      s.once('error', reject)
    })
  }

  send(bytes: Uint8Array): void {
    this.socket.write(bytes)
  }

  /** The next frame matching `match`, waiting for it. */
  async next(match: (f: Frame) => boolean, timeoutMs = 30_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const i = this.frames.findIndex(match)
      if (i >= 0) return this.frames.splice(i, 1)[0]!
      if (this.closed) throw new Error('the server closed the connection')
      const left = deadline - Date.now()
      if (left <= 0) throw new Error('no such frame in time')
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
  }

  async call(init: FrameInit): Promise<Frame> {
    this.send(encodeFrame(init))
    return this.next((f) => f.id === init.id && f.op === init.op)
  }

  end(): void {
    this.socket.end()
  }
}

const creation = (ioreqBuf: bigint) => {
  const b = new Uint8Array(48)
  const v = new DataView(b.buffer)
  v.setBigUint64(32, ioreqBuf, true)
  v.setBigUint64(40, 0b10n, true) // one vCPU
  return b
}

describe('SimServer with raw frames', () => {
  let platform: SimPlatform
  let server: SimServer
  let c: RawClient
  let id: number
  let fd: number

  beforeEach(async () => {
    platform = createSimPlatform()
    server = await SimServer.listen(join(dir, `t${n++}.sock`), { platform })
    c = await RawClient.connect(server.path)
    id = 1
    const hello = await c.call({ op: Op.HELLO, id: id++ })
    expect(decodeHello(hello.payload)).toMatchObject({
      maxPayload: MAX_PAYLOAD,
      pid: process.pid,
      device: '/dev/acrn_hsm',
    })
    fd = Number(
      (await c.call({ op: Op.OPEN, id: id++, payload: encodeOpen('/dev/acrn_hsm') })).result,
    )
    expect(fd).toBeGreaterThanOrEqual(3)
  })

  afterEach(async () => {
    c.end()
    await server.close()
  })

  const call = (op: number, payload?: Uint8Array) =>
    c.call({ op, id: id++, ...(payload ? { payload } : {}) })
  const ioctl = (
    request: number,
    kind: (typeof ArgKind)[keyof typeof ArgKind],
    bytes = new Uint8Array(0),
    value = 0n,
  ) => call(Op.IOCTL, encodeIoctl({ fd, request, kind, value, bytes }))

  /** The server still answers, and the session's state is intact. */
  async function stillServing(): Promise<void> {
    const r = await ioctl(Ioctl.START_VM, ArgKind.NONE)
    expect(r.errno).toBe(E('EINVAL')) // the fd has no VM (§1.6): the same fd, the same answer
    expect(statSync(server.path).isSocket()).toBe(true)
  }

  it('serves the helper ops on a SimProcess: a VM, its ioreq page, an eventfd', async () => {
    const page = (await call(Op.MMAP, encodeMmap(4096n))).result
    const create = await ioctl(Ioctl.CREATE_VM, ArgKind.BUFFER, creation(page))
    expect(create.result).toBe(0n)
    // Read-back: vmid and vcpu_num filled in, ioreq_buf as given (§2.2 step 7).
    const back = new DataView(create.payload.buffer, create.payload.byteOffset, 48)
    expect(back.getUint16(4, true)).toBe(1)
    expect(back.getBigUint64(32, true)).toBe(page)
    const slots = (await call(Op.READ, encodeRead(page, 4096))).payload
    expect(new DataView(slots.buffer, slots.byteOffset).getUint32(136, true)).toBe(3) // FREE
    expect(platform.inspect.vms()).toHaveLength(1)
    const efd = Number((await call(Op.EVENTFD, encodeEventfd(2))).result)
    expect((await call(Op.EVENTFD_WRITE, encodeEventfdWrite(efd, 5n))).result).toBe(0n)
    expect(decodeU64('eventfd_read', (await call(Op.EVENTFD_READ, encodeFd(efd))).payload)).toBe(7n)
    const empty = await call(Op.EVENTFD_READ, encodeFd(efd))
    expect([empty.result, empty.errno, empty.flags]).toEqual([-1n, E('EAGAIN'), 0])
    // The kernel's own answers are errno replies, not refusals.
    const gated = await ioctl(Ioctl.CREATE_IOREQ_CLIENT, ArgKind.NONE)
    expect([gated.result, gated.flags]).toEqual([0n, 0])
    expect((await ioctl(Ioctl.CREATE_IOREQ_CLIENT, ArgKind.NONE)).errno).toBe(E('EEXIST'))
  })

  // issue 13 item 4: every server is tested with a reader that never reads
  it('a client that sends READs and never reads the replies: the server stops reading it at MAX_UNSENT, serves others, and answers all once it reads', async () => {
    const SIZE = 128 * 1024
    const requests = 200 // 25 MiB of replies if they were all held
    const buffer = (await call(Op.MMAP, encodeMmap(BigInt(SIZE)))).result
    c.socket.pause() // from here it reads nothing
    const first = id
    for (let i = 0; i < requests; i++)
      c.send(encodeFrame({ op: Op.READ, id: id++, payload: encodeRead(buffer, SIZE) }))
    const deadline = Date.now() + 60_000 // a hang guard
    let held = server.sessions()[0]!
    while (held.reading && held.handled < requests + 3) {
      if (Date.now() > deadline) throw new Error(`never settled: ${JSON.stringify(held)}`)
      await new Promise((r) => setTimeout(r, 10))
      held = server.sessions()[0]!
    }
    expect(held.reading).toBe(false)
    expect(held.handled).toBeLessThan(requests)
    expect(held.unsentBytes).toBeLessThanOrEqual(MAX_UNSENT + SIZE + HEADER_SIZE)
    expect(held.queuedBytes).toBeLessThanOrEqual(MAX_UNSENT + 64 * 1024)
    // another client is served meanwhile
    const other = await RawClient.connect(server.path)
    expect((await other.call({ op: Op.HELLO, id: 1 })).result).toBe(0n)
    other.end()
    // once it reads, every READ is answered, in order
    c.socket.resume()
    for (let i = 0; i < requests; i++) {
      const reply = await c.next((f) => f.op === Op.READ)
      expect([reply.id, reply.payload.byteLength]).toEqual([first + i, SIZE])
    }
  })

  it('closing the connection closes its fds: a paused VM is destroyed, a running one orphaned (§1.5)', async () => {
    const page = (await call(Op.MMAP, encodeMmap(4096n))).result
    await ioctl(Ioctl.CREATE_VM, ArgKind.BUFFER, creation(page))
    const other = Number((await call(Op.OPEN, encodeOpen('/dev/acrn_hsm'))).result)
    const page2 = (await call(Op.MMAP, encodeMmap(4096n))).result
    await call(
      Op.IOCTL,
      encodeIoctl({
        fd: other,
        request: Ioctl.CREATE_VM,
        kind: ArgKind.BUFFER,
        value: 0n,
        bytes: creation(page2),
      }),
    )
    await call(
      Op.IOCTL,
      encodeIoctl({
        fd: other,
        request: Ioctl.START_VM,
        kind: ArgKind.NONE,
        value: 0n,
        bytes: new Uint8Array(0),
      }),
    )
    await ioctl(Ioctl.PAUSE_VM, ArgKind.NONE)
    expect(server.sessions()).toEqual([
      expect.objectContaining({ pid: 0, program: '', shim: false, vmids: [1, 2] }),
    ])
    expect(
      platform.inspect
        .vms()
        .map((v) => v.state)
        .sort(),
    ).toEqual(['paused', 'running'])
    c.end()
    await c.next(() => false, 2000).catch(() => undefined)
    await platform.settle()
    expect(platform.inspect.vms().map((v) => v.state)).toEqual(['running'])
    expect(server.sessions()).toEqual([])
  })

  // [what, frame, errno, message]; each is followed by a good call.
  type Case = [string, () => FrameInit, string, RegExp]
  const cases: Case[] = [
    ['an unknown op', () => ({ op: 0x4242, id: 900 }), 'ENOSYS', /unknown op 16962/],
    [
      'a shim op before the shim said hello',
      () => ({ op: ShimOp.EFD_WRITE, id: 901, payload: new Uint8Array(16) }),
      'ENOSYS',
      /unknown op/,
    ],
    [
      'protocol version 2',
      () => ({ op: Op.HELLO, id: 902, version: 2 }),
      'EPROTO',
      /protocol version 2/,
    ],
    ['a request with id 0', () => ({ op: Op.HELLO, id: 0 }), 'EPROTO', /non-zero id/],
    [
      'a request with flags set',
      () => ({ op: Op.HELLO, id: 903, flags: 1 }),
      'EPROTO',
      /non-zero id and zero flags/,
    ],
    [
      'a request carrying a result',
      () => ({ op: Op.HELLO, id: 904, result: 5n }),
      'EPROTO',
      /zero flags, result/,
    ],
    [
      'a hello with a payload',
      () => ({ op: Op.HELLO, id: 905, payload: new Uint8Array(1) }),
      'EINVAL',
      /hello payload must be empty/,
    ],
    [
      'a truncated mmap payload',
      () => ({ op: Op.MMAP, id: 906, payload: new Uint8Array(4) }),
      'EINVAL',
      /mmap payload is 4 bytes, expected 8/,
    ],
    [
      'an mmap of 0 bytes',
      () => ({ op: Op.MMAP, id: 907, payload: encodeMmap(0n) }),
      'EINVAL',
      /not a usable size/,
    ],
    [
      'an ioctl shorter than its fixed part',
      () => ({ op: Op.IOCTL, id: 908, payload: new Uint8Array(20) }),
      'EINVAL',
      /shorter than its 24-byte fixed part/,
    ],
    [
      'an ioctl with reserved bytes set',
      () => ({
        op: Op.IOCTL,
        id: 909,
        payload: (() => {
          const p = encodeIoctl({
            fd: 3,
            request: Ioctl.START_VM,
            kind: ArgKind.NONE,
            value: 0n,
            bytes: new Uint8Array(0),
          })
          p[12] = 1
          return p
        })(),
      }),
      'EINVAL',
      /reserved bytes must be zero/,
    ],
    [
      'an ioctl with an unknown argument kind',
      () => ({
        op: Op.IOCTL,
        id: 910,
        payload: (() => {
          const p = encodeIoctl({
            fd: 3,
            request: Ioctl.START_VM,
            kind: ArgKind.NONE,
            value: 0n,
            bytes: new Uint8Array(0),
          })
          p[8] = 9
          return p
        })(),
      }),
      'EINVAL',
      /unknown argument kind 9/,
    ],
    [
      'a read of more than a frame',
      () => ({ op: Op.READ, id: 911, payload: encodeRead(0n, MAX_PAYLOAD + 1) }),
      'E2BIG',
      /more than a frame carries/,
    ],
    [
      'an open of an empty path',
      () => ({ op: Op.OPEN, id: 912, payload: new Uint8Array(0) }),
      'EINVAL',
      /the path must be 1 to 4095 bytes/,
    ],
    [
      'a close with reserved bytes',
      () => ({ op: Op.CLOSE, id: 913, payload: Uint8Array.of(3, 0, 0, 0, 1, 0, 0, 0) }),
      'EINVAL',
      /reserved bytes must be zero/,
    ],
  ]

  it.each(cases)('refuses %s and keeps serving', async (_what, build, errno, message) => {
    const frame = build()
    c.send(encodeFrame(frame))
    expectRefused(await c.next((f) => f.id === frame.id && f.op === frame.op), errno, message)
    await stillServing()
  })

  it('answers a failed call with the kernel errno, not a refusal', async () => {
    const r = await call(Op.CLOSE, encodeFd(77))
    expect([r.result, r.errno, r.flags]).toEqual([-1n, E('EBADF'), 0])
    const w = await call(Op.READ, encodeRead(0x1000n, 8))
    expect([w.errno, w.flags]).toEqual([E('EFAULT'), 0])
  })

  it('refuses an oversized frame with E2BIG, skips exactly its payload and serves the next', async () => {
    const big = encodeFrame({ op: Op.WRITE, id: 950, payload: new Uint8Array(MAX_PAYLOAD + 1) })
    c.send(big)
    expectRefused(await c.next((f) => f.id === 950), 'E2BIG', /over the 1048576-byte limit/)
    await stillServing()
  })

  it('reports garbage once (id 0, EPROTO), resynchronises at the next header and serves it', async () => {
    const junk = new TextEncoder().encode('this is not a frame, HSM but almost '.repeat(40))
    const good = encodeFrame({ op: Op.HELLO, id: 960 })
    c.send(new Uint8Array([...junk, ...good]))
    const error = await c.next((f) => f.op === Op.PROTOCOL_ERROR)
    expect([error.id, error.errno, error.flags]).toEqual([0, E('EPROTO'), FLAG_REFUSED])
    expect(decodeMessage(error.payload)).toMatch(/bad magic/)
    expect((await c.next((f) => f.id === 960)).result).toBe(0n)
    expect(c.frames.filter((f) => f.op === Op.PROTOCOL_ERROR)).toEqual([])
    // A header with the right magic but a broken check is garbage too.
    const broken = encodeFrame({ op: Op.HELLO, id: 961 })
    broken[HEADER_SIZE - 1]! ^= 0xff
    c.send(new Uint8Array([...broken, ...encodeFrame({ op: Op.HELLO, id: 962 })]))
    expect(decodeMessage((await c.next((f) => f.op === Op.PROTOCOL_ERROR)).payload)).toMatch(
      /bad header check/,
    )
    expect((await c.next((f) => f.id === 962)).result).toBe(0n)
    await stillServing()
  })

  it('answers every frame once whatever it carries, through garbage, and stays up (a property)', async () => {
    const anyFrame = fc.record({
      // Not the shim's HELLO: after it, the shim's one-way ops get no reply.
      op: fc
        .oneof(
          fc.constantFrom(...Object.values(Op), ...Object.values(ShimOp)),
          fc.integer({ min: 0, max: 0xffff }),
        )
        .filter((op) => op !== ShimOp.HELLO),
      payload: fc.uint8Array({ maxLength: 96 }),
      garbage: fc.uint8Array({ maxLength: 40 }),
    })
    let next = 2000
    await fc.assert(
      fc.asyncProperty(fc.array(anyFrame, { minLength: 1, maxLength: 8 }), async (frames) => {
        const sent: number[] = []
        for (const f of frames) {
          // Never the blocking ATTACH (it would wait): every other request gets a reply.
          if (f.op === Op.IOCTL && f.payload.byteLength >= 8)
            new DataView(f.payload.buffer).setUint32(4, Ioctl.START_VM, true)
          const frameId = next++
          // Garbage without the magic, so it cannot swallow the frame after it.
          const junk = f.garbage.map((b) => (b === 0x48 ? 0 : b))
          c.send(
            new Uint8Array([
              ...junk,
              ...encodeFrame({ op: f.op, id: frameId, payload: f.payload }),
            ]),
          )
          sent.push(frameId)
        }
        for (const frameId of sent) await c.next((f) => f.id === frameId)
        c.frames.splice(0)
      }),
      { numRuns: 40 },
    )
    await stillServing()
  })

  describe('the shim ops (helper/SHIM.md)', () => {
    beforeEach(async () => {
      const hello = await call(ShimOp.HELLO, encodeShimHello({ pid: 4242, program: 'test-prog' }))
      expect(hello.result).toBe(0n)
    })

    it('a shimmed process is listed by pid and program with the VMs its fds hold', async () => {
      const page = 0x7000_0000_0000n
      c.send(
        encodeFrame({
          op: ShimOp.MIRROR,
          id: 0,
          payload: encodeMirror({ region: 1, role: ShimRole.IOREQ, address: page, length: 4096n }),
        }),
      )
      const create = await ioctl(Ioctl.CREATE_VM, ArgKind.BUFFER, creation(page + 0x10n))
      expect(create.result).toBe(0n)
      // The process's address comes back as it gave it, and its page is synced after the call.
      expect(
        new DataView(create.payload.buffer, create.payload.byteOffset).getBigUint64(32, true),
      ).toBe(page + 0x10n)
      const diff = c.frames.find((f) => f.op === ShimOp.DIFF)
      expect(diff).toBeDefined()
      const vmid = new DataView(create.payload.buffer, create.payload.byteOffset).getUint16(0, true)
      expect(server.sessions()).toEqual([
        expect.objectContaining({ pid: 4242, program: 'test-prog', shim: true, vmids: [vmid] }),
      ])
      expect(await server.pagemap(4242, page + 0x20n)).toBe(platform.inspect.vm(vmid)!.ioreqBuffer)
    })

    const share = (over: Partial<Share>) =>
      encodeShare({
        region: 7,
        role: ShimRole.RAM,
        address: 0x10000n,
        length: 0x10000n,
        offset: 0n,
        pageSize: 4096,
        path: '/proc/4242/fd/5',
        ...over,
      })
    const shimCases: Case[] = [
      [
        'a mirror of an unaligned address',
        () => ({
          op: ShimOp.MIRROR,
          id: 0,
          payload: encodeMirror({
            region: 7,
            role: ShimRole.MONITOR,
            address: 0x1001n,
            length: 4096n,
          }),
        }),
        'EINVAL',
        /not a page range/,
      ],
      [
        'a mirror of an unknown role',
        () => ({
          op: ShimOp.MIRROR,
          id: 0,
          payload: encodeMirror({ region: 7, role: 9, address: 0x1000n, length: 4096n }),
        }),
        'EINVAL',
        /unknown role 9/,
      ],
      [
        'a mirror of 2 GiB',
        () => ({
          op: ShimOp.MIRROR,
          id: 0,
          payload: encodeMirror({
            region: 7,
            role: ShimRole.IOREQ,
            address: 0x1000n,
            length: 1n << 31n,
          }),
        }),
        'EINVAL',
        /not a page range/,
      ],
      [
        'a diff of an unknown region',
        () => ({
          op: ShimOp.DIFF,
          id: 0,
          payload: encodeDiff(99, [{ offset: 0, bytes: new Uint8Array(4) }]),
        }),
        'EINVAL',
        /no mirrored region 99/,
      ],
      [
        'a mirror of RAM (RAM is shared, never mirrored)',
        () => ({
          op: ShimOp.MIRROR,
          id: 0,
          payload: encodeMirror({ region: 7, role: ShimRole.RAM, address: 0x1000n, length: 4096n }),
        }),
        'EINVAL',
        /RAM is shared/,
      ],
      [
        'a share of a file another process holds',
        () => ({ op: ShimOp.SHARE, id: 991, payload: share({ path: '/proc/1/fd/3' }) }),
        'EINVAL',
        /not a file of pid 4242/,
      ],
      [
        'a share of a path outside /proc',
        () => ({ op: ShimOp.SHARE, id: 992, payload: share({ path: '/etc/passwd' }) }),
        'EINVAL',
        /not a file of pid 4242/,
      ],
      [
        'a share of an unaligned range',
        () => ({ op: ShimOp.SHARE, id: 993, payload: share({ offset: 100n }) }),
        'EINVAL',
        /not a page range/,
      ],
      [
        'a share with a page size that is not a power of two',
        () => ({ op: ShimOp.SHARE, id: 994, payload: share({ pageSize: 12288 }) }),
        'EINVAL',
        /page size 12288/,
      ],
      [
        'a share of an unknown role',
        () => ({ op: ShimOp.SHARE, id: 995, payload: share({ role: 4 }) }),
        'EINVAL',
        /unknown role 4/,
      ],
      [
        'a share of an ioreq page of 2 GiB',
        () => ({
          op: ShimOp.SHARE,
          id: 995,
          payload: share({ role: ShimRole.IOREQ, length: 2n << 30n }),
        }),
        'EINVAL',
        /too large for a page/,
      ],
      [
        'a diff whose range runs past the frame',
        () => ({
          op: ShimOp.DIFF,
          id: 0,
          payload: (() => {
            const p = encodeDiff(1, [{ offset: 0, bytes: new Uint8Array(4) }])
            new DataView(p.buffer).setUint32(12, 400, true)
            return p
          })(),
        }),
        'EINVAL',
        /runs past the frame/,
      ],
      [
        'an fd declaration of an unknown kind',
        () => ({
          op: ShimOp.FD,
          id: 0,
          payload: (() => {
            const p = new Uint8Array(24)
            p[4] = 7
            return p
          })(),
        }),
        'EINVAL',
        /unknown kind 7/,
      ],
      [
        'an efd_write of 8 bytes',
        () => ({ op: ShimOp.EFD_WRITE, id: 990, payload: new Uint8Array(8) }),
        'EINVAL',
        /expected 16/,
      ],
      [
        'an interrupt with a payload',
        () => ({ op: ShimOp.INTERRUPT, id: 0, payload: new Uint8Array(2) }),
        'EINVAL',
        /must be empty/,
      ],
      [
        'a lane in a file another process holds',
        () => ({ op: ShimOp.LANE, id: 996, payload: encodeLane({ fd: 3, path: '/proc/1/fd/3' }) }),
        'EINVAL',
        /lane: \/proc\/1\/fd\/3 is not a file of pid 4242/,
      ],
      [
        'a lane in a path outside /proc',
        () => ({ op: ShimOp.LANE, id: 997, payload: encodeLane({ fd: 3, path: '/etc/passwd' }) }),
        'EINVAL',
        /not a file of pid/,
      ],
      [
        'a lane for an fd that is not the device',
        () => ({
          op: ShimOp.LANE,
          id: 998,
          payload: encodeLane({ fd: 77, path: '/proc/4242/fd/9' }),
        }),
        'EBADF',
        /lane: 77 is not an HSM fd/,
      ],
      [
        'a lane offer with reserved bytes set',
        () => ({
          op: ShimOp.LANE,
          id: 999,
          payload: (() => {
            const p = encodeLane({ fd: 3, path: '/proc/4242/fd/9' })
            p[4] = 1
            return p
          })(),
        }),
        'EINVAL',
        /lane: reserved bytes/,
      ],
    ]

    it.each(shimCases)('refuses %s and keeps serving', async (_what, build, errno, message) => {
      const frame = build()
      c.send(encodeFrame(frame))
      expectRefused(
        await c.next((f) => f.op === frame.op && (f.flags & FLAG_REFUSED) !== 0),
        errno,
        message,
      )
      await stillServing()
    })

    it('a diff beyond its region is refused and changes nothing', async () => {
      c.send(
        encodeFrame({
          op: ShimOp.MIRROR,
          id: 0,
          payload: encodeMirror({
            region: 3,
            role: ShimRole.IOREQ,
            address: 0x4000n,
            length: 4096n,
          }),
        }),
      )
      c.send(
        encodeFrame({
          op: ShimOp.DIFF,
          id: 0,
          payload: encodeDiff(3, [{ offset: 4094, bytes: new Uint8Array(4).fill(1) }]),
        }),
      )
      expectRefused(await c.next((f) => f.op === ShimOp.DIFF), 'EINVAL', /range past region 3/)
      await stillServing()
    })
  })
})

describe('diffRanges', () => {
  it('finds exact byte ranges and updates the shadow', () => {
    const live = new Uint8Array(64)
    const shadow = new Uint8Array(64)
    live[3] = 1
    live.fill(7, 10, 21)
    live[63] = 9
    const ranges = diffRanges(live, shadow)
    expect(ranges.map((r) => [r.offset, r.bytes.byteLength])).toEqual([
      [3, 1],
      [10, 11],
      [63, 1],
    ])
    expect(shadow).toEqual(live)
    expect(diffRanges(live, shadow)).toEqual([])
  })

  it('agrees with a byte-by-byte comparison (a property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        (a, b) => {
          const len = Math.min(a.length, b.length) & ~3
          const live = a.slice(0, len)
          const shadow = b.slice(0, len)
          const before = shadow.slice()
          for (const r of diffRanges(live, shadow)) {
            for (let i = 0; i < r.bytes.length; i++)
              expect(before[r.offset + i]).not.toBe(r.bytes[i])
          }
          expect(shadow).toEqual(live)
        },
      ),
    )
  })
})

describe('SimServer.listen', () => {
  it('replaces a stale socket, refuses a file or a path something serves, removes its socket on close', async () => {
    const path = join(dir, 'stale.sock')
    writeFileSync(path, '')
    await expect(SimServer.listen(path, { platform: createSimPlatform() })).rejects.toThrow(
      /exists and is not a socket/,
    )
    rmSync(path)
    // A server killed outright leaves its socket file behind.
    spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ])
    expect(statSync(path).isSocket()).toBe(true)
    const first = await SimServer.listen(path, { platform: createSimPlatform() })
    expect(statSync(path).mode & 0o777).toBe(0o600)
    await expect(SimServer.listen(path, { platform: createSimPlatform() })).rejects.toThrow(
      /already serves/,
    )
    await first.close()
    expect(existsSync(path)).toBe(false)
  })
})

describe('hsmctl sim serve (the built CLI)', () => {
  it('serves on --socket, refuses garbage and keeps serving, stops on SIGTERM', async () => {
    const path = join(dir, 'cli.sock')
    const child = spawn(
      process.execPath,
      [join(ROOT, 'bin', 'run.js'), 'sim', 'serve', '--socket', path],
      {
        env: { ...process.env, NODE_ENV: undefined, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => resolve(code)),
    )
    const deadline = Date.now() + 20_000
    while (!stderr.includes('serving a simulated platform') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50))
    }
    expect(stderr).toContain(`serving a simulated platform on ${path}`)
    expect(stderr).toMatch(/LD_PRELOAD=.*libhsm-shim\.so HSM_SHIM_SOCKET=/)
    const client = await RawClient.connect(path)
    client.send(new Uint8Array(100).fill(0x5a))
    client.send(encodeFrame({ op: Op.HELLO, id: 1 }))
    expect((await client.next((f) => f.op === Op.PROTOCOL_ERROR)).errno).toBe(E('EPROTO'))
    expect((await client.next((f) => f.id === 1)).result).toBe(0n)
    const open = await client.call({ op: Op.OPEN, id: 2, payload: encodeOpen('/dev/acrn_hsm') })
    expect(open.result).toBeGreaterThanOrEqual(3n)
    client.end()
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(existsSync(path)).toBe(false)
  }, 60_000)
})
