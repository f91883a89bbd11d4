// hsm-helper fed raw frames, good and bad (helper/PROTOCOL.md, "Validation" and "Bad
// input"). Each bad frame must be refused with its documented errno and message, and a
// good call right after it must still work. /dev/null stands in for the device: the
// helper opens it like /dev/acrn_hsm, and every ioctl that passes validation reaches the
// kernel, which answers ENOTTY (so "accepted" is visible as the kernel's answer).

import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { errnoByCode } from '../../../src/core/abi/errno.js'
import { ioc, Ioctl, IOCTLS } from '../../../src/core/abi/ioctls.js'
import {
  ArgKind,
  type ArgKindCode,
  decodeMessage,
  decodeU64,
  encodeEventfd,
  encodeFd,
  encodeFrame,
  encodeIoctl,
  encodeMmap,
  encodeMunmap,
  encodeOpen,
  encodeRead,
  encodeWrite,
  FLAG_REFUSED,
  type Frame,
  type FrameInit,
  HEADER_SIZE,
  MAX_PAYLOAD,
  Op,
} from '../../../src/core/native/protocol.js'
import {
  available,
  buildHelper,
  FAKE_DEVICE,
  HELPER,
  helperUnavailable,
  RawHelper,
  expectRefused,
} from './support.js'

const E = (code: string) => errnoByCode(code)!.errno
const PAGE = 4096n

function ioctlPayload(
  fd: number,
  request: number,
  kind: ArgKindCode,
  value = 0n,
  bytes: Uint8Array = new Uint8Array(0),
): Uint8Array {
  return encodeIoctl({ fd, request, kind, value, bytes })
}

/** Little-endian field writes into a struct buffer. */
function struct(size: number, fields: Array<[offset: number, bits: 32 | 64, value: bigint]>) {
  const b = new Uint8Array(size)
  const v = new DataView(b.buffer)
  for (const [offset, bits, value] of fields) {
    if (bits === 32) v.setUint32(offset, Number(value), true)
    else v.setBigUint64(offset, value, true)
  }
  return b
}

// acrn_vm_creation.ioreq_buf @32 (§10.3); acrn_vm_memmap type @0, vma_base @16, len @24 (§3.1)
const createVm = (ioreqBuf: bigint, size = 48) => struct(size, [[32, 64, ioreqBuf]])
const memseg = (type: number, vmaBase: bigint, len: bigint) =>
  struct(32, [
    [0, 32, BigInt(type)],
    [16, 64, vmaBase],
    [24, 64, len],
  ])

/** Passed validation: the kernel answered (ENOTTY from /dev/null), not the helper. */
function expectKernelAnswer(frame: Frame): void {
  expect(frame.flags, decodeMessage(frame.payload)).toBe(0)
  expect(frame.result).toBe(-1n)
  expect(frame.errno).toBe(E('ENOTTY'))
}

