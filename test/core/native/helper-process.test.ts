// NativeProcess (the HsmProcess over hsm-helper) against the real helper. /dev/null
// stands in for /dev/acrn_hsm: opening it works and every ioctl that passes the helper's
// checks gets the kernel's ENOTTY, so the errno mapping of both kinds of failure shows.
// The test build of the helper (test_wait) proves out-of-order replies without a device.

import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { errnoByCode } from '../../../src/core/abi/errno.js'
import { Ioctl } from '../../../src/core/abi/ioctls.js'
import { DaemonUnreachableError, HsmError } from '../../../src/core/errors.js'
import { NativeProcess } from '../../../src/core/native/helper-process.js'
import {
  decodeU64,
  encodeFd,
  FEATURE_TESTING,
  FLAG_REFUSED,
  MAX_PAYLOAD,
  Op,
} from '../../../src/core/native/protocol.js'
import { buildHelper, FAKE_DEVICE, HELPER, HELPER_TESTING, helperUnavailable } from './support.js'

const E = (code: string) => errnoByCode(code)!.errno
const PAGE = 4096n

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p
  } catch (e) {
    return e as Error
  }
  throw new Error('expected a rejection')
}

async function expectHsmError(
  p: Promise<unknown>,
  request: string,
  code: string,
  detail?: RegExp,
): Promise<HsmError> {
  const e = await rejection(p)
  expect(e).toBeInstanceOf(HsmError)
  const err = e as HsmError
  expect(err.request).toBe(request)
  expect(err.code).toBe(code)
  expect(err.errno).toBe(E(code))
  if (detail) expect(err.message).toMatch(detail)
  else expect(err.message).not.toMatch(/refused by hsm-helper/)
  return err
}

