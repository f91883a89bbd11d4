// The shim's extension ops: the TypeScript codecs, and the constants of their C twin
// (helper/hsm-shim.h), which must stay equal.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FrameError, Op } from '../../../src/core/native/protocol.js'
import {
  decodeDiff,
  decodeFdDeclaration,
  decodeIdValue,
  decodeMirror,
  decodeShare,
  decodeShimHello,
  encodeDiff,
  encodeFdDeclaration,
  encodeIdValue,
  encodeMirror,
  encodeShare,
  encodeShimHello,
  ShimFdKind,
  ShimOp,
  ShimRole,
  ShimSize,
  SyncMode,
} from '../../../src/core/native/shim-protocol.js'
import { ROOT } from './support.js'

describe('shim payloads', () => {
  it('round-trip', () => {
    expect(decodeShimHello(encodeShimHello({ pid: 77, program: 'vm-sample' }))).toEqual({
      pid: 77,
      program: 'vm-sample',
    })
    const m = { region: 3, role: ShimRole.RAM, address: 0x7f00_0000_1000n, length: 0x10_0000n }
    expect(decodeMirror(encodeMirror(m))).toEqual(m)
    const d = { fd: -1, kind: ShimFdKind.NOT_OPEN, id: 0n, count: 0n }
    expect(decodeFdDeclaration(encodeFdDeclaration(d))).toEqual(d)
    expect(decodeIdValue('signal', encodeIdValue(9n, 1n))).toEqual({ id: 9n, value: 1n })
    const s = {
      region: 4,
      role: ShimRole.RAM,
      address: 0x7f00_0020_0000n,
      length: 0x800_0000n,
      offset: 0x20_0000n,
      pageSize: 0x20_0000,
      path: '/proc/77/fd/64',
    }
    expect(decodeShare(encodeShare(s))).toEqual(s)
    expect(() => decodeShare(encodeShare(s).subarray(0, 40))).toThrow(/share payload of 40/)
    const reserved = encodeShare(s)
    reserved[36] = 1
    expect(() => decodeShare(reserved)).toThrow(/reserved bytes/)
  })

  it('diffs round-trip, and a cut or overlong one is refused', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ offset: fc.nat(4095), bytes: fc.uint8Array({ maxLength: 64 }) }), {
          maxLength: 8,
        }),
        (ranges) => {
          const decoded = decodeDiff(encodeDiff(5, ranges))
          expect(decoded.region).toBe(5)
          expect(decoded.ranges.map((r) => ({ offset: r.offset, bytes: [...r.bytes] }))).toEqual(
            ranges.map((r) => ({ offset: r.offset, bytes: [...r.bytes] })),
          )
        },
      ),
    )
    const p = encodeDiff(1, [{ offset: 0, bytes: Uint8Array.of(1, 2, 3) }])
    expect(() => decodeDiff(p.subarray(0, p.byteLength - 1))).toThrow(FrameError)
    expect(() => decodeDiff(new Uint8Array([...p, 0]))).toThrow(/bytes after the last range/)
    expect(() => decodeShimHello(new Uint8Array(4))).toThrow(FrameError)
    expect(() =>
      decodeFdDeclaration(encodeFdDeclaration({ fd: 3, kind: 9, id: 0n, count: 0n })),
    ).toThrow(/unknown kind/)
  })

  it('uses op codes of its own, apart from the helper ops', () => {
    const helperOps = new Set<number>(Object.values(Op))
    for (const code of Object.values(ShimOp)) expect(helperOps.has(code)).toBe(false)
  })
})

describe('the C twin (helper/hsm-shim.h)', () => {
  const header = readFileSync(join(ROOT, 'helper', 'hsm-shim.h'), 'utf8')
  const cValue = (name: string): number => {
    const define = header.match(new RegExp(`#define\\s+${name}\\s+([0-9a-fx]+)u?\\b`))
    const enumerator = header.match(new RegExp(`\\b${name}\\s*=\\s*([0-9a-fx]+),`))
    const text = define?.[1] ?? enumerator?.[1]
    if (text === undefined) throw new Error(`${name} not found in hsm-shim.h`)
    return Number(text)
  }

  it('has the same constants', () => {
    for (const [name, code] of Object.entries(ShimOp))
      expect(cValue(`HSM_SHIM_OP_${name}`), name).toBe(code)
    for (const [name, code] of Object.entries(ShimRole))
      expect(cValue(`HSM_SHIM_ROLE_${name}`), name).toBe(code)
    for (const [name, code] of Object.entries(ShimFdKind))
      expect(cValue(`HSM_SHIM_FD_${name}`), name).toBe(code)
    for (const [name, code] of Object.entries(SyncMode))
      expect(cValue(`HSM_SHIM_SYNC_${name}`), name).toBe(code)
    for (const [name, size] of Object.entries(ShimSize)) {
      const c = name === 'MAX_PROGRAM' ? 'HSM_SHIM_MAX_PROGRAM' : `HSM_SHIM_${name}_SIZE`
      expect(cValue(c), name).toBe(size)
    }
  })
})
