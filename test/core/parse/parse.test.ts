// Parsers for what users type (numbers, sizes, BDFs, MSI pairs, access modes), with
// property tests for round trips and for rejection of malformed input.

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../src/core/errors.js'
import {
  buildMsi,
  decodeMsi,
  formatAccess,
  formatBdf,
  formatClassCode,
  formatPciId,
  formatSize,
  packBdf,
  parseAccess,
  parseBdf,
  parseInteger,
  parseMsi,
  parsePackedBdf,
  parseSize,
  unpackBdf,
} from '../../../src/core/parse/index.js'

const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })

/** Insert `_` between some digits of a digit string. */
const withUnderscores = (digits: string, cuts: boolean[]) =>
  [...digits].map((d, i) => (i > 0 && cuts[i % cuts.length] ? `_${d}` : d)).join('')

function usageError(fn: () => unknown): UsageError {
  try {
    fn()
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError)
    return e as UsageError
  }
  throw new Error('expected a UsageError')
}

describe('parseInteger', () => {
  it('reads decimal and hex with _ separators (property)', () => {
    fc.assert(
      fc.property(
        u64,
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        (n, cuts, upper) => {
          const hex = n.toString(16)
          expect(parseInteger(withUnderscores(n.toString(), cuts))).toBe(n)
          expect(parseInteger(`0x${withUnderscores(upper ? hex.toUpperCase() : hex, cuts)}`)).toBe(
            n,
          )
          expect(parseInteger(`  0X${hex} `)).toBe(n)
        },
      ),
    )
  })

  it('reads 0b and 0o', () => {
    expect(parseInteger('0b1010_1010')).toBe(0xaan)
    expect(parseInteger('0o755')).toBe(0o755n)
  })

  it.each(['', 'x', '0x', '12a', '1__0', '_1', '1_', '0x_1', '0xg', '1.5', '1e3', '--1', '0x-1'])(
    'rejects %j, naming the flag',
    (text) => {
      const e = usageError(() => parseInteger(text, { name: '--gpa' }))
      expect(e.message).toMatch(/^--gpa: .* is not a number$/)
      expect(e.hint).toMatch(/hex/)
    },
  )

  it('rejects anything with a character outside the grammar (property)', () => {
    fc.assert(
      fc.property(fc.string(), fc.constantFrom('g', 'z', '.', '+', ' 1', '$'), (s, bad) => {
        expect(() => parseInteger(`1${s}${bad}`)).toThrow(UsageError)
      }),
    )
  })

  it('checks range (u64 by default) and alignment', () => {
    expect(() => parseInteger('0x1_0000_0000_0000_0000')).toThrow(/out of range/)
    expect(() => parseInteger('-1')).toThrow(/out of range/)
    expect(parseInteger('-1', { min: -5n })).toBe(-1n)
    expect(() => parseInteger('300', { max: 255n, name: '--vector' })).toThrow(
      /--vector: 300 is out of range/,
    )
    const e = usageError(() => parseInteger('0x1001', { align: 0x1000n, name: '--gpa' }))
    expect(e.message).toBe('--gpa: 0x1001 is not aligned to 0x1000')
    expect(e.hint).toContain('0x1000')
  })

  it('accepts exactly the aligned values (property)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 2n ** 48n }),
        fc.integer({ min: 0, max: 21 }),
        (n, shift) => {
          const align = 1n << BigInt(shift)
          const ok = n % align === 0n
          const parse = () => parseInteger(`0x${n.toString(16)}`, { align })
          if (ok) expect(parse()).toBe(n)
          else expect(parse).toThrow(/not aligned/)
        },
      ),
    )
  })
})

describe('parseSize', () => {
  it('applies binary suffixes (property)', () => {
    const units = { K: 10n, M: 20n, G: 30n, T: 40n } as const
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 2n ** 20n }),
        fc.constantFrom(...Object.keys(units)),
        fc.constantFrom('', 'i', 'iB', 'B', ' '),
        (n, unit, tail) => {
          const suffix = tail === 'i' ? '' : tail === ' ' ? '' : tail
          const text = `${n}${tail === ' ' ? ' ' : ''}${unit}${suffix}`
          expect(parseSize(text)).toBe(n << units[unit as keyof typeof units])
          expect(parseSize(text.toLowerCase())).toBe(n << units[unit as keyof typeof units])
        },
      ),
    )
  })

  it('reads plain byte counts in decimal or hex', () => {
    expect(parseSize('0x100000')).toBe(0x100000n)
    expect(parseSize('4096')).toBe(4096n)
    expect(parseSize('4096B')).toBe(4096n)
    expect(parseSize('64M')).toBe(64n << 20n)
    expect(parseSize('2G')).toBe(2n << 30n)
  })

  it('round-trips through formatSize (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 60n }), (n) => {
        expect(parseSize(formatSize(n))).toBe(n)
      }),
    )
    expect(formatSize(64n << 20n)).toBe('64M')
    expect(formatSize(4097n)).toBe('4097')
  })

  it.each(['', 'M', '1.5G', '0x10M', '4X', '-4K', '4 K B', 'ten'])('rejects %j', (text) => {
    expect(() => parseSize(text, { name: '--memory' })).toThrow(/^--memory: /)
  })

  it('checks alignment and range on the result', () => {
    expect(() => parseSize('4097', { align: 4096n, name: '--size' })).toThrow(
      /not aligned to 0x1000/,
    )
    expect(() => parseSize('4K', { min: 8192n })).toThrow(/out of range/)
  })
})

