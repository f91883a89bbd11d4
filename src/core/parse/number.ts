// Numbers as users type them: decimal or 0x/0o/0b, `_` between digits, with range and
// alignment checks that name the flag. Results are bigint so 64-bit addresses stay exact.

import { UsageError } from '../errors.js'

export interface IntegerOptions {
  /** The flag or argument being parsed, named in errors (`--gpa`). */
  name?: string
  min?: bigint
  max?: bigint
  /** Required alignment in bytes (a power of two). */
  align?: bigint
  /** A count, not an address or a mask: its range is said in decimal (unless written in hex). */
  decimal?: boolean
}

const U64_MAX = (1n << 64n) - 1n

const DIGITS: Readonly<Record<string, RegExp>> = {
  '0x': /^[0-9a-f]+(_[0-9a-f]+)*$/i,
  '0o': /^[0-7]+(_[0-7]+)*$/,
  '0b': /^[01]+(_[01]+)*$/,
  '': /^[0-9]+(_[0-9]+)*$/,
}

export function formatHex(value: bigint | number): string {
  return `0x${value.toString(16)}`
}

/** Parse an integer literal; throws UsageError naming `name`. No range check. */
export function parseIntegerLiteral(text: string, name?: string): bigint {
  const input = text.trim()
  const negative = input.startsWith('-')
  const body = negative ? input.slice(1) : input
  const prefix = /^0[xob]/i.test(body) ? body.slice(0, 2).toLowerCase() : ''
  const digits = body.slice(prefix.length)
  if (input === '' || !DIGITS[prefix]!.test(digits)) {
    throw new UsageError(`'${text}' is not a number`, {
      flag: name,
      hint: 'write it in decimal (4096, 1_048_576) or hex (0x1000, 0xfee0_0000)',
    })
  }
  const magnitude = BigInt(prefix + digits.replaceAll('_', ''))
  return negative ? -magnitude : magnitude
}

/** Parse an integer with range and alignment checks (default range: unsigned 64-bit). */
export function parseInteger(text: string, options: IntegerOptions = {}): bigint {
  const value = parseIntegerLiteral(text, options.name)
  checkInteger(value, text, options)
  return value
}

export function checkInteger(value: bigint, text: string, options: IntegerOptions): void {
  const min = options.min ?? 0n
  const max = options.max ?? U64_MAX
  if (value < min || value > max) {
    throw new UsageError(`${text} is out of range`, {
      flag: options.name,
      // a count in decimal, unless it was written in hex (a vendor ID, say)
      hint:
        (options.decimal && !/^\s*-?0x/i.test(text)) || min < 0n
          ? `expected ${min} to ${max}`
          : `expected ${formatHex(min)} to ${formatHex(max)}`,
    })
  }
  if (options.align !== undefined && options.align > 1n && value % options.align !== 0n) {
    throw new UsageError(`${text} is not aligned to ${formatHex(options.align)}`, {
      flag: options.name,
      hint: `round it to a multiple of ${options.align} (e.g. ${formatHex(value - (value % options.align))})`,
    })
  }
}

/** Upper bound of an unsigned field of `bits` width. */
export function maxUnsigned(bits: number): bigint {
  return (1n << BigInt(bits)) - 1n
}
