// The frame codec (helper/PROTOCOL.md): header and payload round trips, the stream
// decoder under any chunking, resynchronisation, and the C twin's constants and ioctl
// table compared with the TypeScript ones.

import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { IOCTLS } from '../../../src/core/abi/ioctls.js'
import {
  ArgKind,
  decodeEventfd,
  decodeEventfdWrite,
  decodeFd,
  decodeHeader,
  decodeHello,
  decodeIoctl,
  decodeMessage,
  decodeMmap,
  decodeOpen,
  decodeRead,
  decodeU64,
  decodeWrite,
  encodeEventfd,
  encodeEventfdWrite,
  encodeFd,
  encodeFrame,
  encodeHello,
  encodeIoctl,
  encodeMessage,
  encodeMmap,
  encodeOpen,
  encodeRead,
  encodeU64,
  encodeWrite,
  FEATURE_TESTING,
  FLAG_REFUSED,
  type Frame,
  FrameDecoder,
  FrameError,
  HEADER_SIZE,
  headerCheck,
  MAGIC,
  MAX_PATH,
  MAX_PAYLOAD,
  Op,
  opName,
  PayloadSize,
  VERSION,
} from '../../../src/core/native/protocol.js'
import { helperUnavailable, ROOT } from './support.js'

const u8 = fc.integer({ min: 0, max: 0xff })
const u16 = fc.integer({ min: 0, max: 0xffff })
const u32 = fc.integer({ min: 0, max: 0xffff_ffff })
const i32 = fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff })
const i64 = fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n })
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })
const bytes = (maxLength = 64) => fc.uint8Array({ maxLength })

const frameArb = fc.record({
  version: u8,
  flags: u8,
  op: u16,
  id: u32,
  result: i64,
  errno: i32,
  payload: bytes(300),
})

function decodeAll(stream: Uint8Array, cuts: number[]) {
  const frames: Frame[] = []
  const garbage: string[] = []
  const oversize: number[] = []
  const d = new FrameDecoder({
    frame: (f) => frames.push(f),
    garbage: (s) => garbage.push(s),
    oversize: (h) => oversize.push(h.id),
  })
  let at = 0
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    d.push(stream.subarray(at, Math.max(at, cut)))
    at = Math.max(at, cut)
  }
  d.push(stream.subarray(at))
  return { frames, garbage, oversize, pending: d.pending }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}

describe('frame header (PROTOCOL.md, "Frames")', () => {
  it('round-trips every field', () => {
    fc.assert(
      fc.property(frameArb, (f) => {
        const bytes = encodeFrame(f)
        expect(bytes.byteLength).toBe(HEADER_SIZE + f.payload.byteLength)
        const h = decodeHeader(bytes)
        expect(h).toEqual({
          version: f.version,
          flags: f.flags,
          op: f.op,
          id: f.id,
          length: f.payload.byteLength,
          result: f.result,
          errno: f.errno,
        })
        expect(bytes.subarray(HEADER_SIZE)).toEqual(f.payload)
      }),
    )
  })

  it('is little-endian with the documented offsets', () => {
    const b = encodeFrame({ op: 0x0203, id: 0x04050607, result: -1n, errno: 22, flags: 1 })
    expect([...b.subarray(0, 4)]).toEqual([0x48, 0x53, 0x4d, 0x50]) // 'HSMP'
    expect(b[4]).toBe(VERSION)
    expect(b[5]).toBe(1)
    expect([...b.subarray(6, 8)]).toEqual([0x03, 0x02])
    expect([...b.subarray(8, 12)]).toEqual([0x07, 0x06, 0x05, 0x04])
    expect([...b.subarray(12, 16)]).toEqual([0, 0, 0, 0])
    expect([...b.subarray(16, 24)]).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    expect([...b.subarray(24, 28)]).toEqual([22, 0, 0, 0])
    const check = new DataView(b.buffer, b.byteOffset).getUint32(28, true)
    expect(check).toBe(headerCheck(b))
  })

  it('computes the check as FNV-1a over bytes 0..27', () => {
    // The check covers exactly bytes 0..27: byte 28 onwards does not change it.
    const buf = new Uint8Array(32)
    let x = 0x811c9dc5
    for (const c of buf.subarray(0, 28)) x = Math.imul(x ^ c, 0x01000193) >>> 0
    expect(headerCheck(buf)).toBe(x)
    const later = new Uint8Array(32)
    later[28] = 0x61
    expect(headerCheck(later)).toBe(headerCheck(buf))
    const first = new Uint8Array(32)
    first[0] = 0x61
    expect(headerCheck(first)).not.toBe(headerCheck(buf))
  })

  it('detects any single corrupted header byte', () => {
    fc.assert(
      fc.property(
        frameArb,
        fc.integer({ min: 0, max: 31 }),
        fc.integer({ min: 1, max: 255 }),
        (f, at, flip) => {
          const b = encodeFrame(f)
          b[at] = b[at]! ^ flip
          expect(typeof decodeHeader(b)).toBe('string')
        },
      ),
    )
  })
})

