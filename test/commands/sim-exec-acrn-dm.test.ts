// ACRN's own device model, acrn-dm (built from ../shared/acrn-dm by scripts/build-acrn-dm.js,
// cached in .cache/acrn-dm), run unmodified through `hsmctl sim exec` as the README shows:
// it finds the device by stat() (no file on the host), creates its VM, sets up RAM (its
// hugetlb memfd, shared with the guest: the ELF it loads is in guest RAM), its vCPU and its
// I/O client, starts the VM, serves a port write with its own UART, and on SIGINT shuts
// down cleanly, leaving no VM.
//
// acrn-dm needs root (it parses the host's MADT before anything else), the MADT itself,
// and its Debian packages (installed by its build.sh with apt-get). Without root or an
// MADT this machine cannot run it: the test says so and skips. Without apt-get it skips
// too, except under HSMCTL_CI=1, where it fails.

import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { acrnDmMachineCannot, acrnDmSession, startAcrnDm, endAcrnDm } from '../support/acrn-dm.js'
import { hsmctl } from '../support/cli.js'

const NAME = 'dmvm'

if (acrnDmMachineCannot) console.warn(`skipping acrn-dm under sim exec: ${acrnDmMachineCannot}`)

/**
 * A 32-bit ELF guest as acrn-dm's -E loader takes it (one PT_LOAD at 0x100000, entry in
 * protected mode): `mov $0x3f8,%dx; mov $'H',%al; out %al,(%dx); 1: hlt; jmp 1b`. Padded to
 * the 8 KiB acrn-dm reads at once (it warns when the file is shorter).
 */
function guestElf(): Buffer {
  const code = Buffer.from([0x66, 0xba, 0xf8, 0x03, 0xb0, 0x48, 0xee, 0xf4, 0xeb, 0xfd])
  const base = 0x100000
  const headers = 52 + 32
  const elf = Buffer.alloc(8192)
  elf.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1], 0) // ELF, 32-bit, little-endian, version 1
  elf.writeUInt16LE(2, 16) // ET_EXEC
  elf.writeUInt16LE(3, 18) // EM_386
  elf.writeUInt32LE(1, 20)
  elf.writeUInt32LE(base + headers, 24) // e_entry
  elf.writeUInt32LE(52, 28) // e_phoff
  elf.writeUInt16LE(52, 40) // e_ehsize
  elf.writeUInt16LE(32, 42) // e_phentsize
  elf.writeUInt16LE(1, 44) // e_phnum
  const ph = 52
  elf.writeUInt32LE(1, ph) // PT_LOAD
  elf.writeUInt32LE(0, ph + 4) // p_offset
  elf.writeUInt32LE(base, ph + 8) // p_vaddr
  elf.writeUInt32LE(base, ph + 12) // p_paddr
  elf.writeUInt32LE(headers + code.length, ph + 16) // p_filesz
  elf.writeUInt32LE(headers + code.length, ph + 20) // p_memsz
  elf.writeUInt32LE(7, ph + 24) // RWX
  elf.writeUInt32LE(0x1000, ph + 28)
  code.copy(elf, headers)
  return elf
}

describe.skipIf(acrnDmMachineCannot)('acrn-dm under hsmctl sim exec', () => {
  const session = acrnDmSession('acrn-dm', (dir) =>
    writeFileSync(join(dir, 'guest.elf'), guestElf()),
  )
  const { dir, env } = session

  it('reaches START_VM, serves a port write with its UART, and SIGINT leaves no VM', async (ctx) => {
    if (session.unavailable()) ctx.skip(session.unavailable())
    const dm = startAcrnDm(
      session.path(),
      [
        '-m',
        '128M',
        '--cpu_affinity',
        '1',
        '-s',
        '0:0,hostbridge',
        '-s',
        '1:0,lpc',
        '-l',
        'com1,stdio',
        '-E',
        'guest.elf',
        NAME,
      ],
      { cwd: dir, env },
    )
    const { child, exited } = dm
    const until = (what: string, ok: () => boolean) => dm.until(what, ok)
    try {
      // START_VM done: the daemon sees the VM running, held by acrn-dm
      let vm: { state: string; holder?: string; memory: string; vcpus: number } | undefined
      await until('running VM in `vm list`', () => {
        const list = hsmctl(['vm', 'list', '--json'], env)
        if (list.code !== 0) return false
        vm = (JSON.parse(list.stdout) as { name: string }[]).find((v) => v.name === NAME) as
          typeof vm | undefined
        return vm?.state === 'running'
      })
      expect(vm).toMatchObject({ memory: '0x8000000', vcpus: 1 })
      expect(vm!.holder).toMatch(/^pid \d+ \(acrn-dm\)$/)
      // its RAM (a hugetlb memfd) is the guest's, no copy: the ELF it loaded is there (§3.4 B)
      const code = hsmctl(
        ['guest', 'access', NAME, '--mmio', '0x100054', '--read', '--size', '4', '--json'],
        env,
      )
      expect(code.code, code.stderr).toBe(0)
      expect(JSON.parse(code.stdout).result).toBe('0x3f8ba66') // 66 ba f8 03: mov $0x3f8,%dx
      expect(dm.output()).not.toMatch(/hsm-shim: cannot share|could not map RAM/)
      // shared as the file it is, not copied into one of the shim's
      const maps = readFileSync(`/proc/${/\d+/.exec(vm!.holder!)![0]}/maps`, 'utf8')
      expect(maps).toMatch(/ rw-s .*\/memfd:acrn_memfd/)
      // and only its ioreq page (a buffer of acrn-dm's own) was made a shared mapping in
      // place, one page, which the kernel pins as well (§2.2)
      const converted = maps
        .split('\n')
        .filter((l) => l.includes('/memfd:hsm-shim-ram'))
        .map((l) =>
          l
            .split(' ')[0]!
            .split('-')
            .map((a) => parseInt(a, 16)),
        )
      expect(converted.map(([lo, hi]) => (hi! - lo!) / 4096)).toEqual([1])
      // its own UART (COM1 on stdio) prints what a vCPU writes to 0x3f8
      const before = dm.output().length
      const write = hsmctl(
        ['guest', 'access', NAME, '--pio', '0x3f8', '--write', '0x5a', '--size', '1'],
        env,
      )
      expect(write.code, write.stderr).toBe(0)
      await until("'Z' from its UART", () => dm.output().slice(before).includes('Z'))
      child.kill('SIGINT')
      expect(await exited, dm.output()).toBe(0)
      expect(dm.output()).toMatch(/Received SIGINT to terminate application/)
      const after = hsmctl(['vm', 'list', '--json'], env)
      expect(JSON.parse(after.stdout)).toEqual([])
    } finally {
      await endAcrnDm(dm) // acrn-dm too, whatever failed above
    }
  }, 300_000)
})
