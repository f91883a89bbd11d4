// `hsmctl irq inject|monitor`, `ioreq clear|clients`, `pm px|cx` and `guest access` as a
// user runs them (§4.7, §7.1-§7.3, §7.8): what they print, their JSON, what the
// hypervisor saw, and bad input, which changes nothing.

import { beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_INVENTORY } from '../../src/core/sim/hypervisor/inventory.js'
import { expectError, expectRefusal, hsmdSession, type Json } from '../support/hsmd-session.js'

const s = hsmdSession('irq')

beforeAll(() => {
  expect(s.run('vm', 'create', 'irq', '--vcpus', '2', '--memory', '1M').code).toBe(0)
  expect(s.run('vm', 'start', 'irq').code).toBe(0)
  expect(s.run('vm', 'create', 'idle').code).toBe(0)
})

const hv = (): Json => s.vm('irq').hypervisor
const ioapicPin = (pin: number): Json => hv().gsi.ioapic.find((p: Json) => p.pin === pin)
const hex = (n: number | bigint) => `0x${n.toString(16)}`

describe('irq inject --msi (INJECT_MSI, §7.2)', () => {
  it('injects one MSI into the vCPU its address names', () => {
    const r = s.run('irq', 'inject', 'irq', '--msi', '0xfee00000:0x41')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('injected MSI 0xfee00000:0x41 into irq\n')
    expect(s.json('irq', 'inject', 'irq', '--msi', '0xfee01000:0x42')).toEqual({
      name: 'irq',
      msiAddr: '0xfee01000',
      msiData: '0x42',
    })
    expect(hv().msi).toEqual([
      { vcpu: 0, vector: 0x41, count: 1 },
      { vcpu: 1, vector: 0x42, count: 1 },
    ])
    expect(s.run('vm', 'show', 'irq').stdout).toMatch(/^ {2}vCPU 1 vector 0x42: 1$/m)
  })

  // issue 13 item 21: irq inject and irqfd add take an MSI the same two ways
  it('--msi-addr and --msi-data are the same MSI, as irqfd add takes it', () => {
    const r = s.run('irq', 'inject', 'irq', '--msi-addr', '0xfee01000', '--msi-data', '0x42')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('injected MSI 0xfee01000:0x42 into irq\n')
    expect(hv().msi).toContainEqual({ vcpu: 1, vector: 0x42, count: 2 })
    expectError(s.run('irq', 'inject', 'irq', '--msi-addr', '0xfee01000'), 2, /--msi-data/)
  })
})

describe('irq inject --gsi (SET_IRQLINE, §7.1)', () => {
  it('assert raises the line, deassert lowers it', () => {
    const r = s.run('irq', 'inject', 'irq', '--gsi', '20', '--op', 'assert')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('assert GSI 20 of irq\n')
    expect(ioapicPin(20)).toMatchObject({ level: 1, assertions: 1 })
    expect(s.json('irq', 'inject', 'irq', '--gsi', '20', '--op', 'deassert')).toEqual({
      name: 'irq',
      gsi: 20,
      op: 'deassert',
    })
    expect(ioapicPin(20)).toMatchObject({ level: 0, assertions: 1 })
  })

  it('pulse-high raises and lowers it; a legacy line also drives the vPIC', () => {
    expect(s.run('irq', 'inject', 'irq', '--gsi', '4', '--op', 'pulse-high').code).toBe(0)
    expect(ioapicPin(4)).toMatchObject({ level: 0, assertions: 1 })
    expect(hv().gsi.pic.find((p: Json) => p.pin === 4)).toMatchObject({ assertions: 1 })
  })

  describe('bad input changes nothing', () => {
    let before: Json
    beforeAll(async () => {
      before = await s.snapshot('irq')
    })

    it.each([
      // the VM has 48 GSIs (A.3: GSI below the VM's count)
      {
        args: ['--gsi', '48', '--op', 'assert'],
        code: 1,
        message: 'SET_IRQLINE failed: EPERM (Operation not permitted)',
        hint: 'the GSI is beyond the VM’s interrupt lines',
      },
      { args: ['--gsi', '4'], code: 2, message: /must be provided when using --gsi: --op/ },
      {
        args: ['--gsi', '4', '--op', 'toggle'],
        code: 2,
        message: 'Expected --op=toggle to be one of: assert, deassert, pulse-high, pulse-low',
      },
      { args: [], code: 2, message: /Exactly one of the following must be provided: --gsi, --msi/ },
      {
        args: ['--msi', '0xfee00000:0x41', '--gsi', '4', '--op', 'assert'],
        code: 2,
        message: /--gsi cannot also be provided when using --msi/,
      },
      { args: ['--msi', 'nope'], code: 2, message: "--msi: 'nope' is not ADDR:DATA" },
      {
        args: ['--msi', '0x1234:0x41'],
        code: 2,
        message: '--msi: MSI address 0x1234 is outside 0xfee00000-0xfeefffff',
      },
    ])('irq inject $args → exit $code', async ({ args, code, message, hint }) => {
      expectError(s.run('irq', 'inject', 'irq', ...args), code, message, hint)
      expect(await s.snapshot('irq')).toEqual(before)
    })

    it('an unknown VM is exit 3 for every command here', async () => {
      for (const args of [
        ['irq', 'inject', 'nope', '--msi', '0xfee00000:0x41'],
        ['irq', 'monitor', 'nope'],
        ['ioreq', 'clear', 'nope'],
        ['ioreq', 'clients', 'nope'],
        ['pm', 'px', 'nope'],
        ['pm', 'cx', 'nope'],
        ['guest', 'access', 'nope', '--pio', '0x60', '--read'],
      ])
        expectError(s.run(...args), 3, "no VM named 'nope'", 'see `hsmctl vm list`')
      expect(await s.snapshot('irq')).toEqual(before)
    })
  })
})