describe('PCI BDF', () => {
  it('round-trips every 16-bit BDF through text (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.boolean(), (packed, segment) => {
        const text = formatBdf(packed, segment)
        expect(parsePackedBdf(text)).toBe(packed)
        expect(packBdf(unpackBdf(packed))).toBe(packed)
      }),
    )
  })

  it('packs bus<<8 | dev<<3 | func', () => {
    expect(parseBdf('00:1f.3')).toEqual({ segment: 0, bus: 0, dev: 0x1f, func: 3 })
    expect(parsePackedBdf('0000:03:00.1')).toBe(0x0301)
    expect(parsePackedBdf('ff:1f.7')).toBe(0xffff)
    expect(formatBdf(0x00f8)).toBe('00:1f.0')
  })

  it.each([
    ['00:20.0', /device 20 is above 1f/],
    ['00:1f.8', /not a PCI address/],
    ['0001:00:01.0', /segment 0001 cannot be expressed/],
    ['000:1.0', /not a PCI address/],
    ['1:2:3.4', /segment 1 cannot be expressed/],
    ['00.1f.3', /not a PCI address/],
    ['', /not a PCI address/],
  ])('rejects %j', (text, message) => {
    const e = usageError(() => parseBdf(text, '--phys'))
    expect(e.message).toMatch(/^--phys: /)
    expect(e.message).toMatch(message)
  })
})

describe('PCI IDs', () => {
  it('vendor/device as four hex digits, class code as six, read back as hex (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffffff }),
        (id, cls) => {
          expect(formatPciId(id)).toMatch(/^0x[0-9a-f]{4}$/)
          expect(parseInteger(formatPciId(id))).toBe(BigInt(id))
          expect(formatClassCode(cls)).toMatch(/^0x[0-9a-f]{6}$/)
          expect(parseInteger(formatClassCode(cls))).toBe(BigInt(cls))
        },
      ),
    )
  })

  it('keeps leading zeros, as lspci -n does', () => {
    expect(formatPciId(0x8086)).toBe('0x8086')
    expect(formatPciId(0x10)).toBe('0x0010')
    expect(formatClassCode(0x060000)).toBe('0x060000')
    expect(formatClassCode(0x010601)).toBe('0x010601')
  })
})

describe('MSI address and data', () => {
  it('builds and decodes destination and vector (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 16, max: 255 }),
        (dest, vector) => {
          const msi = buildMsi(dest, vector)
          const fields = decodeMsi(msi)
          expect([fields.destination, fields.vector, fields.triggerMode]).toEqual([dest, vector, 0])
          expect(parseMsi(`0x${msi.addr.toString(16)}:${msi.data}`)).toEqual(msi)
        },
      ),
    )
  })

  it('decodes the trigger and delivery bits', () => {
    expect(decodeMsi({ addr: 0xfee0_100cn, data: 0xc131n })).toMatchObject({
      destination: 1,
      destinationMode: 1,
      redirectionHint: 1,
      vector: 0x31,
      deliveryMode: 1,
      level: 1,
      triggerMode: 1,
    })
  })

  it.each([
    ['0xfed00000:0x31', /outside 0xfee00000-0xfeefffff/],
    ['0xfee00000', /not ADDR:DATA/],
    ['0xfee00000:', /not ADDR:DATA/],
    ['0xfee00000:0x1_0000_0000', /out of range/],
    ['zz:1', /not a number/],
  ])('rejects %j', (text, message) => {
    expect(() => parseMsi(text, '--msi')).toThrow(message)
  })

  it('rejects reserved vectors and bad destinations', () => {
    expect(() => buildMsi(0, 15)).toThrow(/vector 15/)
    expect(() => buildMsi(256, 32)).toThrow(/destination 256/)
  })
})

describe('access modes', () => {
  it('round-trips every non-empty mode', () => {
    for (let attr = 1; attr <= 7; attr++)
      expect(parseAccess(formatAccess(attr).replaceAll('-', ''))).toBe(attr)
    expect(parseAccess('RWX')).toBe(7)
    expect(parseAccess('xr')).toBe(5)
  })

  it.each(['', 'rr', 'rwz', 'read'])('rejects %j', (text) => {
    expect(() => parseAccess(text, '--access')).toThrow(/^--access: /)
  })
})
