// acrn-dm's device models drive a guest with interrupts (issue 11 item 4): ACRN's device
// model, unmodified, under `hsmctl sim exec`, runs an ELF guest of ours that
// - programs acrn-dm's PIT (0x40-0x43) as a 100 Hz rate generator and takes its ticks: each
//   expiry is a GSI_RAISING_PULSE on GSI 2 (hw/platform/pit.c), a SET_IRQLINE (§7.1) that
//   the simulated hypervisor delivers through the vCPU's IOAPIC pin 2 and LAPIC;
// - reads acrn-dm's RTC/CMOS (0x70/0x71): the date, and the RAM size acrn-dm wrote to CMOS
//   0x34/0x35, then takes its periodic interrupt on GSI 8, which acrn-dm holds high
//   (GSI_SET_HIGH) until register C is read (hw/platform/rtc.c);
// - sends a string through acrn-dm's UART with the THRE interrupt enabled (IER bit 1):
//   acrn-dm pulses GSI 4 whenever an interrupt is pending after a register access
//   (hw/uart_core.c, hw/pci/lpc.c), and reading IIR acknowledges it.
// The guest prints one marker per tick; the test checks the counts in acrn-dm's stdout, in
// `ioreq watch`, and the hypervisor's line assertions (`vm show`). Every count is exact
// except the PIT's assertions: a periodic timer may fire again between the guest's last
// tick and its stopping the counter, or twice while one tick waits (an edge-triggered
// line coalesces), so the hypervisor saw at least as many as the guest took.

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { acrnDmMachineCannot, acrnDmSession, startAcrnDm, endAcrnDm } from '../support/acrn-dm.js'
import { assembleElf32 } from '../support/assemble.js'
import { hsmctl } from '../support/cli.js'
import {
  guestCodeUnavailable,
  IRQ_RETURN,
  LAPIC_EOI,
  LAPIC_ON,
  MASK_PIC,
  PIC_EOI,
  ioapicRoute,
  picInit,
  prot32,
} from '../support/guests.js'
import type { Json } from '../support/hsmd-session.js'

const why = acrnDmMachineCannot ?? guestCodeUnavailable("acrn-dm's interrupt guests")
if (acrnDmMachineCannot) console.warn(`skipping acrn-dm's interrupt guests: ${acrnDmMachineCannot}`)

/** Ticks the guest takes from each timer. */
const TICKS = 10
/** What the guest sends through the THRE interrupt, one character per interrupt. */
const MESSAGE = 'sent by THRE'
/** Everything the guest prints, in order ({date}, {cmos}: what it read from the RTC). */
const PRINTED = {
  date: '[DATE ',
  cmos: ']\n[CMOS ',
  pit: ']\n[PIT ',
  rtc: ']\n[RTC ',
  uart: ']\n[UART ',
  end: ']\nEND\n',
}
const asciz = (s: string) => `.asciz "${s.replace(/\n/g, '\\n')}"`

/** RTC/CMOS register `reg` read through 0x70/0x71, printed as two hex digits. */
const cmosHex = (reg: number) => `	mov $0x${reg.toString(16)}, %al\n	call cmos_hex`

const GUEST = `_start:
${prot32(
  `
	mov $0x3fb, %dx            # UART LCR: 8 data bits, no parity, 1 stop bit
	mov $0x03, %al
	out %al, (%dx)
	mov $0x3fc, %dx            # MCR: DTR, RTS and OUT2, which gates a PC UART's interrupt
	mov $0x0b, %al
	out %al, (%dx)
	mov $s_date, %esi          # the RTC's date in BCD: century, year, month, day
	call out_str
${cmosHex(0x32)}
${cmosHex(0x09)}
${cmosHex(0x08)}
${cmosHex(0x07)}
	mov $s_cmos, %esi          # RAM above 16 MiB in 64 KiB units, as acrn-dm wrote it
	call out_str