describe('irq monitor (VM_INTR_MONITOR, §7.3)', () => {
  it('reports no pass-through interrupts for a VM without devices', () => {
    const r = s.run('irq', 'monitor', 'irq')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('No pass-through interrupts in irq.\n')
    expect(s.json('irq', 'monitor', 'irq')).toEqual({ name: 'irq', interrupts: [] })
  })

  it('--delay sets the injection delay', () => {
    const r = s.run('irq', 'monitor', 'irq', '--delay', '5')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('interrupt injection delay of irq: 5 ms\n')
    expect(s.json('irq', 'monitor', 'irq', '--delay', '0')).toEqual({
      name: 'irq',
      delayMs: 0,
      interrupts: [],
    })
    expectError(
      s.run('irq', 'monitor', 'irq', '--delay', 'soon'),
      2,
      "--delay: 'soon' is not a number",
    )
  })
})

describe('guest access (simulation: a vCPU makes the access)', () => {
  /** I/O requests hsmd (the default ioreq client) has handled. */
  const handled = (): number => s.vm('irq').clients[0].handled

  it('a port write to the UART reaches hsmd and its console', () => {
    const requests = handled()
    const r = s.run('guest', 'access', 'irq', '--pio', '0x3f8', '--write', '0x48', '--size', '1')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('PIO write 0x3f8 size 1: 0x48 done\n')
    expect(handled()).toBe(requests + 1)
    expect(s.run('vm', 'console', 'irq').stdout).toBe('H')
  })

  it('unclaimed reads return all-ones, as acrn-dm answers them', () => {
    const r = s.run('guest', 'access', 'irq', '--pio', '0x1234', '--read', '--size', '2')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('PIO read  0x1234 size 2: 0xffff\n')
    expect(
      s.json(
        'guest',
        'access',
        'irq',
        '--vcpu',
        '1',
        '--mmio',
        '0xe0000000',
        '--read',
        '--size',
        '8',
      ),
    ).toEqual({
      name: 'irq',
      vcpu: 1,
      type: 'mmio',
      dir: 'read',
      addr: '0xe0000000',
      size: 8,
      value: '0x0',
      result: '0xffffffffffffffff',
    })
  })

  it('RAM is read and written through the EPT, without an I/O request', () => {
    const requests = handled()
    const w = s.json(
      'guest',
      'access',
      'irq',
      '--mmio',
      '0x2000',
      '--write',
      '0xcafe',
      '--size',
      '2',
    )
    expect(w).toMatchObject({ dir: 'write', addr: '0x2000', size: 2, value: '0xcafe' })
    const r = s.run('guest', 'access', 'irq', '--mmio', '0x2000', '--read', '--size', '2')
    expect(r.stdout).toBe('MMIO read  0x2000 size 2: 0xcafe\n')
    expect(handled()).toBe(requests)
  })

  describe('bad input changes nothing', () => {
    let before: Record<string, Json>
    beforeAll(() => {
      before = { irq: s.vm('irq'), idle: s.vm('idle') }
    })

    it.each([
      {
        vm: 'idle',
        args: ['--pio', '0x60', '--read'],
        code: 2,
        message: "'idle' is created, not running",
        hint: 'start it first: hsmctl vm start idle',
      },
      {
        vm: 'irq',
        args: ['--vcpu', '2', '--pio', '0x60', '--read'],
        code: 2,
        message: '--vcpu: vCPU 2 does not exist',
        hint: "'irq' has 2 vCPUs (0..1)",
      },
      {
        vm: 'irq',
        args: ['--vcpu', '16', '--pio', '0x60', '--read'],
        code: 2,
        message: '--vcpu: 16 is out of range',
      },
      {
        vm: 'irq',
        args: ['--pio', '0x10000', '--read'],
        code: 2,
        message: '--pio: 0x10000 is out of range',
      },
      // §4.1: a PIO request's value is 32 bits, an MMIO request's 64
      {
        vm: 'irq',
        args: ['--vcpu', '0', '--pio', '0x3f8', '--read', '--size', '8'],
        code: 2,
        message: '--size: a port I/O access is 1, 2 or 4 bytes, not 8',
        hint: 'use --size 1, 2 or 4, or --mmio for 8-byte accesses',
      },
      {
        vm: 'irq',
        args: ['--pio', '0x60', '--write', '0x1', '--size', '3'],
        code: 2,
        message: '--size: a port I/O access is 1, 2 or 4 bytes, not 3',
      },
      {
        vm: 'irq',
        args: ['--mmio', '0x2000', '--read', '--size', '3'],
        code: 2,
        message: '--size: an MMIO access is 1, 2, 4 or 8 bytes, not 3',
        hint: 'use --size 1, 2, 4 or 8',
      },
      {
        vm: 'irq',
        args: ['--mmio', '0x2000', '--write', '0x12g'],
        code: 2,
        message: "--write: '0x12g' is not a number",
      },
      {
        vm: 'irq',
        args: ['--pio', '0x60'],
        code: 2,
        message: /Exactly one of the following must be provided: --read, --write/,
      },
      {
        vm: 'irq',
        args: ['--pio', '0x60', '--mmio', '0x2000', '--read'],
        code: 2,
        message: /--mmio cannot also be provided when using --pio/,
      },
    ])('guest access $vm $args → exit $code', async ({ vm, args, code, message, hint }) => {
      expectError(s.run('guest', 'access', vm, ...args), code, message, hint)
      expect(await s.snapshot(vm)).toEqual(before[vm])
    })
  })

  it('a paused VM makes no accesses either', () => {
    expect(s.run('vm', 'create', 'paused').code).toBe(0)
    expect(s.run('vm', 'start', 'paused').code).toBe(0)
    expect(s.run('vm', 'pause', 'paused').code).toBe(0)
    expectError(
      s.run('guest', 'access', 'paused', '--pio', '0x60', '--read'),
      2,
      "'paused' is paused, not running",
      'hsmctl vm reset paused --yes',
    )
  })
})

