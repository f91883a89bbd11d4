// Guest payloads of the tests that run guest code (issue 10), as GNU as source: assembled
// at test time by assemble.ts, loaded at GPA 0, entered in the state each names; and
// whether guest code can run here at all.

import { existsSync } from 'node:fs'
import { kvmEngine } from '../../src/core/sim/hypervisor/cpu/kvm.js'
import { allocateBacking } from '../../src/core/sim/kernel/shared-memory.js'
import { assemblerUnavailable } from './assemble.js'

/**
 * Why guest code cannot run on this machine (no usable /dev/kvm, an addon not built, no
 * assembler), or undefined. Said on stderr once per test file. A CI machine that has
 * /dev/kvm must run these tests: there the reason is an error, not a skip.
 */
export function guestCodeUnavailable(what: string): string | undefined {
  const found = kvmEngine()
  const why =
    'reason' in found
      ? found.reason
      : (assemblerUnavailable ??
        (allocateBacking(4096).address === undefined
          ? 'guest RAM is not shared memory here (build/hsm_memory.node is not built)'
          : undefined))
  if (!why) return undefined
  if (process.env.HSMCTL_CI === '1' && existsSync('/dev/kvm'))
    throw new Error(`HSMCTL_CI=1: ${what} cannot run although /dev/kvm exists: ${why}`)
  console.warn(`skipping ${what}: ${why}`)
  return why
}

/** Real mode at GPA 0 (vm-sample's entry state): `text` to COM1, each byte once the LSR says the transmitter is empty. */
export function hello16(text = 'Hello'): string {
  return `
.code16
	mov $msg, %si
next:
	mov $0x3fd, %dx
wait:
	in (%dx), %al
	test $0x20, %al
	jz wait
	mov $0x3f8, %dx
	cs lodsb
	test %al, %al
	jz done
	out %al, (%dx)
	jmp next
done:
	hlt
	jmp done
msg:
	.asciz "${text}"
`
}

/**
 * 32-bit protected mode entered flat at GPA 0 (the protected-mode preset: CS 0x10, data
 * 0x18, paging off): our own GDT with those selectors, a stack at 64 KiB, an IDT whose
 * vectors 0x30-0x3f go to `irq_VV` labels the body may define (`handlers`), then `body`.
 * `out_str` prints the NUL-terminated string at %esi to COM1.
 */
export function prot32(body: string, handlers: Record<number, string> = {}): string {
  const vectors = Object.keys(handlers).map(Number)
  return `
.code32
	lgdt gdt_desc
	ljmp $0x10, $1f
1:	mov $0x18, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov $0x10000, %esp
${vectors
  .map(
    (v) => `	mov $irq_${v.toString(16)}, %eax
	mov %ax, idt + ${v * 8}
	movw $0x10, idt + ${v * 8 + 2}
	movw $0x8e00, idt + ${v * 8 + 4}
	shr $16, %eax
	mov %ax, idt + ${v * 8 + 6}`,
  )
  .join('\n')}
	lidt idt_desc
${body}
halt_forever:
	hlt
	jmp halt_forever

out_str:
	mov $0x3f8, %dx
1:	lodsb
	test %al, %al
	jz 2f
	out %al, (%dx)
	jmp 1b
2:	ret

${vectors.map((v) => `irq_${v.toString(16)}:\n${handlers[v]}`).join('\n')}

.balign 8
gdt:
	.quad 0
	.quad 0
	.quad 0x00cf9b000000ffff
	.quad 0x00cf93000000ffff
gdt_end:
gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt
idt_desc:
	.word 256 * 8 - 1
	.long idt
.balign 8
idt:
	.fill 256 * 8, 1, 0
`
}

/** Software-enable the local APIC (SVR bit 8, spurious vector 0xff), interrupts still off. */
export const LAPIC_ON = `
	movl $0x1ff, 0xfee000f0`

/** Software-enable the local APIC and take interrupts. */
export const ENABLE_LAPIC = `${LAPIC_ON}
	sti`

/**
 * Route IOAPIC `pin` (at 0xfec00000, where ACRN's vIOAPIC and KVM's are) to `vector`:
 * fixed delivery to APIC ID 0 in physical mode, active high, unmasked; edge-triggered
 * unless `level`. Redirection entry `pin` is registers 0x10 + 2 * pin (low) and the next
 * (high, the destination), written high first so the entry is complete when unmasked.
 */
