// Guest code executes on the simulation (issue 10): payloads assembled from source at test
// time, loaded with `vm create --payload`, run by KVM vCPUs whose PIO and MMIO exits go
// through the hypervisor model's trap path (§4) to hsmd's default client, the kernel's
// ioeventfd client, or nobody; interrupts from the CLI reach them through the interrupt
// controllers (§7.1, §7.2). All through bin/run.js, as a user runs it.

import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { assemble } from '../support/assemble.js'
import {
  ENABLE_LAPIC,
  hello16,
  ioapicRoute,
  IRQ_RETURN,
  LAPIC_EOI,
  long64,
  MASK_PIC,
  prot32,
  guestCodeUnavailable,
} from '../support/guests.js'
import { hsmdSession, type Json } from '../support/hsmd-session.js'

const why = guestCodeUnavailable('guest code on KVM vCPUs')

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-guest-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function payload(name: string, source: string): string {
  const file = join(dir, `${name}.bin`)
  writeFileSync(file, assemble(source))
  return file
}

/** Poll (a hang guard, not a timing assertion) until `check` gives a value. */
async function until<T>(what: string, check: () => T | undefined): Promise<T> {
  const deadline = Date.now() + 90_000
  for (;;) {
    const value = check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

describe.skipIf(why !== undefined)(
  `guest code on KVM vCPUs${why ? ` (skipped: ${why})` : ''}`,
  () => {
    const s = hsmdSession('guest-code')
    const consoleOf = (name: string): string => s.json('vm', 'console', name).data
    const waitConsole = (name: string, text: string) =>
      until(`'${text}' on ${name}'s console`, () => {
        const c = consoleOf(name)
        return c.includes(text) ? c : undefined
      })
    const vcpu0 = (name: string): Json => s.json('vm', 'show', name).hypervisor.vcpus[0]

    it('daemon status says guest code executes on KVM', () => {
      expect(s.json('daemon', 'status').execution).toEqual({ engine: 'kvm' })
      expect(s.run('daemon', 'status').stdout).toMatch(/guest code\s+executes on kvm/)
    })

    it('a real-mode payload writes Hello to COM1, polling the LSR with IN', async () => {
      const file = payload('hello16', hello16())
      const r = s.run('vm', 'create', 'hello', '--memory', '1M', '--payload', file, '--start')
      expect(r.code, r.stderr).toBe(0)
      expect(await waitConsole('hello', 'Hello')).toBe('Hello')
      // each byte: an IN of the LSR, then an OUT, through the default client; and one IN before the NUL
      const v = await until('the vCPU to halt', () => {
        const v = vcpu0('hello')
        return v.execution.state === 'halted' ? v : undefined
      })
      expect(v.execution.exits.pio).toBe(11)
      // the trace saw each of them, by port and direction, handled by hsmd's default client
      const rows = s
        .run('ioreq', 'watch', 'hello', '--once', '--format', 'jsonl')
        .stdout.trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Json)
      expect(Object.fromEntries(rows.map((r) => [r.key, [r.count, r.client]]))).toEqual({
        'PIO 0x3fd IN': [6, 'default'],
        'PIO 0x3f8 OUT': [5, 'default'],
      })
      const shown = s.run('vm', 'show', 'hello').stdout
      // where the vCPU is: real mode, after its HLT (vm-sample's entry at GPA 0)
      expect(shown).toMatch(/vCPU 0 {2}halted {2}real mode, rip 0x[0-9a-f]+ {2}exits .*pio 11/)
      s.run('vm', 'destroy', 'hello', '--yes')
    })

    it('32-bit protected-mode and 64-bit long-mode entry states', async () => {
      const p32 = payload(
        'prot32',
        prot32(`	mov $msg, %esi\n	call out_str\n	jmp halt_forever\nmsg: .asciz "P32"`),
      )
      let r = s.run(
        'vm',
        'create',
        'p32',
        '--memory',
        '1M',
        '--payload',
        p32,
        '--entry',
        'protected-mode',
        '--start',
      )
      expect(r.code, r.stderr).toBe(0)
      expect(await waitConsole('p32', 'P32')).toBe('P32')
      const l64 = payload('long64', long64())
      r = s.run(
        'vm',
        'create',
        'l64',
        '--memory',
        '2M',
        '--payload',
        l64,
        '--entry',
        'long-mode',
        '--cr3',
        '0x1000',
        '--start',
      )
      expect(r.code, r.stderr).toBe(0)
      expect(await waitConsole('l64', 'L64')).toBe('L64')
      // vm show says each vCPU's mode and where it is: in its payload, after the HLT
      for (const [name, file, mode] of [
        ['p32', p32, 'protected'],
        ['l64', l64, 'long'],
      ] as const) {
        const v = await until(`${name}'s vCPU to halt`, () => {
          const v = vcpu0(name)
          return v.execution.state === 'halted' ? v : undefined
        })
        expect(v.execution.at.mode).toBe(mode)
        const rip = Number(BigInt(v.execution.at.rip as string))
        expect(rip).toBeGreaterThan(0)
        expect(rip).toBeLessThanOrEqual(statSync(file).size)
        expect(s.run('vm', 'show', name).stdout).toMatch(
          new RegExp(`vCPU 0 {2}halted {2}${mode} mode, rip 0x${rip.toString(16)} `),
        )
      }
      s.run('vm', 'destroy', 'p32', '--yes')
      s.run('vm', 'destroy', 'l64', '--yes')
    })

    it('an MMIO write to an ioeventfd address signals the eventfd; the default client sees nothing', async () => {
      const file = payload(
        'doorbell',
        prot32(
          `	movl $1, 0xfe000000\n	mov $done, %esi\n	call out_str\n	jmp halt_forever\ndone: .asciz "D"`,
        ),
      )
      expect(
        s.run(
          'vm',
          'create',
          'door',
          '--memory',
          '1M',
          '--payload',
          file,
          '--entry',
          'protected-mode',
        ).code,
      ).toBe(0)
      expect(s.run('ioeventfd', 'add', 'door', '--addr', '0xfe000000', '--len', '4').code).toBe(0)
      expect(s.run('vm', 'start', 'door').code).toBe(0)
      await waitConsole('door', 'D')
      const efds = s.json('ioeventfd', 'list', 'door')
      expect(efds.map((e: Json) => e.signals)).toEqual(['0x1'])
      const vm = s.json('vm', 'show', 'door')
      // the one MMIO exit went to the kernel's ioeventfd client; the default client had only the 'D'
      expect(vm.hypervisor.vcpus[0].execution.exits.mmio).toBe(1)
      expect(vm.clients.find((c: Json) => c.kind === 'default').handled).toBe(1)
      s.run('vm', 'destroy', 'door', '--yes')
    })

    it('an MSI from the CLI wakes the vCPU from HLT; its handler answers with an OUT', async () => {
      const file = payload(
        'msi',
        prot32(
          `${ENABLE_LAPIC}\n	mov $ready, %esi\n	call out_str\n	jmp halt_forever\nready: .asciz "R"`,
          {
            0x31: `	mov $0x3f8, %dx\n	mov $'M', %al\n	out %al, (%dx)\n${LAPIC_EOI}\n${IRQ_RETURN}`,
          },
        ),
      )
      expect(
        s.run(
          'vm',
          'create',
          'msi',
          '--memory',
          '1M',
          '--payload',
          file,
          '--entry',
          'protected-mode',
          '--start',
        ).code,
      ).toBe(0)
      await waitConsole('msi', 'R')
      await until('the vCPU to halt', () =>
        vcpu0('msi').execution.state === 'halted' ? true : undefined,
      )
      expect(s.run('irq', 'inject', 'msi', '--msi', '0xfee00000:0x31').code).toBe(0)
      expect(await waitConsole('msi', 'RM')).toBe('RM')
      expect(s.run('irq', 'inject', 'msi', '--msi', '0xfee00000:0x31').code).toBe(0)
      expect(await waitConsole('msi', 'RMM')).toBe('RMM')
      s.run('vm', 'destroy', 'msi', '--yes')
    })

    it('a GSI raised with irq inject --gsi reaches a handler through the IOAPIC', async () => {
      // IOAPIC pin 5 -> vector 0x35, edge, fixed, to APIC 0: redirection entry 0x10 + 2*5
      const file = payload(
        'gsi',
        prot32(
          `${ioapicRoute(5, 0x35)}\n${MASK_PIC}\n${ENABLE_LAPIC}\n	mov $ready, %esi\n	call out_str\n	jmp halt_forever\nready: .asciz "R"`,
          { 0x35: `	mov $0x3f8, %dx\n	mov $'G', %al\n	out %al, (%dx)\n${LAPIC_EOI}\n${IRQ_RETURN}` },
        ),
      )
      expect(
        s.run(
          'vm',
          'create',
          'gsi',
          '--memory',
          '1M',
          '--payload',
          file,
          '--entry',
          'protected-mode',
          '--start',
        ).code,
      ).toBe(0)
      await waitConsole('gsi', 'R')
      await until('the vCPU to halt', () =>
        vcpu0('gsi').execution.state === 'halted' ? true : undefined,
      )
      const r = s.run('irq', 'inject', 'gsi', '--gsi', '5', '--op', 'pulse-high')
      expect(r.code, r.stderr).toBe(0)
      expect(await waitConsole('gsi', 'RG')).toBe('RG')
      s.run('vm', 'destroy', 'gsi', '--yes')
    })

    it("GSIs 24-47: SET_IRQLINE succeeds as ACRN's would (48 vIOAPIC pins, A.3), the line is counted, vm show says KVM's 24-pin IOAPIC cannot deliver it", async () => {
      const file = payload(
        'gsi47',
        prot32(
          `${ENABLE_LAPIC}\n	mov $ready, %esi\n	call out_str\n	jmp halt_forever\nready: .asciz "R"`,
        ),
      )
      const created = s.run(
        'vm',
        'create',
        'gsi47',
        '--memory',
        '1M',
        '--payload',
        file,
        '--entry',
        'protected-mode',
        '--start',
      )
      expect(created.code, created.stderr).toBe(0)
      await waitConsole('gsi47', 'R')
      const r = s.run('irq', 'inject', 'gsi47', '--gsi', '47', '--op', 'pulse-high')
      expect(r.code, r.stderr).toBe(0)
      const hv = s.json('vm', 'show', 'gsi47').hypervisor
      expect(hv.executionError).toMatch(/^GSI 47 does not reach the guest: .* 24 pins/)
      const gsi = hv.gsi
      expect(gsi).toMatchObject({ gsiCount: 48, enginePins: 24 })
      expect(gsi.ioapic).toEqual([{ pin: 47, level: 0, assertions: 1 }])
      expect(s.run('vm', 'show', 'gsi47').stdout).toMatch(
        /^ {2}IOAPIC pin 47 +low +asserted 1 {2}\(not delivered: the CPU engine's IOAPIC has 24 pins\)$/m,
      )
      s.run('vm', 'destroy', 'gsi47', '--yes')
    })

    it('pause stops the vCPUs, reset returns them to the reset state, and start runs the payload again', async () => {
      const file = payload('again', hello16('A'))
      expect(
        s.run('vm', 'create', 'again', '--memory', '1M', '--payload', file, '--start').code,
      ).toBe(0)
      await waitConsole('again', 'A')
      const paused = s.run('vm', 'pause', 'again')
      expect(paused.code, paused.stderr).toBe(0)
      expect(vcpu0('again').execution.state).toBe('paused')
      expect(s.run('vm', 'reset', 'again', '--yes').code).toBe(0)
      expect(s.run('vm', 'regs', 'set', 'again', '--rip', '0').code).toBe(0)
      expect(s.run('vm', 'start', 'again').code).toBe(0)
      expect(await waitConsole('again', 'AA')).toBe('AA')
      s.run('vm', 'destroy', 'again', '--yes')
    })
  },
)

describe('without a CPU engine (HSMCTL_CPU=none, as on a host without /dev/kvm)', () => {
  const s = hsmdSession('no-cpu', { env: { HSMCTL_CPU: 'none' } })

  it('vm start, vm show and daemon status say in one line that guest code does not execute, and why', () => {
    expect(s.run('vm', 'create', 'idle', '--memory', '64K').code).toBe(0)
    const start = s.run('vm', 'start', 'idle')
    expect(start.code, start.stderr).toBe(0)
    expect(start.stderr).toContain(
      'note: vCPUs do not execute guest code: guest code execution is off (HSMCTL_CPU=none)',
    )
    expect(s.run('vm', 'show', 'idle').stdout).toMatch(
      /vCPUs\n {2}do not execute guest code: guest code execution is off \(HSMCTL_CPU=none\)/,
    )
    expect(s.json('daemon', 'status').execution).toEqual({
      reason: 'guest code execution is off (HSMCTL_CPU=none)',
    })
    // synthetic traffic works as before
    const r = s.run('guest', 'access', 'idle', '--pio', '0x3f8', '--write', '0x41', '--size', '1')
    expect(r.code, r.stderr).toBe(0)
    expect(s.json('vm', 'console', 'idle').data).toBe('A')
  })
})
