// Real shared memory for the simulated Service VM's process mappings (issue 10): each
// anonymous mapping is a memfd mapped MAP_SHARED in hsmd, seen from JavaScript as an
// external ArrayBuffer (helper/hsm-memory-addon.c). KVM maps the same pages into the
// guest by their address in hsmd, and a shimmed program's RAM can be its own file mapped
// here too, so the guest, the model and the program share every byte, as with the kernel.
//
// Without the addon (no Node.js headers when helper/ was built) mappings fall back to
// SharedArrayBuffers: everything but executing vCPUs and zero-copy RAM works as before.

import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { HELPER_DIR } from '../../native/preflight.js'

interface MemoryAddon {
  memfd(size: number, name?: string): { buffer: ArrayBuffer; address: bigint; fd: number }
  mapFile(
    path: string,
    offset: number,
    length: number,
    writable: boolean,
    sealed?: boolean,
  ): { buffer: ArrayBuffer; address: bigint }
  discard(buffer: ArrayBuffer, offset: number, length: number): void
}

/** Memory that backs a mapping; `address` is where hsmd itself has it (undefined for a SharedArrayBuffer). */
export interface Backing {
  readonly buffer: ArrayBufferLike
  readonly address: bigint | undefined
  /** The memfd holding it, while the mapping lives (for /proc/PID/fd/N), if any. */
  readonly fd: number | undefined
}

export const memoryAddonPath = () => join(HELPER_DIR, 'build', 'hsm_memory.node')

let addon: MemoryAddon | null | undefined
let addonError = ''

function memoryAddon(): MemoryAddon | undefined {
  if (addon === undefined) {
    addon = null
    const path = memoryAddonPath()
    if (process.env.HSMCTL_SHARED_RAM === '0') addonError = 'disabled by HSMCTL_SHARED_RAM=0'
    else if (!existsSync(path))
      addonError = `${path} is not built (make -C helper needs Node.js's node_api.h)`
    else {
      try {
        addon = createRequire(import.meta.url)(path) as MemoryAddon
      } catch (e) {
        addonError = `${path} does not load: ${(e as Error).message}`
      }
    }
  }
  return addon ?? undefined
}

/** Whether mappings are real shared memory, and if not, why (one line). */
export function sharedMemoryStatus(): { shared: true } | { shared: false; reason: string } {
  return memoryAddon() ? { shared: true } : { shared: false, reason: addonError }
}

/**
 * Zeroed memory for an anonymous mapping of `size` bytes (a page multiple). Throws
 * RangeError when it cannot be had (the caller's ENOMEM).
 */
export function allocateBacking(size: number): Backing {
  const a = memoryAddon()
  if (!a) return { buffer: new SharedArrayBuffer(size), address: undefined, fd: undefined }
  try {
    const m = a.memfd(size)
    return { buffer: m.buffer, address: m.address, fd: m.fd }
  } catch (e) {
    throw new RangeError((e as Error).message)
  }
}

/**
 * A shared file (a shimmed program's memfd, by its /proc/PID/fd/N) mapped into hsmd:
 * its bytes are the program's bytes. Throws with `errno` when it cannot be mapped.
 * `sealed`: only a file sealed against shrinking (F_SEAL_SHRINK), which the program cannot
 * cut under hsmd's mapping (EPERM otherwise).
 */
export function mapSharedFile(
  path: string,
  offset: number,
  length: number,
  writable: boolean,
  options: { sealed?: boolean } = {},
): Backing {
  const a = memoryAddon()
  if (!a) throw Object.assign(new Error(`shared RAM unavailable: ${addonError}`), { errno: 38 })
  const m = a.mapFile(path, offset, length, writable, options.sealed ?? false)
  return { buffer: m.buffer, address: m.address, fd: undefined }
}

/** Give unreferenced pages back to the host (they read as zero if used again). */
export function discardPages(
  backing: Pick<Backing, 'buffer' | 'address'>,
  offset: number,
  length: number,
): void {
  if (backing.address === undefined || length === 0) return
  memoryAddon()?.discard(backing.buffer as ArrayBuffer, offset, length)
}
