// VM creation flags (`acrn_vm_creation.vm_flag`), passed to the hypervisor unchanged
// (§2.2, §10.2). Names are acrn-hypervisor's GUEST_FLAG_* without the prefix.

import { UsageError } from '../errors.js'
import { parseInteger } from '../parse/number.js'

export const VM_FLAGS: Readonly<Record<string, bigint>> = {
  'secure-world': 1n << 0n,
  'lapic-passthrough': 1n << 1n,
  'io-completion-polling': 1n << 2n,
  'hide-mtrr': 1n << 3n,
  rt: 1n << 4n,
  nvmx: 1n << 5n,
  'security-vm': 1n << 6n,
  vcat: 1n << 7n,
}

/** A flag name (`rt`, `lapic-passthrough`) or a number (`0x10`). */
export function parseVmFlag(text: string, name = '--flag'): bigint {
  const key = text.trim().toLowerCase().replaceAll('_', '-')
  const named = VM_FLAGS[key]
  if (named !== undefined) return named
  if (/^[0-9]/.test(key)) return parseInteger(text, { name })
  throw new UsageError(`unknown VM flag '${text}'`, {
    flag: name,
    hint: `use one of ${Object.keys(VM_FLAGS).join(', ')}, or a number`,
  })
}

/** Names for the set bits; unknown bits as hex. */
export function vmFlagNames(flags: bigint): string[] {
  const names: string[] = []
  let rest = flags
  for (const [name, bit] of Object.entries(VM_FLAGS)) {
    if (flags & bit) {
      names.push(name)
      rest &= ~bit
    }
  }
  if (rest !== 0n) names.push(`0x${rest.toString(16)}`)
  return names
}
