/** JSON with bigint as hex strings (ARCHITECTURE.md: 64-bit values travel as hex). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v), 2)
}