export function ioapicRoute(pin: number, vector: number, { level = false } = {}): string {
  const low = vector | (level ? 0x8000 : 0)
  return `
	movl $0x${(0x11 + 2 * pin).toString(16)}, 0xfec00000
	movl $0, 0xfec00010
	movl $0x${(0x10 + 2 * pin).toString(16)}, 0xfec00000
	movl $0x${low.toString(16)}, 0xfec00010`
}

/**
 * Mask both 8259s, as an APIC guest does: a GSI below 16 drives the vPIC too (A.3), and
 * an uninitialised PIC would deliver it through LINT0 (ExtINT) at vector 0-15.
 */
export const MASK_PIC = `
	mov $0xff, %al
	out %al, $0x21
	out %al, $0xa1`

/**
 * Initialise both 8259s as a PC's (ICW1-4: edge, cascade on master IRQ 2, 8086 mode) with
 * IRQs 0-7 at vectors `base`..`base`+7 and 8-15 at `base`+8.., and mask all IRQs but
 * `unmasked` (a slave IRQ needs 2 too). The LAPIC is left as it is: at reset ExtINT reaches the BSP through LINT0
 * (KVM) or directly (ACRN's vPIC in "INTR" wire mode).
 */
export function picInit(base: number, unmasked: readonly number[]): string {
  const mask = (lo: number) =>
    0xff & ~unmasked.filter((i) => i >= lo && i < lo + 8).reduce((m, i) => m | (1 << (i - lo)), 0)
  return `
	mov $0x11, %al
	out %al, $0x20
	out %al, $0xa0
	mov $0x${base.toString(16)}, %al
	out %al, $0x21
	mov $0x${(base + 8).toString(16)}, %al
	out %al, $0xa1
	mov $0x04, %al
	out %al, $0x21
	mov $0x02, %al
	out %al, $0xa1
	mov $0x01, %al
	out %al, $0x21
	out %al, $0xa1
	mov $0x${mask(0).toString(16)}, %al
	out %al, $0x21
	mov $0x${mask(8).toString(16)}, %al
	out %al, $0xa1`
}

/** A 32-bit subroutine: `call print_hex` writes %eax as 8 hex digits and a newline on COM1. */
export const PRINT_HEX = `print_hex:                     # %eax as 8 hex digits and a newline on COM1
	push %ebx
	mov %eax, %ebx
	mov $8, %ecx
	mov $0x3f8, %dx
2:	rol $4, %ebx
	mov %ebx, %eax
	and $0xf, %eax
	cmp $10, %al
	jb 3f
	add $('a' - 10 - '0'), %al
3:	add $'0', %al
	out %al, (%dx)
	loop 2b
	mov $'\\n', %al
	out %al, (%dx)
	pop %ebx
	ret`

/** Non-specific end of interrupt to the master 8259. */
export const PIC_EOI = `	mov $0x20, %al
	out %al, $0x20`

/** End of interrupt to the local APIC. */
export const LAPIC_EOI = `	movl $0, 0xfee000b0`

/**
 * How a prot32 handler returns to the HLT loop: the interrupt frame dropped, interrupts
 * on again. Not IRET: KVM-PVM (the software nested KVM of these CI machines) emulates
 * guest instructions with KVM's emulator, which has no protected-mode IRET ("instruction
 * emulation failed"); with hardware virtualization IRET runs natively. Interrupts here
 * only ever arrive in the HLT loop, so nothing else is lost.
 */
export const IRQ_RETURN = `	add $12, %esp
	sti
	jmp halt_forever`

/**
 * 64-bit long mode entered at GPA 0 with CR3 = 0x1000 (the long-mode preset): page tables
 * at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD, 2 MiB pages) identity-map the first 1 GiB.
 * Prints `text` to COM1.
 */
export function long64(text = 'L64'): string {
  return `
.code64
	lea msg(%rip), %rsi
	mov $0x3f8, %dx
1:	lodsb
	test %al, %al
	jz 2f
	out %al, (%dx)
	jmp 1b
2:	hlt
	jmp 2b
msg:	.asciz "${text}"
.org 0x1000
	.quad 0x2003
.org 0x2000
	.quad 0x3003
.org 0x3000
${Array.from({ length: 512 }, (_, i) => `	.quad 0x${(i * 0x200000 + 0x83).toString(16)}`).join('\n')}
`
}