describe('FrameDecoder (the stream, as hsm-helper reads it)', () => {
  it('yields the same frames however the stream is cut', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { maxLength: 8 }),
        fc.array(fc.nat({ max: 4000 }), { maxLength: 12 }),
        (frames, cuts) => {
          const stream = concat(frames.map((f) => encodeFrame(f)))
          const got = decodeAll(stream, cuts)
          expect(got.garbage).toEqual([])
          expect(got.pending).toBe(0)
          expect(got.frames.map((f) => [f.id, f.op, f.result, f.errno, [...f.payload]])).toEqual(
            frames.map((f) => [f.id, f.op, f.result, f.errno, [...f.payload]]),
          )
        },
      ),
    )
  })

  it('reports a run of garbage once and resynchronises at the next valid header', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 200 }),
        fc.array(frameArb, { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat({ max: 2000 }), { maxLength: 6 }),
        (junk, frames, cuts) => {
          // Garbage that starts with a wrong byte so it can never parse as a header.
          const garbage = concat([new Uint8Array([0]), junk])
          const stream = concat([garbage, ...frames.map((f) => encodeFrame(f))])
          const got = decodeAll(stream, cuts)
          expect(got.garbage.length).toBe(1)
          expect(got.frames.map((f) => f.id)).toEqual(frames.map((f) => f.id))
        },
      ),
    )
  })

  it('skips a magic inside garbage whose header check is wrong', () => {
    const fake = encodeFrame({ op: 1, id: 99 })
    fake[28] = fake[28]! ^ 0xff
    const good = encodeFrame({ op: 4, id: 7, payload: encodeMmap(4096n) })
    const got = decodeAll(concat([fake, new Uint8Array([1, 2, 3]), good]), [])
    expect(got.garbage).toEqual(['bad-check'])
    expect(got.frames.map((f) => f.id)).toEqual([7])
  })

  it('skips the payload of an oversized frame and serves the next', () => {
    const big = encodeFrame({ op: Op.WRITE, id: 5, payload: new Uint8Array(MAX_PAYLOAD + 1) })
    const next = encodeFrame({ op: Op.HELLO, id: 6 })
    const got = decodeAll(concat([big, next]), [100, 70_000, MAX_PAYLOAD])
    expect(got.oversize).toEqual([5])
    expect(got.frames.map((f) => f.id)).toEqual([6])
  })

  it('keeps a partial frame pending', () => {
    const f = encodeFrame({ op: Op.OPEN, id: 1, payload: encodeOpen('/dev/acrn_hsm') })
    const got = decodeAll(f.subarray(0, f.byteLength - 1), [])
    expect(got.frames).toEqual([])
    expect(got.pending).toBe(f.byteLength - 1)
  })

  it('hands out payloads that do not share memory with the stream', () => {
    const frames: Frame[] = []
    const d = new FrameDecoder({ frame: (f) => frames.push(f) })
    const stream = Buffer.from(encodeFrame({ op: Op.READ, id: 1, payload: new Uint8Array([1, 2]) }))
    d.push(stream)
    stream.fill(0)
    expect([...frames[0]!.payload]).toEqual([1, 2])
    expect(Buffer.isBuffer(frames[0]!.payload)).toBe(false)
  })
})

