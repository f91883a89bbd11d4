// The lifecycle verbs in every state a VM can be in (§2.5, the hypervisor's preconditions
// in Appendix A.3), and the hint under each refusal checked against that state: `vm start`
// on a running VM says it is already running, not how to resume a paused one.

import { beforeAll, describe, expect, it } from 'vitest'
import { expectRefusal, hsmdSession } from '../support/hsmd-session.js'

const s = hsmdSession('hints')

const state = (name: string) => s.vm(name).state as string
/** A verb that must succeed, leaving the VM in `after`. */
const ok = (after: string, ...args: string[]) => {
  const r = s.run(...args)
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0)
  expect(state(args[2]!)).toBe(after)
}
/** The hint line of a refusal. */
const hint = (r: { stderr: string }) => r.stderr.split('\n').find((l) => l.startsWith('Hint: '))

beforeAll(() => {
  for (const name of ['a', 'b', 'c']) ok('created', 'vm', 'create', name, '--memory', '1M')
})

describe('a created VM', () => {
  it('reset is refused: it is in its reset state already (not "pause it first")', async () => {
    const before = await s.snapshot('a')
    const r = s.run('vm', 'reset', 'a', '--yes')
    expectRefusal(r, 'RESET_VM', 'EPERM', "'a' has not run since it was created or reset")
    expect(hint(r)).not.toMatch(/vm pause/)
    expect(await s.snapshot('a')).toEqual(before)
  })

  it('registers the hypervisor refuses: the reason is not the VM running', () => {
    const r = s.run('vm', 'regs', 'set', 'c', '--cr0', '0x80000000')
    expectRefusal(r, 'SET_VCPU_REGS', 'EPERM', 'valid CR0/CR4')
    expect(hint(r)).not.toMatch(/pause/)
  })

  it('a device at a taken virtual BDF: the BDF is the reason, not the state', () => {
    ok('created', 'ptdev', 'assign', 'c', '--phys', '00:14.0', '--virt', '00:03.0')
    const r = s.run('ptdev', 'assign', 'c', '--phys', '00:17.0', '--virt', '00:03.0')
    expectRefusal(r, 'ASSIGN_PCIDEV', 'EINVAL', 'that virtual BDF is taken')
    expect(hint(r)).not.toMatch(/created VM/)
  })

  it('an MMIO device outside every host one: the resources are the reason', () => {
    const r = s.run(
      ...['mmiodev', 'assign', 'c', '--dev-name', 'X'],
      ...['--res', '0xe0000000:0xe0000000:0x1000'],
    )
    expectRefusal(r, 'ASSIGN_MMIODEV', 'EINVAL', 'inside a host MMIO device')
    expect(hint(r)).not.toMatch(/created VM/)
  })

  it('start runs it', () => ok('running', 'vm', 'start', 'a'))
})

describe('a running VM', () => {
  it('start is refused: it is already running (not "a paused VM does not resume")', async () => {
    const before = await s.snapshot('a')
    const r = s.run('vm', 'start', 'a')
    expectRefusal(r, 'START_VM', 'EPERM', "'a' is already running")
    expect(hint(r)).not.toMatch(/paused/)
    expect(await s.snapshot('a')).toEqual(before)
  })

  it('registers are refused while it runs: pause it first', () => {
    const r = s.run('vm', 'regs', 'set', 'a', '--rip', '0x1000')
    expectRefusal(r, 'SET_VCPU_REGS', 'EPERM', 'pause the VM first (`hsmctl vm pause a`)')
  })

  it.each([
    [['ptdev', 'assign', 'a', '--phys', '00:17.0'], 'ASSIGN_PCIDEV'],
    [
      ['mmiodev', 'assign', 'a', '--dev-name', 'INT34BB', '--res', '0xfd6a0000:0xfd6a0000:0x10000'],
      'ASSIGN_MMIODEV',
    ],
  ])('%j is refused: devices go to a created VM only', (args, request) => {
    const r = s.run(...args)
    expectRefusal(r, request, 'EINVAL', "'a' is running: ")
    expect(hint(r)).toContain('only to a created VM (before `vm start`)')
    expect(hint(r)).not.toMatch(/free virtual BDF|4 KiB-aligned/)
  })

  it('pause pauses it', () => ok('paused', 'vm', 'pause', 'a'))

  it('reset pauses it first and takes it to created (as acrn-dm does)', () => {
    ok('running', 'vm', 'start', 'b')
    ok('created', 'vm', 'reset', 'b', '--yes')
  })

  it('destroy pauses it first and destroys it', () => {
    ok('running', 'vm', 'start', 'b')
    expect(s.run('vm', 'destroy', 'b', '--yes').code).toBe(0)
    expect(s.vms().map((v: { name: string }) => v.name)).not.toContain('b')
  })
})

describe('a paused VM', () => {
  it('start is refused: a paused VM does not resume, reset it', async () => {
    const before = await s.snapshot('a')
    const r = s.run('vm', 'start', 'a')
    expectRefusal(r, 'START_VM', 'EPERM', "'a' is paused, and a paused VM does not resume")
    expect(hint(r)).toContain('`hsmctl vm reset a --yes`')
    expect(await s.snapshot('a')).toEqual(before)
  })

  it('registers the hypervisor refuses: the reason is not the VM running', () => {
    const r = s.run('vm', 'regs', 'set', 'a', '--cr0', '0x80000000')
    expectRefusal(r, 'SET_VCPU_REGS', 'EPERM', 'valid CR0/CR4')
    expect(hint(r)).not.toMatch(/pause/)
  })

  it('a device is refused: it is paused, not created', () => {
    const r = s.run('ptdev', 'assign', 'a', '--phys', '00:17.0')
    expectRefusal(r, 'ASSIGN_PCIDEV', 'EINVAL', "'a' is paused: ")
  })

  it('pause again succeeds (A.3)', () => ok('paused', 'vm', 'pause', 'a'))

  it('reset takes it to created; a created VM pauses; a paused one is destroyed', () => {
    ok('created', 'vm', 'reset', 'a', '--yes')
    ok('paused', 'vm', 'pause', 'a')
    expect(s.run('vm', 'destroy', 'a', '--yes').code).toBe(0)
  })

  it('a created VM is destroyed too', () => {
    expect(s.run('vm', 'destroy', 'c', '--yes').code).toBe(0)
    expect(s.vms()).toEqual([])
  })
})
