// acrn-dm's guests run on the simulation (issue 11 item 3): ACRN's device model, unmodified,
// under `hsmctl sim exec`, loads an ELF guest of ours (-E) into its hugetlb RAM, which is
// the guest's RAM (no copy), and the guest's vCPU executes it on KVM: it writes to
// acrn-dm's COM1 (-l com1,stdio), reads acrn-dm's hostbridge through 0xCF8/0xCFC (HSM's
// PCI rules turn them into PCICFG requests, §4.6), and kicks a virtio-blk queue, whose
// notify port acrn-dm registered as an ioeventfd at DRIVER_OK (§5), so the kick never
// reaches acrn-dm's I/O client. A kill -9 of acrn-dm leaves its running VM orphaned in
// the hypervisor (§1.5).

import { rmSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  acrnDmMachineCannot,
  acrnDmSession,
  startAcrnDm,
  type RunningAcrnDm,
  endAcrnDm,
} from '../support/acrn-dm.js'
import { assembleElf32 } from '../support/assemble.js'
import { guestCodeUnavailable, PRINT_HEX } from '../support/guests.js'
import { hsmctl } from '../support/cli.js'
import type { Json } from '../support/hsmd-session.js'

const why = acrnDmMachineCannot ?? guestCodeUnavailable("acrn-dm's ELF guest")
if (acrnDmMachineCannot) console.warn(`skipping acrn-dm's guests: ${acrnDmMachineCannot}`)

/** Prints the hostbridge's IDs and virtio-blk's BAR0 in hex, kicks queue 0, prints K. */
const GUEST = `
_start:
	mov $0x10000, %esp
	mov $0x80000000, %eax      # 00:00.0 register 0: vendor and device
	call cfg_read
	call print_hex
	mov $0x80001810, %eax      # 00:03.0 register 0x10: BAR0 (I/O)
	call cfg_read
	and $0xfffffffc, %eax
	mov %eax, %ebx
	call print_hex
	mov $0x80001804, %eax      # command: I/O, memory and bus master on
	call cfg_read
	or $7, %eax
	mov %eax, %ecx
	mov $0xcf8, %dx
	mov $0x80001804, %eax
	out %eax, (%dx)
	mov $0xcfc, %dx
	mov %ecx, %eax
	out %eax, (%dx)
	lea 0x12(%ebx), %edx       # VIRTIO_PCI_STATUS: ACKNOWLEDGE | DRIVER | DRIVER_OK
	mov $7, %al
	out %al, (%dx)
	lea 0x10(%ebx), %edx       # VIRTIO_PCI_QUEUE_NOTIFY: queue 0
	xor %eax, %eax
	out %ax, (%dx)
	mov $0x3f8, %dx
	mov $'K', %al
	out %al, (%dx)
	mov $'\\n', %al
	out %al, (%dx)
1:	hlt
	jmp 1b

cfg_read:
	mov $0xcf8, %dx
	out %eax, (%dx)
	mov $0xcfc, %dx
	in (%dx), %eax
	ret

${PRINT_HEX}
`

describe.skipIf(why !== undefined)(
  `acrn-dm's ELF guest on KVM vCPUs${why ? ` (skipped: ${why})` : ''}`,
  () => {
    const session = acrnDmSession('acrn-dm-guest', (dir) => {
      writeFileSync(join(dir, 'guest.elf'), assembleElf32(GUEST))
      writeFileSync(join(dir, 'disk.img'), '')
      truncateSync(join(dir, 'disk.img'), 1 << 20)
    })
    const { dir, env } = session
    const args = (name: string) => [
      '-m',
      '128M',
      '--cpu_affinity',
      '1',
      '-s',
      '0:0,hostbridge',
      '-s',
      '1:0,lpc',
      '-s',
      '3:0,virtio-blk,iothread,disk.img',
      '-l',
      'com1,stdio',
      '-E',
      'guest.elf',
      name,
    ]
    const watchRows = (name: string): Record<string, Json> => {
      const r = hsmctl(['ioreq', 'watch', name, '--once', '--format', 'jsonl'], env)
      expect(r.code, r.stderr).toBe(0)
      return Object.fromEntries(
        r.stdout
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line) as Json)
          .map((row) => [row.key, row]),
      )
    }

    it('writes to its COM1, reads its hostbridge through 0xCF8/0xCFC, kicks a virtio queue into its ioeventfd', async (ctx) => {
      if (session.unavailable()) ctx.skip(session.unavailable())
      const dm: RunningAcrnDm = startAcrnDm(session.path(), args('dmguest'), { cwd: dir, env })
      try {
        await dm.until('K from the guest', () => /\nK\r?\n/.test(dm.output()))
        // acrn-dm's hostbridge is 1275:1275 (hw/pci/hostbridge.c); BAR0 is the I/O port it gave
        const printed = /([0-9a-f]{8})\r?\n([0-9a-f]{8})\r?\nK/.exec(dm.output())
        expect(printed, dm.output()).not.toBeNull()
        expect(printed![1]).toBe('12751275')
        const bar0 = Number.parseInt(printed![2]!, 16)
        expect(bar0).toBeGreaterThan(0)
        const rows = watchRows('dmguest')
        // acrn-dm's I/O client served the UART and config space; the kick went to the ioeventfd
        expect(rows['PIO 0x3f8 OUT']).toMatchObject({ count: 20, client: 'default' })
        expect(rows['PCICFG 00:00.0+0x0 R']).toMatchObject({ count: 1, client: 'default' })
        expect(rows['PCICFG 00:03.0+0x10 R']).toMatchObject({ count: 1, client: 'default' })
        expect(rows['PCICFG 00:03.0+0x4 W']).toMatchObject({ count: 1, client: 'default' })
        const kick = `PIO 0x${(bar0 + 0x10).toString(16)} OUT`
        expect(rows[kick], JSON.stringify(rows)).toMatchObject({ count: 1, client: 'ioeventfd' })
        dm.child.kill('SIGINT')
        expect(await dm.exited, dm.output()).toBe(0)
        expect(JSON.parse(hsmctl(['vm', 'list', '--json'], env).stdout)).toEqual([])
      } finally {
        await endAcrnDm(dm) // acrn-dm too, whatever failed above
      }
    }, 300_000)

    it('kill -9 of acrn-dm leaves its running VM orphaned in the hypervisor (§1.5)', async (ctx) => {
      if (session.unavailable()) ctx.skip(session.unavailable())
      const dm = startAcrnDm(session.path(), args('orphan'), { cwd: dir, env })
      await dm.until('K from the guest', () => /\nK\r?\n/.test(dm.output()))
      // hsmctl sim exec passes SIGKILL's effect on: kill acrn-dm itself, not hsmctl
      const holder = (JSON.parse(hsmctl(['vm', 'list', '--json'], env).stdout) as Json[]).find(
        (v) => v.name === 'orphan',
      ).holder as string
      const pid = Number(/pid (\d+)/.exec(holder)![1])
      process.kill(pid, 'SIGKILL')
      expect(await dm.exited).toBe(137)
      // a crash leaves acrn-dm's monitor socket behind (acrn-dm/README.md): not ours to keep
      rmSync(`/run/acrn/mngr/orphan.monitor.${pid}.socket`, { force: true })
      // the fd closed with the VM running: DESTROY_VM failed, the VM lives on with no holder
      const vm = (JSON.parse(hsmctl(['vm', 'list', '--json'], env).stdout) as Json[]).find(
        (v) => v.name === 'orphan',
      )
      expect(vm).toMatchObject({ state: 'running', vcpus: 1 })
      expect(vm.holder).toBeUndefined()
    }, 300_000)
  },
)