describe('payloads (PROTOCOL.md, "Ops")', () => {
  it('ioctl round-trips', () => {
    fc.assert(
      fc.property(
        i32,
        u32,
        fc.constantFrom(ArgKind.NONE, ArgKind.VALUE, ArgKind.BUFFER, ArgKind.POINTER),
        u64,
        bytes(400),
        (fd, request, kind, value, b) => {
          const p = encodeIoctl({ fd, request, kind, value, bytes: b })
          expect(p.byteLength).toBe(PayloadSize.IOCTL_FIXED + b.byteLength)
          expect(decodeIoctl(p)).toEqual({ fd, request, kind, value, bytes: b })
        },
      ),
    )
  })

  it('fixed-size payloads round-trip', () => {
    fc.assert(
      fc.property(i32, u32, u64, (fd, n, v) => {
        expect(decodeFd('close', encodeFd(fd))).toBe(fd)
        expect(decodeMmap(encodeMmap(v))).toBe(v)
        expect(decodeRead(encodeRead(v, n))).toEqual({ address: v, length: n })
        expect(decodeEventfd(encodeEventfd(n))).toBe(n)
        expect(decodeEventfdWrite(encodeEventfdWrite(fd, v))).toEqual({ fd, value: v })
        expect(decodeU64('eventfd_read', encodeU64(v))).toBe(v)
      }),
    )
  })

  it('write, open, hello and messages round-trip', () => {
    const path = fc
      .string({ unit: 'grapheme', minLength: 1, maxLength: 100 })
      .filter((s) => !s.includes('\0'))
    fc.assert(
      fc.property(u64, bytes(500), path, u32, u32, (address, b, p, pid, features) => {
        expect(decodeWrite(encodeWrite(address, b))).toEqual({ address, bytes: b })
        expect(decodeOpen(encodeOpen(p))).toBe(p)
        expect(decodeMessage(encodeMessage(p))).toBe(p)
        const hello = { maxPayload: MAX_PAYLOAD, pid, features, device: p }
        expect(decodeHello(encodeHello(hello))).toEqual(hello)
      }),
    )
  })

  it('decoders refuse malformed payloads with the helper errno', () => {
    const einval = (f: () => unknown) => {
      expect(f).toThrow(FrameError)
      try {
        f()
      } catch (e) {
        expect((e as FrameError).errno).toBe(22)
      }
    }
    einval(() => decodeIoctl(new Uint8Array(23)))
    einval(() => decodeFd('close', new Uint8Array(7)))
    einval(() => decodeMmap(new Uint8Array(9)))
    einval(() => decodeRead(new Uint8Array(15)))
    einval(() => decodeWrite(new Uint8Array(7)))
    einval(() => decodeOpen(new Uint8Array(0)))
    einval(() => decodeOpen(new Uint8Array(MAX_PATH + 1).fill(0x61)))
    einval(() => decodeOpen(new Uint8Array([0x2f, 0, 0x61])))
    const reserved = encodeFd(3)
    reserved[4] = 1
    einval(() => decodeFd('close', reserved))
    const ioctl = encodeIoctl({ fd: 3, request: 1, kind: 0, value: 0n, bytes: new Uint8Array() })
    ioctl[12] = 1
    einval(() => decodeIoctl(ioctl))
    ioctl[12] = 0
    ioctl[8] = 4 // kind 4 does not exist
    einval(() => decodeIoctl(ioctl))
  })

  it('names ops for messages', () => {
    expect(opName(Op.EVENTFD_READ)).toBe('eventfd_read')
    expect(opName(0x1234)).toBe('op 0x1234')
  })
})

