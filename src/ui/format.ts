// Small renderers for values hsmctl prints. Values from the daemon carry 64-bit numbers
// as hex strings (Wire<T>), so these take bigint, number or such a string.
import { formatBdf } from '../core/parse/bdf.js'
import { formatHex } from '../core/parse/number.js'
import { formatSize } from '../core/parse/size.js'

export type Num = bigint | number | string

export const big = (v: Num): bigint => BigInt(v)

export const hex = (v: Num | null | undefined) =>
  v === null || v === undefined ? '-' : formatHex(BigInt(v))
export const size = (v: Num) => (BigInt(v) === 0n ? '0' : formatSize(BigInt(v)))
export const bdf = (v: number) => formatBdf(v)

export function duration(seconds: number | null): string {
  if (seconds === null) return '-'
  if (seconds < 60) return `${seconds}s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`
  const h = Math.floor(seconds / 3600)
  return h < 48
    ? `${h}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`
    : `${Math.floor(h / 24)}d${h % 24}h`
}
