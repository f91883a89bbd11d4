// The struct codec and layout engine (spec §10.3), independent of the C compiler.

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  decode,
  defineStruct,
  encode,
  field,
  gaps,
  members,
  offsetOf,
  scalarSize,
  type Layout,
} from '../../../src/core/abi/layout.js'
import * as S from '../../../src/core/abi/structs.js'
import { ALL_STRUCTS, findStruct, UAPI_STRUCTS } from '../../../src/core/abi/structs.js'

/** 1 for each byte some scalar member (any array element, any union member) covers. */
function coverage(layout: Layout, covered = new Uint8Array(layout.size), base = 0): Uint8Array {
  for (const f of layout.fields) {
    for (let i = 0; i < f.count; i++) {
      if (typeof f.type === 'string') {
        const size = scalarSize(f.type)
        covered.fill(1, base + f.offset + i * size, base + f.offset + (i + 1) * size)
      } else {
        coverage(f.type, covered, base + f.offset + i * f.type.size)
      }
    }
  }
  return covered
}

describe('layout engine', () => {
  it('rejects an offset C would not use, naming the member', () => {
    expect(() =>
      defineStruct('bad', [field('a', 0, 'u8'), field('b', 1, 'u32')], { size: 8 }),
    ).toThrow(/member b declared at offset 1, C puts it at 4/)
  })

  it('rejects a size that disagrees with the C rules', () => {
    expect(() =>
      defineStruct('bad', [field('a', 0, 'u64'), field('b', 8, 'u8')], { size: 9 }),
    ).toThrow(/computed size 16, expected 9/)
  })

  it('packs a packed struct and aligns an aligned(N) one', () => {
    const packed = defineStruct('p', [field('a', 0, 'u8'), field('b', 1, 'u64')], {
      size: 9,
      packed: true,
    })
    expect(packed.align).toBe(1)
    const aligned = defineStruct('q', [field('a', 0, 'u32')], { size: 256, aligned: 256 })
    expect(aligned.align).toBe(256)
  })
})

describe('padding and holes are where the spec says (§10.3)', () => {
  // Every gap in every struct; a struct not listed has none.
  const expected: Record<string, Array<[number, number, string]>> = {
    acrn_pio_request: [[28, 4, 'padding']],
    acrn_pci_request: [[44, 4, 'padding']],
    acrn_io_request: [[140, 116, 'padding']],
    acrn_regs: [[284, 4, 'padding']],
    acrn_pcidev: [[10, 2, 'hole']],
    acrn_cstate_data: [
      [13, 3, 'hole'],
      [20, 4, 'hole'],
    ],
    vm_memory_region_batch: [[12, 4, 'hole']],
  }
  it.each(ALL_STRUCTS.map((s) => [s.name, s] as const))('%s', (name, layout) => {
    expect(gaps(layout).map((g) => [g.offset, g.size, g.kind])).toEqual(expected[name] ?? [])
  })
})

describe('codec round trips (property)', () => {
  it.each(ALL_STRUCTS.map((s) => [s.name, s] as const))(
    '%s: encode(decode(bytes)) = bytes minus gaps',
    (_name, layout) => {
      const mask = coverage(layout)
      fc.assert(
        fc.property(fc.uint8Array({ minLength: layout.size, maxLength: layout.size }), (bytes) => {
          const decoded = decode(layout, bytes)
          const again = encode(layout, decoded)
          const expectedBytes = bytes.map((b, i) => (mask[i] ? b : 0))
          expect(Buffer.from(again).equals(Buffer.from(expectedBytes))).toBe(true)
          expect(decode(layout, again)).toEqual(decoded)
        }),
        { numRuns: 50 },
      )
    },
  )

  it('decodes and encodes at an offset inside a larger buffer', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 64 }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        (at, value) => {
          const buf = new Uint8Array(at + S.acrn_msi_entry.size + 7).fill(0xaa)
          encode(S.acrn_msi_entry, { msi_addr: value, msi_data: 5 }, buf, at)
          expect(decode(S.acrn_msi_entry, buf, at)).toEqual({ msi_addr: value, msi_data: 5n })
          expect(buf[at - 1] ?? 0xaa).toBe(0xaa)
          expect(buf[at + 16]).toBe(0xaa)
        },
      ),
    )
  })
})