describe('the C twin (helper/hsm-protocol.h, helper/hsm-ioctls.c)', () => {
  const header = readFileSync(join(ROOT, 'helper', 'hsm-protocol.h'), 'utf8')

  function cValue(name: string): number {
    const define = header.match(
      new RegExp(`#define\\s+${name}\\s+\\(?([^\\n/]+?)\\)?\\s*(?:/\\*.*)?$`, 'm'),
    )
    const enumerator = header.match(new RegExp(`\\b${name}\\s*=\\s*([^,\\n]+),`))
    const text = (define?.[1] ?? enumerator?.[1])?.trim()
    if (text === undefined) throw new Error(`${name} not found in hsm-protocol.h`)
    const shift = text.match(/^(\d+)u?\s*<<\s*(\d+)$/)
    if (shift) return Number(shift[1]) << Number(shift[2])
    return Number(text.replace(/u$/, ''))
  }

  it('has the same constants', () => {
    expect(cValue('HSMP_MAGIC')).toBe(MAGIC)
    expect(cValue('HSMP_VERSION')).toBe(VERSION)
    expect(cValue('HSMP_HEADER_SIZE')).toBe(HEADER_SIZE)
    expect(cValue('HSMP_MAX_PAYLOAD')).toBe(MAX_PAYLOAD)
    expect(cValue('HSMP_MAX_PATH')).toBe(MAX_PATH)
    expect(cValue('HSMP_FLAG_REFUSED')).toBe(FLAG_REFUSED)
    expect(cValue('HSMP_FEATURE_TESTING')).toBe(FEATURE_TESTING)
    for (const [name, code] of Object.entries(Op))
      expect(cValue(`HSMP_OP_${name}`), name).toBe(code)
    for (const [name, code] of Object.entries(ArgKind)) {
      expect(cValue(`HSMP_ARG_${name}`), name).toBe(code)
    }
    for (const [name, size] of Object.entries(PayloadSize)) {
      expect(cValue(`HSMP_${name}_SIZE`), name).toBe(size)
    }
  })

  it.skipIf(helperUnavailable)('has the same ioctl table as src/core/abi', () => {
    // Compile a dump of hsm_ioctls[] against <linux/acrn.h> and compare it row by row.
    const dir = mkdtempSync(join(tmpdir(), 'hsm-ioctls-'))
    try {
      const main = join(dir, 'dump.c')
      writeFileSync(
        main,
        `#include <stdio.h>
#include "hsm-ioctls.h"
int main(void) {
  for (unsigned i = 0; i < hsm_ioctl_count; i++) {
    const struct hsm_ioctl_info *t = &hsm_ioctls[i];
    printf("%s %u %d %u %d %d\\n", t->name, t->request, t->kind, t->buffer_size, t->read_back,
           hsm_ioctl_lookup(t->request) == t);
  }
  return 0;
}
`,
      )
      const exe = join(dir, 'dump')
      const helperDir = join(ROOT, 'helper')
      const cc = process.env.CC ?? 'cc'
      const build = spawnSync(
        cc,
        [
          '-std=c11',
          '-Wall',
          '-Werror',
          `-I${helperDir}`,
          '-o',
          exe,
          main,
          join(helperDir, 'hsm-ioctls.c'),
        ],
        { encoding: 'utf8' },
      )
      expect(build.status, build.stderr).toBe(0)
      const rows = spawnSync(exe, { encoding: 'utf8' })
        .stdout.trim()
        .split('\n')
        .map((l) => l.split(' '))
      const kinds = { none: ArgKind.NONE, value: ArgKind.VALUE, struct: ArgKind.BUFFER }
      expect(rows.map((r) => r[0])).toEqual(IOCTLS.map((i) => i.name))
      for (const [name, request, kind, bufferSize, readBack, found] of rows) {
        const info = IOCTLS.find((i) => i.name === name)!
        expect(Number(request), name).toBe(info.request)
        expect(Number(kind), name).toBe(kinds[info.kind])
        expect(Number(bufferSize), name).toBe(info.bufferSize)
        expect(readBack === '1', name).toBe(info.dir === 'rw' || info.dir === 'r')
        expect(found, name).toBe('1')
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