describe.skipIf(helperUnavailable)('hsm-helper with raw frames', () => {
  let h: RawHelper
  let id: number
  let hsmFd: number
  let mapping: bigint // two pages

  beforeAll(() => buildHelper(), 120_000)

  beforeEach(async () => {
    h = new RawHelper(HELPER, FAKE_DEVICE)
    id = 100
    const open = await h.call(Op.OPEN, id++, encodeOpen(FAKE_DEVICE))
    expect(open.result).toBeGreaterThan(2n)
    hsmFd = Number(open.result)
    mapping = (await h.call(Op.MMAP, id++, encodeMmap(2n * PAGE))).result
    expect(mapping % PAGE).toBe(0n)
  })

  afterEach(() => h.kill())

  async function send(init: Omit<FrameInit, 'id'>): Promise<Frame> {
    const n = id++
    h.frame({ ...init, id: n })
    return h.reply(n)
  }

  const ioctl = (request: number, kind: ArgKindCode, value?: bigint, bytes?: Uint8Array) =>
    send({ op: Op.IOCTL, payload: ioctlPayload(hsmFd, request, kind, value, bytes) })

  /** A good call after a bad one: the helper kept serving, and its state is intact. */
  async function stillServing(): Promise<void> {
    const w = await send({ op: Op.WRITE, payload: encodeWrite(mapping, new Uint8Array([7, 8])) })
    expect(w.result).toBe(0n)
    const r = await send({ op: Op.READ, payload: encodeRead(mapping, 2) })
    expect([...r.payload]).toEqual([7, 8])
    expect(h.child.exitCode).toBeNull()
  }

  describe('refused frames (PROTOCOL.md, "Validation")', () => {
    // [what, frame, errno, message]; each is followed by a good call.
    type Case = [string, () => Omit<FrameInit, 'id'>, string, RegExp]
    const cases: Case[] = [
      [
        'payload too short for its op (truncated mmap)',
        () => ({ op: Op.MMAP, payload: new Uint8Array(4) }),
        'EINVAL',
        /mmap payload is 4 bytes, expected 8/,
      ],
      [
        'ioctl payload shorter than its fixed part',
        () => ({ op: Op.IOCTL, payload: new Uint8Array(20) }),
        'EINVAL',
        /shorter than its 24-byte fixed part/,
      ],
      ['unknown op', () => ({ op: 0x1234 }), 'ENOSYS', /unknown op 4660/],
      [
        'the test-only op in the production binary',
        () => ({ op: Op.TEST_WAIT, payload: encodeFd(3) }),
        'ENOSYS',
        /unknown op 32512/,
      ],
      ['another protocol version', () => ({ op: Op.HELLO, version: 2 }), 'EPROTO', /version 2/],
      ['a request with flags set', () => ({ op: Op.HELLO, flags: 1 }), 'EPROTO', /zero flags/],
      [
        'reserved bytes not zero',
        () => ({ op: Op.CLOSE, payload: new Uint8Array([3, 0, 0, 0, 1, 0, 0, 0]) }),
        'EINVAL',
        /reserved bytes must be zero/,
      ],
      [
        'an unknown ioctl request',
        () => ({ op: Op.IOCTL, payload: ioctlPayload(hsmFd, 0xc030a2ff, ArgKind.NONE) }),
        'ENOTTY',
        /0xc030a2ff is not an ACRN_IOCTL_\* request/,
      ],
      [
        'a known ioctl number with another size (§1.6)',
        () => ({
          op: Op.IOCTL,
          payload: ioctlPayload(
            hsmFd,
            ioc(3, 0xa2, 0x10, 40),
            ArgKind.BUFFER,
            0n,
            createVm(mapping, 40),
          ),
        }),
        'ENOTTY',
        /0xc028a210 is not an ACRN_IOCTL_/,
      ],
      [
        'a known ioctl number with another direction',
        () => ({
          op: Op.IOCTL,
          payload: ioctlPayload(
            hsmFd,
            ioc(1, 0xa2, 0x10, 48),
            ArgKind.BUFFER,
            0n,
            createVm(mapping),
          ),
        }),
        'ENOTTY',
        /0x4030a210 is not/,
      ],
      [
        'a struct shorter than the kernel reads (CREATE_VM, 47 of 48 bytes)',
        () => ({
          op: Op.IOCTL,
          payload: ioctlPayload(hsmFd, Ioctl.CREATE_VM, ArgKind.BUFFER, 0n, new Uint8Array(47)),
        }),
        'EFAULT',
        /CREATE_VM reads or writes 48 bytes through its pointer; the argument has 47/,
      ],
      [
        'a PM_GET_CPU_STATE buffer of 8 bytes (it writes 48 back, §7.8)',
        () => ({
          op: Op.IOCTL,
          payload: ioctlPayload(
            hsmFd,
            Ioctl.PM_GET_CPU_STATE,
            ArgKind.BUFFER,
            0n,
            new Uint8Array(8),
          ),
        }),
        'EFAULT',
        /PM_GET_CPU_STATE reads or writes 48 bytes .* has 8/,
      ],
      [
        'a PM_GET_CPU_STATE buffer of 47 bytes',
        () => ({
          op: Op.IOCTL,
          payload: ioctlPayload(
            hsmFd,
            Ioctl.PM_GET_CPU_STATE,
            ArgKind.BUFFER,
            0n,
            new Uint8Array(47),
          ),
        }),
        'EFAULT',
        /has 47/,
      ],
      [
        'a value for a struct ioctl',
        () => ({ op: Op.IOCTL, payload: ioctlPayload(hsmFd, Ioctl.INJECT_MSI, ArgKind.VALUE, 5n) }),
        'EINVAL',
        /INJECT_MSI takes a struct argument/,
      ],
      [
        'no argument for a struct ioctl (a NULL pointer)',
        () => ({ op: Op.IOCTL, payload: ioctlPayload(hsmFd, Ioctl.SET_VCPU_REGS, ArgKind.NONE) }),
        'EFAULT',
        /NULL struct pointer/,
      ],
      [
        'bytes for a value ioctl',
        () => ({
          op: Op.IOCTL,
          payload: ioctlPayload(hsmFd, Ioctl.SET_IRQLINE, ArgKind.BUFFER, 0n, new Uint8Array(8)),
        }),
        'EINVAL',
        /SET_IRQLINE takes a value argument/,
      ],
      [
        'a value for an _IO ioctl',
        () => ({ op: Op.IOCTL, payload: ioctlPayload(hsmFd, Ioctl.START_VM, ArgKind.VALUE, 1n) }),
        'EINVAL',
        /START_VM takes no argument/,
      ],
      [
        'bytes with a value argument',
        () => ({
          op: Op.IOCTL,
          payload: ioctlPayload(hsmFd, Ioctl.SET_IRQLINE, ArgKind.VALUE, 1n, new Uint8Array(4)),
        }),
        'EINVAL',
        /only a buffer argument carries bytes/,
      ],
      [
        'an unknown argument kind',
        () => ({ op: Op.IOCTL, payload: ioctlPayload(hsmFd, Ioctl.INJECT_MSI, 7 as ArgKindCode) }),
        'EINVAL',
        /INJECT_MSI takes a struct argument/,
      ],
      [
        'a pointer argument outside its mappings',
        () => ({
          op: Op.IOCTL,
          payload: ioctlPayload(hsmFd, Ioctl.SET_VCPU_REGS, ArgKind.POINTER, 0x1000n),
        }),
        'EFAULT',
        /SET_VCPU_REGS: 0x1000\.\.\+296 is outside hsm-helper's mappings/,
      ],
      [
        'a pointer argument running past the end of a mapping',
        () => ({
          op: Op.IOCTL,
          payload: ioctlPayload(
            hsmFd,
            Ioctl.SET_VCPU_REGS,
            ArgKind.POINTER,
            mapping + 2n * PAGE - 100n,
          ),
        }),
        'EFAULT',
        /outside hsm-helper's mappings/,
      ],
      [
        'CREATE_VM whose ioreq_buf is not the helper memory (§2.2)',
        () => ({
          op: Op.IOCTL,
          payload: ioctlPayload(hsmFd, Ioctl.CREATE_VM, ArgKind.BUFFER, 0n, createVm(0x7000_0000n)),
        }),
        'EINVAL',
        /CREATE_VM: ioreq_buf 0x70000000: the 4096 bytes the kernel pins/,
      ],
      [
        'SET_MEMSEG RAM whose vma_base is not the helper memory (§3.4)',
        () => ({
          op: Op.IOCTL,
          payload: ioctlPayload(
            hsmFd,
            Ioctl.SET_MEMSEG,
            ArgKind.BUFFER,
            0n,
            memseg(0, 0x10000n, PAGE),
          ),
        }),
        'EFAULT',
        /SET_MEMSEG: vma_base 0x10000/,
      ],
      [
        'SET_MEMSEG RAM longer than the mapping it starts in',
        () => ({
          op: Op.IOCTL,
          payload: ioctlPayload(
            hsmFd,
            Ioctl.SET_MEMSEG,
            ArgKind.BUFFER,
            0n,
            memseg(0, mapping, 3n * PAGE),
          ),
        }),
        'EFAULT',
        /the 12288 bytes the kernel pins/,
      ],
      [
        'VM_INTR_MONITOR whose page is not the helper memory (§7.3)',
        () => ({
          op: Op.IOCTL,
          payload: ioctlPayload(hsmFd, Ioctl.VM_INTR_MONITOR, ArgKind.VALUE, 0x5000n),
        }),
        'EFAULT',
        /VM_INTR_MONITOR: the monitor address 0x5000/,
      ],
      [
        'an ioctl on an fd it did not open (its stdout)',
        () => ({ op: Op.IOCTL, payload: ioctlPayload(1, Ioctl.START_VM, ArgKind.NONE) }),
        'EBADF',
        /START_VM: fd 1 was not opened through hsm-helper/,
      ],
      [
        'close of its own stdout',
        () => ({ op: Op.CLOSE, payload: encodeFd(1) }),
        'EBADF',
        /close: fd 1 was not opened/,
      ],
      [
        'eventfd_read of its stdin',
        () => ({ op: Op.EVENTFD_READ, payload: encodeFd(0) }),
        'EBADF',
        /fd 0 was not opened/,
      ],
      [
        'read outside its mappings',
        () => ({ op: Op.READ, payload: encodeRead(0x1000n, 16) }),
        'EFAULT',
        /read: 0x1000\.\.\+16 is outside hsm-helper's mappings/,
      ],
      [
        'read running past the end of a mapping',
        () => ({ op: Op.READ, payload: encodeRead(mapping + 2n * PAGE - 8n, 9) }),
        'EFAULT',
        /outside hsm-helper's mappings/,
      ],
      [
        'read of more than a frame carries',
        () => ({ op: Op.READ, payload: encodeRead(mapping, MAX_PAYLOAD + 1) }),
        'E2BIG',
        /more than a frame carries/,
      ],
      [
        'write outside its mappings',
        () => ({ op: Op.WRITE, payload: encodeWrite(mapping - 1n, new Uint8Array(2)) }),
        'EFAULT',
        /write: 0x[0-9a-f]+\.\.\+2 is outside/,
      ],
      [
        'open of another path',
        () => ({ op: Op.OPEN, payload: encodeOpen('/etc/passwd') }),
        'EACCES',
        /opens only \/dev\/null/,
      ],
      [
        'open of a path with a NUL',
        () => ({ op: Op.OPEN, payload: new Uint8Array([0x2f, 0, 0x78]) }),
        'EINVAL',
        /NUL/,
      ],
      [
        'mmap of length 0',
        () => ({ op: Op.MMAP, payload: encodeMmap(0n) }),
        'EINVAL',
        /not a usable size/,
      ],
      [
        "munmap of the helper's own stack (not one of its mappings)",
        () => ({ op: Op.MUNMAP, payload: encodeMunmap(0x7ffd_0000_0000n, 4096n) }),
        'EFAULT',
        /not inside one of hsm-helper's mappings/,
      ],
      [
        'munmap of an unaligned address',
        () => ({ op: Op.MUNMAP, payload: encodeMunmap(0x1001n, 4096n) }),
        'EINVAL',
        /page-aligned/,
      ],
      [
        'munmap payload of the wrong size',
        () => ({ op: Op.MUNMAP, payload: new Uint8Array(8) }),
        'EINVAL',
        /munmap payload is 8 bytes, expected 16/,
      ],
    ]

    it.each(cases)('%s', async (_what, frame, errno, message) => {
      expectRefused(await send(frame()), errno, message)
      await stillServing()
    })

    it('a request with id 0 (reserved for protocol errors)', async () => {
      h.frame({ op: Op.HELLO, id: 0 })
      expectRefused(await h.reply(0), 'EPROTO', /non-zero id/)
      await stillServing()
    })
  })

  describe('accepted frames reach the kernel', () => {
    it('PM_GET_CPU_STATE with 48 bytes, which come back (read-back ioctl)', async () => {
      const arg = new Uint8Array(48).map((_, i) => i + 1)
      const r = await ioctl(Ioctl.PM_GET_CPU_STATE, ArgKind.BUFFER, 0n, arg)
      expectKernelAnswer(r)
      expect(r.payload).toEqual(arg)
    })

    it('CREATE_VM with ioreq_buf inside a mapping, longer buffers included', async () => {
      const arg = createVm(mapping + PAGE + 123n, 64)
      const r = await ioctl(Ioctl.CREATE_VM, ArgKind.BUFFER, 0n, arg)
      expectKernelAnswer(r)
      expect(r.payload).toEqual(arg)
    })

    it('a write-only struct ioctl gets no bytes back', async () => {
      const r = await ioctl(Ioctl.INJECT_MSI, ArgKind.BUFFER, 0n, new Uint8Array(16))
      expectKernelAnswer(r)
      expect(r.payload.byteLength).toBe(0)
    })

    it('SET_MEMSEG: MMIO (a physical address), short RAM, and RAM filling its mapping', async () => {
      expectKernelAnswer(
        await ioctl(Ioctl.SET_MEMSEG, ArgKind.BUFFER, 0n, memseg(1, 0xfe00_0000n, PAGE)),
      )
      expectKernelAnswer(await ioctl(Ioctl.SET_MEMSEG, ArgKind.BUFFER, 0n, memseg(0, 0x10n, 100n)))
      expectKernelAnswer(
        await ioctl(Ioctl.SET_MEMSEG, ArgKind.BUFFER, 0n, memseg(0, mapping + 5n, 2n * PAGE)),
      )
    })

    it('VM_INTR_MONITOR inside a mapping, SET_IRQLINE, a pointer argument, _IO requests', async () => {
      expectKernelAnswer(await ioctl(Ioctl.VM_INTR_MONITOR, ArgKind.VALUE, mapping + 8n))
      expectKernelAnswer(await ioctl(Ioctl.SET_IRQLINE, ArgKind.VALUE, (1n << 32n) | 4n))
      expectKernelAnswer(
        await ioctl(Ioctl.SET_VCPU_REGS, ArgKind.POINTER, mapping + 2n * PAGE - 296n),
      )
      expectKernelAnswer(await ioctl(Ioctl.START_VM, ArgKind.NONE))
    })

    it('ATTACH_IOREQ_CLIENT runs on its own thread and replies with the kernel errno', async () => {
      expectKernelAnswer(await ioctl(Ioctl.ATTACH_IOREQ_CLIENT, ArgKind.NONE))
      await stillServing()
    })

    it('read and write exactly up to the end of a mapping, and of zero bytes anywhere', async () => {
      const end = mapping + 2n * PAGE
      const w = await send({
        op: Op.WRITE,
        payload: encodeWrite(end - 3n, new Uint8Array([1, 2, 3])),
      })
      expect(w.result).toBe(0n)
      const r = await send({ op: Op.READ, payload: encodeRead(end - 4n, 4) })
      expect([...r.payload]).toEqual([0, 1, 2, 3])
      expect((await send({ op: Op.READ, payload: encodeRead(0n, 0) })).result).toBe(0n)
    })
  })

  describe('the stream (PROTOCOL.md, "Bad input")', () => {
    it('refuses an oversized frame with E2BIG, skips its payload and serves the next', async () => {
      const n = id++
      h.send(encodeFrame({ op: Op.WRITE, id: n, payload: new Uint8Array(MAX_PAYLOAD + 1) }))
      expectRefused(await h.reply(n), 'E2BIG', /1048577 bytes is over the 1048576-byte limit/)
      await stillServing()
    })

    it('reports garbage once (id 0, EPROTO), resynchronises and keeps serving', async () => {
      const garbage = new Uint8Array(1000).map((_, i) => (i * 7 + 1) & 0xff)
      h.send(garbage)
      await stillServing()
      const errors = h.frames.filter((f) => f.id === 0)
      expect(errors).toHaveLength(1)
      expect(errors[0]!.op).toBe(Op.PROTOCOL_ERROR)
      expectRefused(errors[0]!, 'EPROTO', /bad magic: not a frame header/)
    })

    it('skips a header whose check is wrong, even with the right magic', async () => {
      const bad = encodeFrame({ op: Op.CLOSE, id: 5000, payload: encodeFd(hsmFd) })
      bad[8] = bad[8]! ^ 1 // the id: now the check does not match
      h.send(bad.subarray(0, HEADER_SIZE))
      await stillServing()
      const errors = h.frames.filter((f) => f.id === 0)
      expect(errors).toHaveLength(1)
      expectRefused(errors[0]!, 'EPROTO', /bad header check/)
      // The close never ran: the fd still answers ioctls.
      expectKernelAnswer(await ioctl(Ioctl.START_VM, ArgKind.NONE))
    })

    it('answers pipelined requests in one write, each by its id', async () => {
      const ids = [907, 903, 905, 901]
      h.send(
        Buffer.concat([
          encodeFrame({ op: Op.EVENTFD, id: 907, payload: encodeEventfd(42) }),
          encodeFrame({ op: Op.READ, id: 903, payload: encodeRead(mapping, 4) }),
          encodeFrame({ op: Op.MMAP, id: 905, payload: encodeMmap(PAGE) }),
          encodeFrame({ op: Op.HELLO, id: 901 }),
        ]),
      )
      const [efd, read, mmap, hello] = await Promise.all(ids.map((n) => h.reply(n)))
      const value = await send({ op: Op.EVENTFD_READ, payload: encodeFd(Number(efd!.result)) })
      expect(decodeU64('eventfd_read', value.payload)).toBe(42n)
      expect(read!.payload).toEqual(new Uint8Array(4))
      expect(mmap!.result % PAGE).toBe(0n)
      expect(hello!.op).toBe(Op.HELLO)
    })
  })

  describe('any input (a property)', () => {
    it('answers every frame once, whatever it carries, through garbage, and stays up', async () => {
      const address = () =>
        fc.oneof(
          fc.bigInt({ min: 0n, max: 3n * PAGE }).map((o) => mapping - PAGE + o),
          fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        )
      const ioctlFrame = fc
        .record({
          fd: fc.constantFrom(hsmFd, 0, 1, 2, -1, 999),
          request: fc.oneof(fc.constantFrom(...IOCTLS.map((i) => i.request)), fc.nat()),
          kind: fc.integer({ min: 0, max: 5 }),
          value: address(),
          bytes: fc.uint8Array({ maxLength: 400 }),
        })
        .map((r) => ({
          op: Op.IOCTL as number,
          payload: ioctlPayload(r.fd, r.request, r.kind as ArgKindCode, r.value, r.bytes),
        }))
      const memoryFrame = fc.oneof(
        fc
          .tuple(address(), fc.nat({ max: 2 * MAX_PAYLOAD }))
          .map(([a, n]) => ({ op: Op.READ as number, payload: encodeRead(a, n) })),
        fc
          .tuple(address(), fc.uint8Array({ maxLength: 300 }))
          .map(([a, b]) => ({ op: Op.WRITE as number, payload: encodeWrite(a, b) })),
      )
      const anyFrame = fc.record({
        op: fc.oneof(fc.integer({ min: 0, max: 11 }), fc.integer({ min: 0, max: 0xffff })),
        payload: fc.uint8Array({ maxLength: 40 }),
      })
      // A leading 0 byte: never the start of a header.
      const garbage = fc.uint8Array({ maxLength: 80 }).map((b) => Uint8Array.of(0, ...b))
      const item = fc.oneof(
        { arbitrary: ioctlFrame, weight: 4 },
        { arbitrary: memoryFrame, weight: 2 },
        { arbitrary: anyFrame, weight: 2 },
        { arbitrary: garbage, weight: 1 },
      )
      await fc.assert(
        fc.asyncProperty(fc.array(item, { minLength: 1, maxLength: 12 }), async (items) => {
          const ids: number[] = []
          const parts = items.map((it) => {
            if (it instanceof Uint8Array) return it
            const n = id++
            ids.push(n)
            return encodeFrame({ ...it, id: n })
          })
          h.send(Buffer.concat(parts))
          for (const n of ids) {
            const r = await h.reply(n)
            // A failure carries an errno; a refusal also says why.
            if (r.result < 0n) expect(r.errno).toBeGreaterThan(0)
            if (r.flags & FLAG_REFUSED) expect(decodeMessage(r.payload).length).toBeGreaterThan(0)
          }
          await stillServing()
          h.frames.length = 0 // protocol errors for the garbage (id 0)
        }),
        { numRuns: 200 },
      )
    }, 60_000)
  })

  describe('lifetime (PROTOCOL.md, "Lifetime")', () => {
    it('on EOF answers everything sent and exits 0', async () => {
      for (let n = 0; n < 50; n++) h.frame({ op: Op.HELLO, id: 2000 + n })
      const exit = await h.end()
      expect(exit).toEqual({ code: 0, signal: null })
      expect(h.frames.filter((f) => f.id >= 2000).map((f) => f.id)).toEqual(
        Array.from({ length: 50 }, (_, n) => 2000 + n),
      )
      expect(h.stderr).toBe('')
    })

    it('on EOF inside a frame reports the truncated frame and exits 1', async () => {
      const frame = encodeFrame({
        op: Op.WRITE,
        id: 3000,
        payload: encodeWrite(mapping, new Uint8Array(64)),
      })
      h.send(frame.subarray(0, frame.byteLength - 10))
      const exit = await h.end()
      expect(exit.code).toBe(1)
      const errors = h.frames.filter((f) => f.id === 0)
      expect(errors).toHaveLength(1)
      expectRefused(errors[0]!, 'EPROTO', /input ended inside a frame \(94 bytes of it received\)/)
    })

    it.skipIf(!available('strace'))(
      'on EOF closes every fd it opened before it exits (seen with strace)',
      async () => {
        const dir = mkdtempSync(join(tmpdir(), 'hsm-helper-strace-'))
        const log = join(dir, 'trace')
        const traced = new RawHelper(HELPER, FAKE_DEVICE, [
          'strace',
          '-f',
          '-e',
          'trace=close,exit_group',
          '-o',
          log,
        ])
        try {
          const hsm = Number((await traced.call(Op.OPEN, 1, encodeOpen(FAKE_DEVICE))).result)
          const efd = Number((await traced.call(Op.EVENTFD, 2, encodeEventfd(0))).result)
          const other = Number((await traced.call(Op.OPEN, 3, encodeOpen(FAKE_DEVICE))).result)
          expect((await traced.call(Op.CLOSE, 4, encodeFd(other))).result).toBe(0n)
          expect((await traced.end()).code).toBe(0)
          const calls = readFileSync(log, 'utf8')
            .split('\n')
            .map((l) => l.replace(/^\d+\s+/, ''))
          const exitAt = calls.findIndex((l) => l.startsWith('exit_group(0)'))
          expect(exitAt).toBeGreaterThan(0)
          const closesBeforeExit = calls
            .slice(0, exitAt)
            .filter((l) => /^close\(\d+\)\s+= 0/.test(l))
          // Its own close of `other`, then one close each for the fds still open at EOF.
          const tail = closesBeforeExit.slice(-2).map((l) => Number(/close\((\d+)\)/.exec(l)![1]))
          expect(tail.sort()).toEqual([hsm, efd].sort())
        } finally {
          traced.kill()
          rmSync(dir, { recursive: true, force: true })
        }
      },
    )
  })
})