${cmosHex(0x35)}
${cmosHex(0x34)}
${LAPIC_ON}
${ioapicRoute(2, 0x30)}
${ioapicRoute(8, 0x38)}
${ioapicRoute(4, 0x34)}
${MASK_PIC}
	mov $s_pit, %esi
	call out_str
	mov $0x34, %al             # PIT counter 0: LSB then MSB, mode 2 (rate generator)
	out %al, $0x43
	mov $0x9c, %al             # 11932 = 0x2e9c: 100 Hz
	out %al, $0x40
	mov $0x2e, %al
	out %al, $0x40
	sti                        # the rest happens in the handlers
	jmp halt_forever

cmos_hex:
	out %al, $0x70
	in $0x71, %al
	mov %al, %bl
	shr $4, %al
	call hex_digit
	mov %bl, %al
	and $0xf, %al
hex_digit:
	add $'0', %al
	cmp $'9', %al
	jbe putc
	add $('a' - '9' - 1), %al
putc:
	mov $0x3f8, %dx
	out %al, (%dx)
	ret

pit_ticks: .long 0
rtc_ticks: .long 0
uart_next: .long 0
s_date: ${asciz(PRINTED.date)}
s_cmos: ${asciz(PRINTED.cmos)}
s_pit: ${asciz(PRINTED.pit)}
s_rtc: ${asciz(PRINTED.rtc)}
s_uart: ${asciz(PRINTED.uart)}
s_end: ${asciz(PRINTED.end)}
message: ${asciz(MESSAGE)}
`,
  {
    // PIT, IOAPIC pin 2
    0x30: `
	cmpl $${TICKS}, pit_ticks
	jae 9f                     # a tick that raced the stop: taken, not counted
	incl pit_ticks
	mov $'p', %al
	call putc
	cmpl $${TICKS}, pit_ticks
	jne 9f
	mov $0x30, %al             # counter 0 reprogrammed (mode 0, no count yet): acrn-dm stops its timer
	out %al, $0x43
	mov $s_rtc, %esi
	call out_str
	mov $0x0c, %al             # RTC register C read: no stale flags
	out %al, $0x70
	in $0x71, %al
	mov $0x0a, %al             # register A: dividers on, rate 10 (64 Hz)
	out %al, $0x70
	mov $0x2a, %al
	out %al, $0x71
	mov $0x0b, %al             # register B: 24-hour, periodic interrupt enabled
	out %al, $0x70
	mov $0x42, %al
	out %al, $0x71
9:
${LAPIC_EOI}
${IRQ_RETURN}`,
    // RTC, IOAPIC pin 8
    0x38: `
	cmpl $${TICKS - 1}, rtc_ticks
	jne 1f
	mov $0x0b, %al             # the last tick: periodic interrupt off before C is read, so none follows
	out %al, $0x70
	mov $0x02, %al
	out %al, $0x71
1:	mov $0x0c, %al             # reading register C lowers IRQ 8
	out %al, $0x70
	in $0x71, %al
	incl rtc_ticks
	mov $'r', %al
	call putc
	cmpl $${TICKS}, rtc_ticks
	jne 9f
	mov $s_uart, %esi
	call out_str
	movl $message, uart_next
	mov $0x3f9, %dx            # IER: THRE interrupt on; acrn-dm raises it at once
	mov $0x02, %al
	out %al, (%dx)
9:
${LAPIC_EOI}
${IRQ_RETURN}`,
    // UART, IOAPIC pin 4
    0x34: `
	mov $0x3fa, %dx            # IIR: reading it acknowledges the THRE interrupt
	in (%dx), %al
	and $0x0f, %al
	cmp $0x02, %al
	jne 9f
	mov uart_next, %esi
	lodsb
	test %al, %al
	jz 1f
	mov %esi, uart_next
	mov $0x3f8, %dx            # the next character; its THRE interrupt follows
	out %al, (%dx)
	jmp 9f
1:	mov $0x3f9, %dx            # all sent: IER 0
	xor %al, %al
	out %al, (%dx)
	mov $s_end, %esi
	call out_str
9:
${LAPIC_EOI}
${IRQ_RETURN}`,
  },
)}`

/**
 * The PIT's ticks through the 8259 at IRQ 0, no IOAPIC: GSI 2 drives vPIC pin 0 (§7.1;
 * hypercall.c, hcall_set_irqline: "IRQ line for 8254 timer is connected to I/O APIC pin
 * #2 but PIC pin #0"), not pin 2, where the slave 8259 cascades.
 */