describe('ioreq clients and ioreq clear (§4.2, §4.7)', () => {
  it('lists hsmd as the default client and the kernel’s ioeventfd client', () => {
    const { pid } = s.json('daemon', 'status')
    const { vmid } = s.vm('irq')
    const r = s.run('ioreq', 'clients', 'irq')
    expect(r.code, r.stderr).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^CLIENT +KIND +OWNER +HANDLED +RANGES$/)
    expect(lines[1]).toMatch(new RegExp(`^acrndm +default +hsmd pid ${pid} +\\d+ +-$`))
    expect(lines[2]).toMatch(new RegExp(`^ioeventfd-${vmid} +kernel +kernel +- +0$`))
    const clients = s.json('ioreq', 'clients', 'irq')
    expect(clients).toEqual([
      {
        name: 'acrndm',
        kind: 'default',
        owner: `hsmd pid ${pid}`,
        handled: expect.any(Number),
        wakeups: expect.any(Number),
      },
      { name: `ioeventfd-${vmid}`, kind: 'kernel', owner: 'kernel', ranges: 0 },
    ])
    expect(clients[0].handled).toBeGreaterThan(0) // the accesses above
  })

  it('clear completes pending requests (none here): nothing else changes', async () => {
    const before = await s.snapshot('irq')
    const r = s.run('ioreq', 'clear', 'irq')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('cleared the I/O requests of irq\n')
    expect(s.json('ioreq', 'clear', 'irq')).toEqual({ name: 'irq' })
    expect(await s.snapshot('irq')).toEqual(before)
    expect(hv().slots.map((slot: Json) => slot.state)).toEqual(['FREE', 'FREE'])
  })
})