describe.skipIf(helperUnavailable)('NativeProcess over hsm-helper', () => {
  const started: NativeProcess[] = []
  async function start(options: Parameters<typeof NativeProcess.start>[0] = {}) {
    const proc = await NativeProcess.start({ device: FAKE_DEVICE, helper: HELPER, ...options })
    started.push(proc)
    return proc
  }

  beforeAll(() => buildHelper(), 120_000)
  afterEach(async () => {
    for (const p of started.splice(0)) await p.kill()
  })

  describe('start', () => {
    it('greets the helper: its pid, device and features', async () => {
      const proc = await start()
      expect(proc.hello.device).toBe(FAKE_DEVICE)
      expect(proc.hello.maxPayload).toBe(MAX_PAYLOAD)
      expect(proc.hello.features & FEATURE_TESTING).toBe(0)
      expect(proc.pid).toBeGreaterThan(0)
      expect(proc.pid).not.toBe(process.pid)
    })

    it('says when the helper is not built (preflight)', async () => {
      const e = await rejection(
        NativeProcess.start({ device: FAKE_DEVICE, helper: '/nonexistent/hsm-helper' }),
      )
      expect(e).toBeInstanceOf(DaemonUnreachableError)
      expect(e.message).toMatch(/hsm-helper is not built: \/nonexistent\/hsm-helper does not exist/)
      expect((e as DaemonUnreachableError).hint).toMatch(/npm run build.*make -C/)
    })

    it('says when the device is missing (preflight)', async () => {
      const e = await rejection(
        NativeProcess.start({ device: '/nonexistent/acrn_hsm', helper: HELPER }),
      )
      expect(e).toBeInstanceOf(DaemonUnreachableError)
      expect(e.message).toBe('/nonexistent/acrn_hsm does not exist')
      expect((e as DaemonUnreachableError).hint).toMatch(/ACRN Service VM.*CONFIG_ACRN_HSM/)
    })

    it('says when the program does not speak the protocol', async () => {
      const e = await rejection(NativeProcess.start({ device: FAKE_DEVICE, helper: '/bin/true' }))
      expect(e).toBeInstanceOf(DaemonUnreachableError)
      expect(e.message).toMatch(
        /hsm-helper \(\/bin\/true\) ended: exit status 0; 1 call had no reply/,
      )
    })
  })

  describe('open and close', () => {
    it('open of a missing device path rejects with ENOENT and says what to check', async () => {
      const proc = await start({ device: '/nonexistent/acrn_hsm', checkDevice: false })
      const e = await expectHsmError(proc.open('/nonexistent/acrn_hsm'), 'open', 'ENOENT')
      expect(e.hint).toMatch(/Is this the ACRN Service VM\? Is the HSM module loaded/)
    })

    it('opens its device only', async () => {
      const proc = await start()
      const fd = await proc.open(FAKE_DEVICE)
      expect(fd).toBeGreaterThan(2)
      await expectHsmError(
        proc.open('/etc/passwd'),
        'open',
        'EACCES',
        /refused by hsm-helper: hsm-helper opens only \/dev\/null/,
      )
      await proc.close(fd)
      await expectHsmError(proc.close(fd), 'close', 'EBADF', /was not opened through hsm-helper/)
    })
  })

  describe('memory', () => {
    it('mmap gives zeroed page-aligned memory that read and write reach', async () => {
      const proc = await start()
      const a = await proc.mmap(10_000)
      expect(a % PAGE).toBe(0n)
      expect(await proc.read(a, 16)).toEqual(new Uint8Array(16))
      await proc.write(a + 4090n, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))
      expect([...(await proc.read(a + 4088n, 12))]).toEqual([0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0])
      // The mapping is rounded up to whole pages (12288 bytes), as the kernel maps it.
      await proc.write(a + 12_287n, new Uint8Array([9]))
      await expectHsmError(
        proc.read(a + 12_287n, 2),
        'read',
        'EFAULT',
        /outside hsm-helper's mappings/,
      )
      await expectHsmError(proc.write(a - 1n, new Uint8Array(1)), 'write', 'EFAULT', /outside/)
      await expectHsmError(proc.mmap(0), 'mmap', 'EINVAL')
    })

    it('munmap takes pages out of a mapping, only of its own mappings, and what is left stays', async () => {
      const proc = await start()
      const a = await proc.mmap(3 * 4096)
      await proc.write(a, new Uint8Array(3 * 4096).fill(7))
      await proc.munmap(a + 4096n, 1) // the middle page: the mapping is cut in two
      await expectHsmError(proc.read(a + 4096n, 1), 'read', 'EFAULT', /outside/)
      expect([...(await proc.read(a + 4095n, 1)), ...(await proc.read(a + 8192n, 1))]).toEqual([
        7, 7,
      ])
      await expectHsmError(proc.read(a, 4097), 'read', 'EFAULT', /outside/)
      await expectHsmError(
        proc.munmap(a + 4096n, 4096),
        'munmap',
        'EFAULT',
        /not inside one of hsm-helper's mappings/,
      )
      await expectHsmError(proc.munmap(a + 1n, 4096), 'munmap', 'EINVAL', /page-aligned/)
      await expectHsmError(proc.munmap(a, 0), 'munmap', 'EINVAL')
      await proc.munmap(a, 4096)
      await proc.munmap(a + 8192n, 4096)
      await expectHsmError(proc.read(a + 8192n, 1), 'read', 'EFAULT', /outside/)
      // Mapping and unmapping 64 MiB many times over: the helper's address space does not grow.
      const vmSize = () =>
        Number(/VmSize:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))![1])
      const before = vmSize()
      for (let i = 0; i < 32; i++) {
        const big = await proc.mmap(64 << 20)
        await proc.write(big + BigInt((64 << 20) - 1), Uint8Array.of(1))
        await proc.munmap(big, 64 << 20)
      }
      expect(vmSize() - before).toBeLessThan(64 << 10) // in kB: less than one of them
    })

    it('copies more than a frame in pipelined pieces', async () => {
      const proc = await start()
      const size = 3 * MAX_PAYLOAD + 12_345
      const data = new Uint8Array(size).map((_, i) => (i * 31 + (i >> 16)) & 0xff)
      const a = await proc.mmap(size)
      await proc.write(a, data)
      const back = await proc.read(a, size)
      expect(Buffer.compare(Buffer.from(back), Buffer.from(data))).toBe(0)
      const mid = await proc.read(a + BigInt(MAX_PAYLOAD - 3), 6)
      expect(mid).toEqual(data.subarray(MAX_PAYLOAD - 3, MAX_PAYLOAD + 3))
    })
  })

  describe('eventfd', () => {
    it('creates, reads (EAGAIN when zero), writes and closes', async () => {
      const proc = await start()
      const fd = await proc.eventfd(5)
      expect(await proc.eventfdRead(fd)).toBe(5n)
      await expectHsmError(proc.eventfdRead(fd), 'read', 'EAGAIN')
      await proc.eventfdWrite(fd, 3)
      await proc.eventfdWrite(fd, 4n)
      expect(await proc.eventfdRead(fd)).toBe(7n)
      // The kernel refuses 2^64-1 (EINVAL); a negative value is a caller bug.
      await expectHsmError(proc.eventfdWrite(fd, 0xffff_ffff_ffff_ffffn), 'write', 'EINVAL')
      await expect(proc.eventfdWrite(fd, -1n)).rejects.toThrow(RangeError)
      await expectHsmError(proc.eventfd(-1), 'eventfd', 'EINVAL')
      await proc.close(fd)
      await expectHsmError(proc.eventfdRead(fd), 'read', 'EBADF', /was not opened/)
    })

    it('reading an HSM fd as an eventfd gets the kernel answer', async () => {
      const proc = await start()
      const fd = await proc.open(FAKE_DEVICE)
      // read(2) of /dev/null returns 0 bytes: the helper reports EIO for a short read.
      await expectHsmError(proc.eventfdRead(fd), 'read', 'EIO')
    })
  })

  describe('ioctl', () => {
    it('names the ioctl in kernel errors and in refusals', async () => {
      const proc = await start()
      const fd = await proc.open(FAKE_DEVICE)
      const ring = await proc.mmap(4096)
      const creation = new Uint8Array(48)
      new DataView(creation.buffer).setBigUint64(32, ring, true)
      await expectHsmError(proc.ioctl(fd, Ioctl.CREATE_VM, creation), 'CREATE_VM', 'ENOTTY')
      await expectHsmError(
        proc.ioctl(fd, 0xa2ff),
        '0x0000a2ff',
        'ENOTTY',
        /refused by hsm-helper: ioctl: 0x0000a2ff/,
      )
      await expectHsmError(
        proc.ioctl(fd, Ioctl.PM_GET_CPU_STATE, new Uint8Array(8)),
        'PM_GET_CPU_STATE',
        'EFAULT',
        /PM_GET_CPU_STATE reads or writes 48 bytes through its pointer; the argument has 8/,
      )
      await expectHsmError(
        proc.ioctl(fd, Ioctl.SET_VCPU_REGS),
        'SET_VCPU_REGS',
        'EFAULT',
        /NULL struct pointer/,
      )
      await expectHsmError(proc.ioctl(-5, Ioctl.START_VM), 'START_VM', 'EBADF', /fd -5/)
    })

    it('sends each argument the way the ioctl takes it', async () => {
      const proc = await start()
      const fd = await proc.open(FAKE_DEVICE)
      const mem = await proc.mmap(8192)
      // _IO: the kernel ignores the argument (the sample passes the vmid), so it is dropped.
      await expectHsmError(proc.ioctl(fd, Ioctl.START_VM, 3n), 'START_VM', 'ENOTTY')
      // A value ioctl takes a bigint (or nothing: 0), never a buffer.
      await expectHsmError(proc.ioctl(fd, Ioctl.SET_IRQLINE, 1n << 32n), 'SET_IRQLINE', 'ENOTTY')
      await expectHsmError(proc.ioctl(fd, Ioctl.SET_IRQLINE), 'SET_IRQLINE', 'ENOTTY')
      await expect(proc.ioctl(fd, Ioctl.SET_IRQLINE, new Uint8Array(8))).rejects.toThrow(TypeError)
      // A struct ioctl given a bigint: an address in the helper's memory (a pointer).
      await expectHsmError(proc.ioctl(fd, Ioctl.SET_VCPU_REGS, mem), 'SET_VCPU_REGS', 'ENOTTY')
      await expectHsmError(
        proc.ioctl(fd, Ioctl.SET_VCPU_REGS, mem + 8000n),
        'SET_VCPU_REGS',
        'EFAULT',
        /outside hsm-helper's mappings/,
      )
      // SET_MEMSEG of RAM outside the helper's memory never reaches the kernel (§3.4).
      const memmap = new Uint8Array(32)
      new DataView(memmap.buffer).setBigUint64(16, 0x1000n, true)
      new DataView(memmap.buffer).setBigUint64(24, PAGE, true)
      await expectHsmError(
        proc.ioctl(fd, Ioctl.SET_MEMSEG, memmap),
        'SET_MEMSEG',
        'EFAULT',
        /vma_base 0x1000/,
      )
    })
  })

  describe('pipelining (PROTOCOL.md, "Ordering")', () => {
    it('resolves hundreds of calls in flight, each with its own reply', async () => {
      const proc = await start()
      const a = await proc.mmap(4096)
      const n = 400
      const writes = Array.from({ length: n }, (_, i) =>
        proc.write(a + BigInt(i * 8), new Uint8Array([i & 0xff, i >> 8])),
      )
      const fds = Array.from({ length: 20 }, (_, i) => proc.eventfd(i))
      expect(proc.inFlight).toBe(n + 20)
      await Promise.all(writes)
      const reads = await Promise.all(
        Array.from({ length: n }, (_, i) => proc.read(a + BigInt(i * 8), 2)),
      )
      reads.forEach((r, i) => expect([...r]).toEqual([i & 0xff, i >> 8]))
      const opened = await Promise.all(fds)
      expect(new Set(opened).size).toBe(20)
      const values = await Promise.all(opened.map((fd) => proc.eventfdRead(fd).catch(() => 0n)))
      expect(values).toEqual(Array.from({ length: 20 }, (_, i) => BigInt(i)))
      expect(proc.inFlight).toBe(0)
    })
  })

  describe('out-of-order completion (test build, test_wait)', () => {
    async function startTesting() {
      const proc = await start({ helper: HELPER_TESTING })
      expect(proc.hello.features & FEATURE_TESTING).toBe(FEATURE_TESTING)
      return proc
    }

    it('a blocked call does not hold up the calls sent after it', async () => {
      const proc = await startTesting()
      const efd = await proc.eventfd(0)
      const hsm = await proc.open(FAKE_DEVICE)
      const order: string[] = []
      const wait = proc.call(Op.TEST_WAIT, encodeFd(efd)).then((r) => {
        order.push('test_wait')
        return r
      })
      wait.catch(() => {}) // if an expectation below fails, afterEach kills the helper
      const later = [
        proc.mmap(4096).then(() => order.push('mmap')),
        proc.eventfd(1).then(() => order.push('eventfd')),
        // ATTACH takes the same blocking path; on /dev/null the kernel answers at once.
        proc
          .ioctl(hsm, Ioctl.ATTACH_IOREQ_CLIENT)
          .catch((e: HsmError) => order.push(`attach ${e.code}`)),
      ]
      await Promise.all(later)
      await new Promise((resolve) => setTimeout(resolve, 50))
      // Those three may come back in any order among themselves (ATTACH replies from its
      // thread, the others from the main thread's batch); test_wait is not among them.
      expect([...order].sort()).toEqual(['attach ENOTTY', 'eventfd', 'mmap'])
      expect(proc.inFlight).toBe(1)
      await proc.eventfdWrite(efd, 42n)
      const reply = await wait
      expect(reply.result).toBe(0n)
      expect(decodeU64('test_wait', reply.payload)).toBe(42n)
      expect(order.at(-1)).toBe('test_wait')
    })

    it('refuses a 65th blocking call with EAGAIN, then serves them all', async () => {
      const proc = await startTesting()
      const fds = await Promise.all(Array.from({ length: 64 }, () => proc.eventfd(0)))
      const waits = fds.map((fd) => proc.call(Op.TEST_WAIT, encodeFd(fd)))
      const spare = await proc.eventfd(0)
      // Whether the 64 threads have started or not, the limit counts them.
      const extra = await proc.call(Op.TEST_WAIT, encodeFd(spare))
      expect(extra.flags & FLAG_REFUSED).toBe(FLAG_REFUSED)
      expect(extra.errno).toBe(E('EAGAIN'))
      await Promise.all(fds.map((fd, i) => proc.eventfdWrite(fd, i + 1)))
      const values = (await Promise.all(waits)).map((r) => decodeU64('test_wait', r.payload))
      expect(values).toEqual(fds.map((_, i) => BigInt(i + 1)))
      // The threads are gone again: a new blocking call is accepted.
      const again = proc.call(Op.TEST_WAIT, encodeFd(spare))
      await proc.eventfdWrite(spare, 9)
      expect(decodeU64('test_wait', (await again).payload)).toBe(9n)
    })

    it('exits on EOF while a call is blocked, failing that call', async () => {
      const proc = await startTesting()
      const efd = await proc.eventfd(0)
      const wait = proc.call(Op.TEST_WAIT, encodeFd(efd))
      await proc.mmap(4096) // the wait is in flight on its thread by now
      expect(await proc.exit()).toBe(0)
      const e = await rejection(wait)
      expect(e).toBeInstanceOf(DaemonUnreachableError)
      expect(e.message).toMatch(/ended: exit status 0; 1 call had no reply/)
    })
  })

  describe('when the helper ends', () => {
    it('rejects every pending and later call with a clear error', async () => {
      const proc = await start({ helper: HELPER_TESTING })
      const efd = await proc.eventfd(0)
      const pending = [
        proc.call(Op.TEST_WAIT, encodeFd(efd)),
        proc.call(Op.TEST_WAIT, encodeFd(efd)),
      ]
      await proc.mmap(4096)
      process.kill(proc.pid, 'SIGKILL')
      for (const p of pending) {
        const e = await rejection(p)
        expect(e).toBeInstanceOf(DaemonUnreachableError)
        expect(e.message).toMatch(
          /hsm-helper \(.*hsm-helper-testing\) ended: killed by SIGKILL; 2 calls had no reply/,
        )
      }
      const later = await rejection(proc.mmap(4096))
      expect(later).toBeInstanceOf(DaemonUnreachableError)
      expect(later.message).toMatch(/killed by SIGKILL/)
    })

    it('exit() ends it cleanly (status 0), and later calls reject', async () => {
      const proc = await start()
      await proc.open(FAKE_DEVICE)
      expect(await proc.exit()).toBe(0)
      const e = await rejection(proc.eventfd(0))
      expect(e).toBeInstanceOf(DaemonUnreachableError)
      expect(e.message).toMatch(/ended: exit status 0/)
    })
  })
})

