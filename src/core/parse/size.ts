// Sizes with binary suffixes as operators write them: 4K, 64M, 2G, 1T, 64MiB, or plain
// numbers (4096, 0x100000). K/M/G/T are powers of 1024, as in QEMU and virsh.

import { UsageError } from '../errors.js'
import { checkInteger, parseIntegerLiteral, type IntegerOptions } from './number.js'

const SUFFIX_SHIFT: Readonly<Record<string, bigint>> = { k: 10n, m: 20n, g: 30n, t: 40n, p: 50n }

export function parseSize(text: string, options: IntegerOptions = {}): bigint {
  const input = text.trim()
  const suffixed = /^([0-9]+(?:_[0-9]+)*)\s*([kmgtp])(?:i?b)?$/i.exec(input)
  let value: bigint
  if (suffixed) {
    value = BigInt(suffixed[1]!.replaceAll('_', '')) << SUFFIX_SHIFT[suffixed[2]!.toLowerCase()]!
  } else if (/^0x[0-9a-f_]+\s*[kmgtp]/i.test(input)) {
    throw new UsageError(`'${text}': a suffix needs a decimal number`, {
      flag: options.name,
      hint: 'write 16M or 0x1000000, not 0x10M',
    })
  } else {
    const bytes = /^(.*?)\s*b$/i.exec(input)
    try {
      value = parseIntegerLiteral(bytes && !/^0x/i.test(input) ? bytes[1]! : input, options.name)
    } catch {
      throw new UsageError(`'${text}' is not a size`, {
        flag: options.name,
        hint: 'use bytes (4096, 0x100000) or a suffix K, M, G, T (64M, 2G)',
      })
    }
  }
  checkInteger(value, text, options)
  return value
}

/** Render a byte count the short way when it is a whole number of units: 64M, 4K, 4097. */
export function formatSize(bytes: bigint): string {
  for (const [unit, shift] of [
    ['T', 40n],
    ['G', 30n],
    ['M', 20n],
    ['K', 10n],
  ] as const) {
    if (bytes !== 0n && bytes % (1n << shift) === 0n) return `${bytes >> shift}${unit}`
  }
  return bytes.toString()
}