describe('pm px|cx (PM_GET_CPU_STATE, §7.8)', () => {
  const { px, cx } = DEFAULT_INVENTORY

  it('pm px lists the vCPU’s P-states from the host’s ACPI tables', () => {
    const r = s.run('pm', 'px', 'irq', '--vcpu', '1')
    expect(r.code, r.stderr).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines[0]).toBe(`irq vCPU 1: ${px.length} P-states`)
    expect(lines[1]).toMatch(
      /^INDEX +CORE_FREQUENCY +POWER +TRANSITION_LATENCY +BUS_MASTER_LATENCY +CONTROL +STATUS$/,
    )
    const p0 = px[0]!
    expect(lines[2]).toMatch(
      new RegExp(
        `^ +0 +${p0.coreFrequency} +${p0.power} +${p0.transitionLatency} +${p0.busMasterLatency} +${hex(p0.control)} +${hex(p0.status)}$`,
      ),
    )
    expect(lines).toHaveLength(2 + px.length)
  })

  it('--json with --index gives that state only, 64-bit values as hex', () => {
    const p1 = px[1]!
    expect(s.json('pm', 'px', 'irq', '--index', '1')).toEqual({
      name: 'irq',
      vcpu: 0,
      kind: 'px',
      count: px.length,
      states: [
        {
          index: 1,
          core_frequency: hex(p1.coreFrequency),
          power: hex(p1.power),
          transition_latency: hex(p1.transitionLatency),
          bus_master_latency: hex(p1.busMasterLatency),
          control: hex(p1.control),
          status: hex(p1.status),
        },
      ],
    })
  })

  it('pm cx lists C-states, numbered from 1', () => {
    const r = s.run('pm', 'cx', 'irq')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^irq vCPU 0: ${cx.length} C-states$`, 'm'))
    const all = s.json('pm', 'cx', 'irq')
    expect(all.count).toBe(cx.length)
    expect(all.states.map((c: Json) => [c.index, c.type, c.latency])).toEqual(
      cx.map((c, i) => [i + 1, c.type, c.latency]),
    )
    expect(all.states[1]).toEqual({
      index: 2,
      cx_reg: {
        space_id: cx[1]!.spaceId,
        bit_width: cx[1]!.bitWidth,
        bit_offset: cx[1]!.bitOffset,
        access_size: cx[1]!.accessSize,
        address: hex(cx[1]!.address),
      },
      type: cx[1]!.type,
      latency: cx[1]!.latency,
      power: hex(cx[1]!.power),
    })
  })

  describe('a state or vCPU that does not exist is the hypervisor’s EPERM', () => {
    let before: Json
    beforeAll(async () => {
      before = await s.snapshot('irq')
    })

    it.each([
      { args: ['px', 'irq', '--index', '99'], code: 1, hint: 'Px states are numbered from 0' },
      { args: ['px', 'irq', '--index', String(px.length)], code: 1 },
      { args: ['cx', 'irq', '--index', '0'], code: 1, hint: 'Cx states from 1' },
      { args: ['cx', 'irq', '--index', String(cx.length + 1)], code: 1 },
      // the VM has 2 vCPUs
      { args: ['px', 'irq', '--vcpu', '2'], code: 1, hint: 'no such vCPU' },
    ])('pm $args → EPERM', async ({ args, hint }) => {
      expectRefusal(s.run('pm', ...args), 'PM_GET_CPU_STATE', 'EPERM', hint)
      expect(await s.snapshot('irq')).toEqual(before)
    })
  })

  it.each([
    { args: ['px', 'irq', '--vcpu', '256'], message: '--vcpu: 256 is out of range' },
    { args: ['cx', 'irq', '--index', 'two'], message: "--index: 'two' is not a number" },
  ])('pm $args → exit 2', ({ args, message }) => {
    expectError(s.run('pm', ...args), 2, message)
  })
})