// A stand-in helper, for what the real one cannot show without a device: a read-back
// ioctl that changes the caller's bytes, and a helper that stops speaking the protocol.
// It is plain JavaScript with its own frame code, so it also checks the codec from outside.
const FAKE_HELPER = `#!/usr/bin/env node
function fnv(b) { let x = 0x811c9dc5; for (let i = 0; i < 28; i++) x = Math.imul(x ^ b[i], 0x01000193) >>> 0; return x }
function frame(op, id, result, errno, payload) {
  const f = Buffer.alloc(32 + payload.length)
  f.write('HSMP', 0, 'latin1'); f[4] = 1; f.writeUInt16LE(op, 6); f.writeUInt32LE(id, 8)
  f.writeUInt32LE(payload.length, 12); f.writeBigInt64LE(result, 16); f.writeInt32LE(errno, 24)
  f.writeUInt32LE(fnv(f), 28); payload.copy(f, 32); return f
}
let buf = Buffer.alloc(0)
process.stdin.on('data', (c) => {
  buf = Buffer.concat([buf, c])
  while (buf.length >= 32 && buf.length >= 32 + buf.readUInt32LE(12)) {
    const op = buf.readUInt16LE(6), id = buf.readUInt32LE(8), len = buf.readUInt32LE(12)
    if (fnv(buf) !== buf.readUInt32LE(28)) process.exit(9)
    const payload = buf.subarray(32, 32 + len)
    buf = buf.subarray(32 + len)
    if (op === 0 && process.argv.includes('/refuse-hello')) {
      process.stdout.write(frame(0, id, -1n, 71, Buffer.from('protocol version 1; this hsm-helper speaks 2')))
    } else if (op === 0) {
      const hello = Buffer.alloc(16); hello.writeUInt32LE(1 << 20, 0); hello.writeUInt32LE(process.pid, 4)
      process.stdout.write(frame(0, id, 0n, 0, hello))
    } else if (op === 3) {
      // CREATE_VM: the "hypervisor" fills in vmid 7 and vcpu_num 2 (§2.2 step 7).
      const arg = Buffer.from(payload.subarray(24)); arg.writeUInt16LE(7, 0); arg.writeUInt16LE(2, 4)
      process.stdout.write(frame(3, id, 0n, 0, arg))
    } else if (op === 4) {
      process.stdout.write(Buffer.from('this is not a frame header, not at all'))
    } else {
      process.stdout.write(frame(op, id, -1n, 38, Buffer.alloc(0)))
    }
  }
})
`

