// Process mappings of the simulated Service VM are real shared memory (issue 10): a memfd
// mapped in hsmd, so KVM and a shimmed program can share the very pages; a file another
// process shares (its /proc/PID/fd/N) maps the same bytes with no copy.

import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  memoryAddonPath,
  sharedMemoryStatus,
} from '../../../../src/core/sim/kernel/shared-memory.js'
import { createSimPlatform } from '../../../../src/index.js'

const built = existsSync(memoryAddonPath())
// The addon is built by `make -C helper` wherever Node.js's headers are (setup.sh).
const why = built ? '' : ` (skipped: ${memoryAddonPath()} is not built)`
if (!built && process.env.HSMCTL_CI === '1') throw new Error(`HSMCTL_CI=1:${why}`)

/** The fds of this process that are RAM memfds of the simulation. */
function ramMemfds(): string[] {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith('/memfd:hsmctl-ram')
    } catch {
      return false
    }
  })
}

describe.skipIf(!built)(`shared RAM${why}`, () => {
  it('backs a mapping with a memfd: a second mapping of its file sees each write at once', async () => {
    expect(sharedMemoryStatus()).toEqual({ shared: true })
    const before = new Set(ramMemfds())
    const proc = createSimPlatform().spawn()
    const at = await proc.mmap(8192)
    const view = proc.view(at, 8192)!
    const memfd = ramMemfds().find((fd) => !before.has(fd))
    expect(memfd).toBeDefined()
    // Mapped again the way a shimmed program's RAM file is: by /proc/PID/fd/N.
    const other = createSimPlatform().spawn()
    const there = await other.mmapFile(`/proc/self/fd/${memfd!}`, 0, 8192)
    const otherView = other.view(there, 8192)!
    view[4100] = 0x5a
    expect(otherView[4100]).toBe(0x5a)
    otherView[17] = 0xa5
    expect(view[17]).toBe(0xa5)
  })

  it('refuses a file shorter than the range, a directory and a planted link, with the errno', async () => {
    const proc = createSimPlatform().spawn()
    const dir = mkdtempSync('/tmp/hsmctl-shm-')
    try {
      writeFileSync(`${dir}/f`, Buffer.alloc(4096))
      symlinkSync(`${dir}/f`, `${dir}/link`)
      await expect(proc.mmapFile(`${dir}/f`, 0, 8192)).rejects.toMatchObject({ code: 'EINVAL' })
      await expect(proc.mmapFile(dir, 0, 4096)).rejects.toMatchObject({ code: 'EISDIR' })
      await expect(proc.mmapFile(`${dir}/link`, 0, 4096)).rejects.toMatchObject({ code: 'ELOOP' })
      const at = await proc.mmapFile(`${dir}/f`, 0, 4096)
      proc.view(at, 4096)![0] = 7
    } finally {
      rmSync(dir, { recursive: true })
    }
  })
})
