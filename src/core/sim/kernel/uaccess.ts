// copy_from_user / copy_to_user for an ioctl argument. The argument is the user memory
// at the pointer (a Uint8Array: bytes past its end are unmapped), a user address
// (bigint, resolved in the process's address space), or a NULL pointer (undefined).

import { Errno } from '../../abi/errno.js'
import type { IoctlArg } from '../../hsm-process.js'
import type { UserMemory } from './user-memory.js'

/** A kernel copy of `length` bytes at the pointer (memdup_user), or -EFAULT. */
export function copyFromUser(mm: UserMemory, arg: IoctlArg, length: number): Uint8Array | number {
  if (arg instanceof Uint8Array)
    return arg.byteLength >= length ? arg.slice(0, length) : -Errno.EFAULT
  if (typeof arg === 'bigint') {
    const address = Number(arg)
    if (!Number.isSafeInteger(address)) return -Errno.EFAULT
    return mm.read(address, length) ?? -Errno.EFAULT
  }
  return -Errno.EFAULT
}

/**
 * The user's bytes without a copy when the argument is a buffer (for the hot NOTIFY
 * path: the kernel reads them once, like get_user), else a copy; or -EFAULT.
 */
export function peekUser(mm: UserMemory, arg: IoctlArg, length: number): Uint8Array | number {
  if (arg instanceof Uint8Array) return arg.byteLength >= length ? arg : -Errno.EFAULT
  return copyFromUser(mm, arg, length)
}

/** Write `bytes` at the pointer: 0, or -EFAULT after copying what fits before the fault. */
export function copyToUser(mm: UserMemory, arg: IoctlArg, bytes: Uint8Array): number {
  if (arg instanceof Uint8Array) {
    const n = Math.min(arg.byteLength, bytes.byteLength)
    arg.set(bytes.subarray(0, n))
    return n < bytes.byteLength ? -Errno.EFAULT : 0
  }
  if (typeof arg === 'bigint') {
    const address = Number(arg)
    if (!Number.isSafeInteger(address)) return -Errno.EFAULT
    return mm.write(address, bytes) ? 0 : -Errno.EFAULT
  }
  return -Errno.EFAULT
}
