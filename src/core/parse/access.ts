// EPT access rights as `--access rwx` (§3.1): any of r, w, x, each at most once.

import { MemAccess } from '../abi/constants.js'
import { UsageError } from '../errors.js'

const BITS: Readonly<Record<string, number>> = {
  r: MemAccess.READ,
  w: MemAccess.WRITE,
  x: MemAccess.EXEC,
}

export function parseAccess(text: string, name?: string): number {
  const letters = text.trim().toLowerCase()
  let attr = 0
  for (const letter of letters) {
    const bit = BITS[letter]
    if (bit === undefined || attr & bit) {
      throw new UsageError(`'${text}' is not an access mode`, {
        flag: name,
        hint: 'use letters r, w and x, each once: r, rw, rwx',
      })
    }
    attr |= bit
  }
  if (letters === '') {
    throw new UsageError('an empty access mode maps nothing', {
      flag: name,
      hint: 'use r, rw or rwx',
    })
  }
  return attr
}

export function formatAccess(attr: number): string {
  return (
    (attr & MemAccess.READ ? 'r' : '-') +
    (attr & MemAccess.WRITE ? 'w' : '-') +
    (attr & MemAccess.EXEC ? 'x' : '-')
  )
}