describe('NativeProcess against a stand-in helper', () => {
  let dir: string
  let fake: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'hsm-fake-helper-'))
    fake = join(dir, 'fake-helper.js')
    writeFileSync(fake, FAKE_HELPER)
    chmodSync(fake, 0o755)
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('refuses to start when the helper does not answer hello (another version)', async () => {
    const e = await rejection(
      NativeProcess.start({ device: '/refuse-hello', helper: fake, checkDevice: false }),
    )
    expect(e).toBeInstanceOf(DaemonUnreachableError)
    expect(e.message).toBe(
      `${fake} did not greet hsmctl: protocol version 1; this hsm-helper speaks 2`,
    )
    expect((e as DaemonUnreachableError).hint).toMatch(/speaks protocol version 1: npm run build/)
  })

  it('updates a read-back ioctl argument in place (CREATE_VM)', async () => {
    const proc = await NativeProcess.start({ device: FAKE_DEVICE, helper: fake })
    try {
      const creation = new Uint8Array(48)
      expect(await proc.ioctl(3, Ioctl.CREATE_VM, creation)).toBe(0)
      const v = new DataView(creation.buffer)
      expect(v.getUint16(0, true)).toBe(7)
      expect(v.getUint16(4, true)).toBe(2)
    } finally {
      await proc.kill()
    }
  })

  it('fails every pending call when the helper stops speaking the protocol', async () => {
    const proc = await NativeProcess.start({ device: FAKE_DEVICE, helper: fake })
    const other = proc.eventfd(0)
    other.catch(() => {}) // it settles before the expectation below is attached
    const e = await rejection(proc.mmap(4096))
    expect(e).toBeInstanceOf(DaemonUnreachableError)
    expect(e.message).toBe('hsm-helper sent bytes that are not a frame')
    // The eventfd reply came first (ENOSYS from the stand-in); later calls all fail.
    await expect(other).rejects.toThrow(HsmError)
    await expect(proc.eventfd(0)).rejects.toThrow(DaemonUnreachableError)
    await proc.kill()
  })
})