const PIC_GUEST = `_start:
${prot32(
  `${picInit(0x30, [0])}
	mov $s_pic, %esi
	call out_str
	mov $0x34, %al             # PIT counter 0: rate generator, 100 Hz
	out %al, $0x43
	mov $0x9c, %al
	out %al, $0x40
	mov $0x2e, %al
	out %al, $0x40
	sti
	jmp halt_forever
pic_ticks: .long 0
s_pic: ${asciz('[PIC ')}
s_end: ${asciz(PRINTED.end)}
`,
  {
    0x30: `
	cmpl $${TICKS}, pic_ticks
	jae 9f
	incl pic_ticks
	mov $0x3f8, %dx
	mov $'i', %al
	out %al, (%dx)
	cmpl $${TICKS}, pic_ticks
	jne 9f
	mov $0x30, %al             # stop counter 0
	out %al, $0x43
	mov $s_end, %esi
	call out_str
9:
${PIC_EOI}
${IRQ_RETURN}`,
  },
)}`

describe.skipIf(why !== undefined)(
  `acrn-dm's PIT, RTC and UART interrupts on KVM vCPUs${why ? ` (skipped: ${why})` : ''}`,
  () => {
    const session = acrnDmSession('acrn-dm-irq', (dir) => {
      writeFileSync(join(dir, 'guest.elf'), assembleElf32(GUEST))
      writeFileSync(join(dir, 'pic.elf'), assembleElf32(PIC_GUEST))
    })
    const { dir, env } = session

    /** acrn-dm with our ELF `elf` as VM `name`: the hostbridge, the LPC bridge and COM1 on stdio. */
    const start = (name: string, elf: string) =>
      startAcrnDm(
        session.path(),
        [
          ...['-m', '128M', '--cpu_affinity', '1', '-s', '0:0,hostbridge', '-s', '1:0,lpc'],
          ...['-l', 'com1,stdio', '-E', elf, name],
        ],
        { cwd: dir, env },
      )
    /** The hypervisor's lines of VM `name` (`vm show`): one pin of the vIOAPIC or vPIC. */
    const lines = (name: string) => {
      const show = hsmctl(['vm', 'show', name, '--json'], env)
      expect(show.code, show.stderr).toBe(0)
      const gsi = (JSON.parse(show.stdout) as Json).hypervisor.gsi as Json
      return (chip: 'ioapic' | 'pic', pin: number): Json =>
        (gsi[chip] as Json[]).find((l) => l.pin === pin) ?? { pin, level: 0, assertions: 0 }
    }

    it('counts PIT and RTC ticks and THRE-driven characters, in the output, the trace and the hypervisor', async (ctx) => {
      if (session.unavailable()) ctx.skip(session.unavailable())
      // acrn-dm's RTC keeps UTC from time(NULL); the run may straddle midnight
      const utcDate = () => new Date().toISOString().slice(0, 10).replace(/-/g, '')
      const dateBefore = utcDate()
      const dm = start('dmirq', 'guest.elf')
      try {
        await dm.until('END from the guest', () => /\nEND\r?\n/.test(dm.output()))
        const out = dm.output().replace(/\r\n/g, '\n')
        const printed = new RegExp(
          [PRINTED.date, PRINTED.cmos, PRINTED.pit, PRINTED.rtc, PRINTED.uart, PRINTED.end]
            .map((s) => s.replace(/[[\]]/g, '\\$&'))
            .join('(.*?)'),
          's',
        ).exec(out)
        expect(printed, out).not.toBeNull()
        const [, date, cmos, pit, rtc, uart] = printed!
        expect([dateBefore, utcDate()]).toContain(date)
        // (128 MiB - 16 MiB) / 64 KiB = 0x700 (hw/platform/rtc.c, vrtc_init)
        expect(cmos).toBe('0700')
        expect(pit).toBe('p'.repeat(TICKS))
        expect(rtc).toBe('r'.repeat(TICKS))
        expect(uart).toBe(MESSAGE)

        // The trace: every PIO access the guest made, counted by port, served by acrn-dm.
        // The 8259s, the IOAPIC and the LAPIC are the hypervisor's (A.4): none is a request.
        const r = hsmctl(['ioreq', 'watch', 'dmirq', '--once', '--format', 'jsonl'], env)
        expect(r.code, r.stderr).toBe(0)
        const rows = Object.fromEntries(
          r.stdout
            .trim()
            .split('\n')
            .map((line) => JSON.parse(line) as Json)
            .map((row) => [row.key, row.count as number]),
        )
        const chars = Object.values(PRINTED).join('').length + 8 + 4 + 2 * TICKS + MESSAGE.length
        expect(rows).toEqual({
          'PIO 0x3f8 OUT': chars,
          'PIO 0x3f9 OUT': 2, // IER on, off
          'PIO 0x3fa IN': MESSAGE.length + 1, // one IIR read per THRE interrupt
          'PIO 0x3fb OUT': 1,
          'PIO 0x3fc OUT': 1,
          'PIO 0x40 OUT': 2,
          'PIO 0x43 OUT': 2, // start, stop
          // 6 CMOS reads; C, A, B to start; C per tick; B off at the last
          'PIO 0x70 OUT': 6 + 3 + TICKS + 1,
          'PIO 0x71 IN': 6 + 1 + TICKS,
          'PIO 0x71 OUT': 3,
        })

        // The hypervisor's lines: GSI 2 also drives vPIC pin 0, GSIs 4 and 8 their own (§7.1)
        const line = lines('dmirq')
        const pitLine = line('ioapic', 2)
        expect(pitLine.level).toBe(0)
        expect(pitLine.assertions).toBeGreaterThanOrEqual(TICKS)
        expect(line('pic', 0)).toEqual({ ...pitLine, pin: 0 })
        // RTC: high from a period until C is read, and no period after the last read
        expect(line('ioapic', 8)).toEqual({ pin: 8, level: 0, assertions: TICKS })
        expect(line('pic', 8)).toEqual({ pin: 8, level: 0, assertions: TICKS })
        // UART: one pulse for IER on, one per character written
        expect(line('ioapic', 4)).toEqual({ pin: 4, level: 0, assertions: MESSAGE.length + 1 })
        expect(line('pic', 4)).toEqual({ pin: 4, level: 0, assertions: MESSAGE.length + 1 })

        // vm show of acrn-dm's VM: acrn-dm's side, and the hypervisor's view of the lines
        const text = hsmctl(['vm', 'show', 'dmirq'], env).stdout
        expect(text).toMatch(/^ {2}owner +.*acrn-dm/m)
        expect(text).toMatch(new RegExp(`^ {2}IOAPIC pin 8 +low +asserted ${TICKS}$`, 'm'))
        dm.child.kill('SIGINT')
        expect(await dm.exited, dm.output()).toBe(0)
      } finally {
        await endAcrnDm(dm) // acrn-dm too, whatever failed above
      }
    }, 300_000)

    it("takes the PIT's ticks through the 8259 at IRQ 0: GSI 2 drives vPIC pin 0 (§7.1)", async (ctx) => {
      if (session.unavailable()) ctx.skip(session.unavailable())
      const dm = start('dmpic', 'pic.elf')
      try {
        await dm.until('END from the guest', () => /\nEND\r?\n/.test(dm.output()))
        expect(dm.output().replace(/\r\n/g, '\n')).toContain(
          `[PIC ${'i'.repeat(TICKS)}${PRINTED.end}`,
        )
        const line = lines('dmpic')
        const pic0 = line('pic', 0)
        expect(pic0.assertions).toBeGreaterThanOrEqual(TICKS)
        expect(line('ioapic', 2)).toEqual({ ...pic0, pin: 2 })
        // nothing reached pin 2, where the slave cascades
        expect(line('pic', 2)).toEqual({ pin: 2, level: 0, assertions: 0 })
        dm.child.kill('SIGINT')
        expect(await dm.exited, dm.output()).toBe(0)
      } finally {
        await endAcrnDm(dm) // acrn-dm too, whatever failed above
      }
    }, 300_000)
  },
)
