// PCI functions as lspci prints them: `bb:dd.f` or `dddd:bb:dd.f` (hex), packed to the
// 16-bit form the ACRN structs carry (`virt_bdf`, `phys_bdf`): bus<<8 | dev<<3 | func.

import { UsageError } from '../errors.js'

export interface Bdf {
  readonly segment: number
  readonly bus: number
  readonly dev: number
  readonly func: number
}

const BDF_RE = /^(?:([0-9a-f]{1,4}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$/i

const HINT = 'write it as bb:dd.f or dddd:bb:dd.f in hex, as lspci prints it (00:1f.3)'

export function parseBdf(text: string, name?: string): Bdf {
  const match = BDF_RE.exec(text.trim())
  if (!match) {
    throw new UsageError(`'${text}' is not a PCI address`, { flag: name, hint: HINT })
  }
  const segment = parseInt(match[1] ?? '0', 16)
  const bus = parseInt(match[2]!, 16)
  const dev = parseInt(match[3]!, 16)
  const func = parseInt(match[4]!, 16)
  if (dev > 0x1f) {
    throw new UsageError(`'${text}': device ${dev.toString(16)} is above 1f`, {
      flag: name,
      hint: 'a PCI bus has 32 devices, 00 to 1f',
    })
  }
  if (segment !== 0) {
    throw new UsageError(`'${text}': segment ${match[1]} cannot be expressed`, {
      flag: name,
      hint: 'ACRN carries a 16-bit bus:dev.fn with no segment; only segment 0000 is reachable',
    })
  }
  return { segment, bus, dev, func }
}

export function packBdf(bdf: Pick<Bdf, 'bus' | 'dev' | 'func'>): number {
  return ((bdf.bus & 0xff) << 8) | ((bdf.dev & 0x1f) << 3) | (bdf.func & 0x7)
}

export function unpackBdf(packed: number): Bdf {
  return { segment: 0, bus: (packed >> 8) & 0xff, dev: (packed >> 3) & 0x1f, func: packed & 0x7 }
}

const hex2 = (n: number) => n.toString(16).padStart(2, '0')

/** `00:1f.3`, or with the segment `0000:00:1f.3`. */
export function formatBdf(bdf: Bdf | number, withSegment = false): string {
  const b = typeof bdf === 'number' ? unpackBdf(bdf) : bdf
  const short = `${hex2(b.bus)}:${hex2(b.dev)}.${b.func}`
  return withSegment ? `${b.segment.toString(16).padStart(4, '0')}:${short}` : short
}

/** Parse to the packed 16-bit form. */
export function parsePackedBdf(text: string, name?: string): number {
  return packBdf(parseBdf(text, name))
}