describe('codec values', () => {
  it('64-bit fields are bigint, narrower ones numbers, u8 arrays bytes', () => {
    const v = decode(
      S.acrn_vm_creation,
      encode(S.acrn_vm_creation, { vmid: 3, ioreq_buf: 0x1000n, uuid: [1, 2] }),
    )
    expect(v.vmid).toBe(3)
    expect(v.ioreq_buf).toBe(0x1000n)
    expect(v.uuid).toBeInstanceOf(Uint8Array)
    expect([...(v.uuid as Uint8Array)].slice(0, 3)).toEqual([1, 2, 0])
  })

  it('irqfd.fd is signed', () => {
    const bytes = encode(S.acrn_irqfd, { fd: -1 })
    expect([...bytes.slice(0, 4)]).toEqual([0xff, 0xff, 0xff, 0xff])
    expect(decode(S.acrn_irqfd, bytes).fd).toBe(-1)
  })

  it('anonymous union members read as the parent’s (acrn_vm_memmap)', () => {
    const v = decode(S.acrn_vm_memmap, encode(S.acrn_vm_memmap, { vma_base: 0x7f00_0000_1000n }))
    expect(v.service_vm_pa).toBe(0x7f00_0000_1000n)
    expect(v.vma_base).toBe(0x7f00_0000_1000n)
  })

  it('a union member writes only its own bytes (acrn_io_request.reqs)', () => {
    const bytes = encode(S.acrn_io_request, {
      type: 0,
      reqs: { pio_request: { direction: 1, address: 0x3f8n, size: 1n, value: 0x41 } },
      processed: 2,
    })
    const v = decode(S.acrn_io_request, bytes) as { reqs: { pci_request: Record<string, unknown> } }
    expect(v.reqs.pci_request.direction).toBe(1)
    expect(v.reqs.pci_request.value).toBe(0x41) // §4.1: the PCI header shares PIO offsets
    expect(bytes[offsetOf(S.acrn_io_request, 'processed')]).toBe(2)
  })

  it.each([
    [{ vmid: 0x1_0000 }, /vmid: 65536 does not fit in u16/],
    [{ vmid: -1 }, /vmid: -1 does not fit in u16/],
    [{ vmid: 1.5 }, /vmid: expected an integer/],
    [{ vm_flag: 2n ** 64n }, /vm_flag: .* does not fit in u64/],
    [{ uuid: new Uint8Array(17) }, /uuid: 17 elements, the array holds 16/],
  ])('encode rejects %o', (value, message) => {
    expect(() => encode(S.acrn_vm_creation, value)).toThrow(message)
  })

  it('nested paths are named in errors', () => {
    expect(() => encode(S.acrn_vcpu_regs, { vcpu_regs: { gprs: { rax: -1 } } })).toThrow(
      /vcpu_regs\.gprs\.rax/,
    )
  })

  it('decode refuses a short buffer', () => {
    expect(() => decode(S.acrn_vm_creation, new Uint8Array(47))).toThrow(/needs 48 bytes/)
  })
})

describe('members listing', () => {
  it('lists every top-level member with its own offset, nested ones as dotted names', () => {
    const names = (l: Layout) =>
      members(l)
        .filter((m) => m.depth === 0)
        .map((m) => m.name)
    expect(names(S.acrn_io_request)).toContain('reqs')
    expect(names(S.acrn_ptdev_irq)).toContain('intx')
    expect(names(S.acrn_mmiodev)).toContain('res')
    expect(names(S.acrn_irqfd)).toContain('msi')
    expect(names(S.acrn_cstate_data)).toContain('cx_reg')
    expect(names(S.acrn_vcpu_regs)).toContain('vcpu_regs')
    expect(names(S.acrn_vm_memmap)).toEqual([
      'type',
      'attr',
      'user_vm_pa',
      'service_vm_pa',
      'vma_base',
      'len',
    ])
    expect(offsetOf(S.acrn_mmiodev, 'res[0].mem_type')).toBe(8 + 24)
    expect(offsetOf(S.acrn_vcpu_regs, 'vcpu_regs.gdt.base')).toBe(8 + 128 + 2)
  })

  it('finds structs with or without the acrn_ prefix', () => {
    expect(findStruct('vm_creation')).toBe(S.acrn_vm_creation)
    expect(findStruct('struct acrn_irqfd')).toBe(S.acrn_irqfd)
    expect(findStruct('nope')).toBeUndefined()
    expect(UAPI_STRUCTS).toHaveLength(22)
  })
})
