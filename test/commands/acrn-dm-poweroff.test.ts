// A guest's power-off ends acrn-dm and its VM (issue 11 item 5: how Linux's `poweroff`
// ends a boot). On ACRN the PM1a control register of a post-launched VM that is not an RTVM
// is acrn-dm's: the hypervisor intercepts it only for the Service VM, RTVMs and pre-launched
// VMs (hypervisor/arch/x86/guest/pm.c, init_guest_pm), so the guest's write to
// VIRTUAL_PM1A_CNT_ADDR 0x404 (hypervisor/include/public/acrn_common.h) is an I/O request
// to acrn-dm's client. acrn-dm (devicemodel/arch/x86/pm.c, pm1_control_handler) takes a
// 2-byte write with SLP_EN (0x2000) and SLP_TYP 5, the value of its own DSDT's \_S5, as a
// soft power-off: vm_suspend(POWEROFF), its loop ends, it destroys the VM and exits 0.
// Linux does the same through ACPI (acpi_enter_sleep_state(ACPI_STATE_S5)).

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { acrnDmMachineCannot, acrnDmSession, endAcrnDm, startAcrnDm } from '../support/acrn-dm.js'
import { assembleElf32 } from '../support/assemble.js'
import { hsmctl } from '../support/cli.js'
import { guestCodeUnavailable } from '../support/guests.js'
import type { Json } from '../support/hsmd-session.js'

const why = acrnDmMachineCannot ?? guestCodeUnavailable("acrn-dm's power-off guest")
if (acrnDmMachineCannot) console.warn(`skipping acrn-dm's power-off: ${acrnDmMachineCannot}`)

/** `S` on COM1, then PM1a_CNT: first a write without SLP_EN, then SLP_TYP `typ` | SLP_EN. */
const guest = (typ: number) => `
_start:
	mov $0x3f8, %dx
	mov $'S', %al
	out %al, (%dx)
	mov $0x404, %dx
	mov $${typ << 10}, %ax     # SLP_TYP alone: no transition
	out %ax, (%dx)
	in (%dx), %ax              # read back: SLP_TYP kept, SLP_EN write-only
	mov %ax, %bx
	mov $0x3f8, %dx
	mov %bh, %al               # (typ << 10) >> 8, as a character: '0' + typ * 4
	add $'0', %al
	out %al, (%dx)
	mov $'\\n', %al
	out %al, (%dx)
	mov $0x404, %dx
	mov $${(typ << 10) | 0x2000}, %ax
	out %ax, (%dx)
	mov $0x3f8, %dx
	mov $'A', %al              # only if the VM still runs
	out %al, (%dx)
1:	hlt
	jmp 1b
`

describe.skipIf(why !== undefined)(
  `a guest's power-off through acrn-dm's PM1a control port${why ? ` (skipped: ${why})` : ''}`,
  () => {
    const session = acrnDmSession('acrn-dm-poweroff', (dir) => {
      writeFileSync(join(dir, 's5.elf'), assembleElf32(guest(5)))
      writeFileSync(join(dir, 's1.elf'), assembleElf32(guest(1)))
    })
    const { dir, env } = session
    const run = (name: string, elf: string) =>
      startAcrnDm(
        session.path(),
        [
          ...['-m', '128M', '--cpu_affinity', '1', '-s', '0:0,hostbridge', '-s', '1:0,lpc'],
          ...['-l', 'com1,stdio', '-E', elf, name],
        ],
        { cwd: dir, env },
      )

    it('SLP_TYP 5 with SLP_EN (S5) powers the VM off: acrn-dm exits 0 by itself and its VM is gone', async (ctx) => {
      if (session.unavailable()) ctx.skip(session.unavailable())
      const dm = run('dms5', 's5.elf')
      try {
        const status = await Promise.race([
          dm.exited,
          new Promise<'hang'>((r) => setTimeout(() => r('hang'), 120_000)),
        ])
        const out = dm.output().replace(/\r/g, '')
        expect(status, out).toBe(0)
        // 5 << 10 read back, high byte 0x14: '0' + 0x14 is 'D'
        expect(out).toMatch(/^SD$/m)
        expect(out).not.toMatch(/SD\nA/)
        expect(out).toContain('VM state changed from[ RUNNING ] to [ POWEROFF ]')
        const list = JSON.parse(hsmctl(['vm', 'list', '--json'], env).stdout) as Json[]
        expect(list.map((v) => v.name)).not.toContain('dms5')
      } finally {
        await endAcrnDm(dm)
      }
    }, 300_000)

    it('another SLP_TYP (1) with SLP_EN is no power-off: the guest runs on', async (ctx) => {
      if (session.unavailable()) ctx.skip(session.unavailable())
      const dm = run('dms1', 's1.elf')
      try {
        await dm.until("the guest's A after its write", () => /S4\r?\nA/.test(dm.output()))
        const rows = Object.fromEntries(
          hsmctl(['ioreq', 'watch', 'dms1', '--once', '--format', 'jsonl'], env)
            .stdout.trim()
            .split('\n')
            .map((l) => JSON.parse(l) as Json)
            .map((r) => [r.key, r.count]),
        )
        // both writes and the read reached acrn-dm as requests (not the hypervisor's)
        expect(rows).toMatchObject({ 'PIO 0x404 OUT': 2, 'PIO 0x404 IN': 1 })
        dm.child.kill('SIGINT')
        expect(await dm.exited, dm.output()).toBe(0)
      } finally {
        await endAcrnDm(dm)
      }
    }, 300_000)
  },
)
