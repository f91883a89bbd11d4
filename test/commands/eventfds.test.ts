// `hsmctl ioeventfd ...` and `hsmctl irqfd ...` as a user runs them: registration, what
// guest writes signal (§5.5), what irqfd writes inject (§6.3), and bad input, which
// changes nothing.

import { beforeAll, describe, expect, it } from 'vitest'
import { expectError, hsmdSession, type Json } from '../support/hsmd-session.js'

const s = hsmdSession('eventfds')

beforeAll(() => {
  expect(s.run('vm', 'create', 'ev', '--vcpus', '2', '--memory', '1M').code).toBe(0)
})

const signals = () =>
  Object.fromEntries(s.json('ioeventfd', 'list', 'ev').map((e: Json) => [e.id, e.signals]))
const write = (...args: string[]) => {
  const r = s.run('guest', 'access', 'ev', '--write', ...args)
  expect(r.code, r.stderr).toBe(0)
}

describe('ioeventfd add|list (IOEVENTFD, §5.3)', () => {
  it('registers an MMIO ioeventfd', () => {
    const r = s.run('ioeventfd', 'add', 'ev', '--addr', '0xfe000000', '--len', '4')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('ioeventfd #1: MMIO 0xfe000000 len 4\n')
  })

  it('a second one at the same address is not a conflict: it has its own eventfd (§5.3)', () => {
    expect(s.json('ioeventfd', 'add', 'ev', '--addr', '0xfe000000', '--len', '4')).toEqual({
      addr: '0xfe000000',
      len: 4,
      pio: false,
      id: 2,
      signals: '0x0',
    })
  })

  it('--json: a port I/O ioeventfd with a datamatch', () => {
    expect(
      s.json(
        'ioeventfd',
        'add',
        'ev',
        '--pio',
        '--addr',
        '0xc050',
        '--len',
        '2',
        '--datamatch',
        '1',
      ),
    ).toEqual({ addr: '0xc050', len: 2, pio: true, datamatch: '0x1', id: 3, signals: '0x0' })
  })

  it('ioeventfd list shows them; the kernel’s ioeventfd client has their ranges', () => {
    const r = s.run('ioeventfd', 'list', 'ev')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.trimEnd().split('\n')).toEqual([
      'ID  TYPE  ADDR        LEN  DATAMATCH  SIGNALS',
      ' 1  MMIO  0xfe000000    4  any              0',
      ' 2  MMIO  0xfe000000    4  any              0',
      ' 3  PIO   0xc050        2  0x1              0',
    ])
    expect(s.json('ioeventfd', 'list', 'ev')).toEqual(s.vm('ev').ioeventfds)
    expect(s.json('ioreq', 'clients', 'ev')[1]).toMatchObject({ kind: 'kernel', ranges: 3 })
  })

  describe('bad input changes nothing', () => {
    let before: Json
    beforeAll(async () => {
      before = await s.snapshot('ev')
    })

    it.each([
      {
        args: ['--addr', '0xfe000010', '--len', '3'],
        code: 1,
        message: 'IOEVENTFD failed: EINVAL (Invalid argument)',
        hint: 'len must be 1, 2, 4 or 8',
      },
      {
        args: ['--addr', '0xfe000010', '--len', '0'],
        code: 1,
        message: 'IOEVENTFD failed: EINVAL',
      },
      {
        args: ['--addr', '0xfffffffffffffffe', '--len', '4'],
        code: 1,
        message: 'IOEVENTFD failed: EINVAL',
        hint: 'addr + len must not overflow',
      },
      { args: ['--addr', '0x12g'], code: 2, message: "--addr: '0x12g' is not a number" },
      {
        args: ['--addr', '0xfe000010', '--datamatch', 'one'],
        code: 2,
        message: "--datamatch: 'one' is not a number",
      },
      { args: ['--len', '4'], code: 2, message: /Missing required flag addr/ },
    ])('ioeventfd add $args → exit $code', async ({ args, code, message, hint }) => {
      expectError(s.run('ioeventfd', 'add', 'ev', ...args), code, message, hint)
      expect(await s.snapshot('ev')).toEqual(before)
    })

    it.each([
      {
        args: ['add', 'nope', '--addr', '0xfe000010'],
        code: 3,
        message: "no VM named 'nope'",
      },
      {
        args: ['remove', 'ev', '--id', '99'],
        code: 3,
        message: "'ev' has no ioeventfd 99",
        hint: 'see `hsmctl ioeventfd list ev`',
      },
      { args: ['remove', 'ev', '--id', '0'], code: 2, message: '--id: 0 is out of range' },
      { args: ['remove', 'nope', '--id', '1'], code: 3, message: "no VM named 'nope'" },
      { args: ['list', 'nope'], code: 3, message: "no VM named 'nope'" },
    ])('ioeventfd $args → exit $code', async ({ args, code, message, hint }) => {
      expectError(s.run('ioeventfd', ...args), code, message, hint)
      expect(await s.snapshot('ev')).toEqual(before)
    })
  })
})

describe('what guest writes signal (§5.5)', () => {
  beforeAll(() => {
    expect(s.run('vm', 'start', 'ev').code).toBe(0)
  })

  it('a write at the address signals the oldest matching ioeventfd only', () => {
    write('0x5', '--mmio', '0xfe000000', '--size', '4')
    expect(signals()).toEqual({ 1: '0x1', 2: '0x0', 3: '0x0' })
  })

  it('a write inside the range but not at its start, and a read, signal nothing', () => {
    write('0x5', '--mmio', '0xfe000002', '--size', '2')
    const read = s.json('guest', 'access', 'ev', '--mmio', '0xfe000000', '--read', '--size', '4')
    expect(read.result).toBe('0x0') // reads of an ioeventfd range return 0
    expect(signals()).toEqual({ 1: '0x1', 2: '0x0', 3: '0x0' })
  })

  it('a datamatch ioeventfd signals only for its value; the kernel handles them all', () => {
    const handled = s.vm('ev').clients[0].handled
    write('2', '--pio', '0xc050', '--size', '2')
    expect(signals()[3]).toBe('0x0')
    write('1', '--pio', '0xc050', '--size', '2')
    write('1', '--pio', '0xc050', '--size', '2', '--vcpu', '1')
    expect(signals()[3]).toBe('0x2')
    expect(s.vm('ev').clients[0].handled).toBe(handled) // none reached hsmd
  })

  it('vm show and ioeventfd list show the counts', () => {
    expect(s.run('vm', 'show', 'ev').stdout).toMatch(/^ {2}#1 MMIO 0xfe000000 len 4 {2}signals 1$/m)
    expect(s.run('ioeventfd', 'list', 'ev').stdout).toMatch(/^ 3 +PIO +0xc050 +2 +0x1 +2$/m)
  })

  it('remove closes the oldest: the next one at that address gets the writes', () => {
    const r = s.run('ioeventfd', 'remove', 'ev', '--id', '1')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('removed ioeventfd #1 (1 signals)\n')
    write('0x5', '--mmio', '0xfe000000', '--size', '4')
    expect(signals()).toEqual({ 2: '0x1', 3: '0x2' })
    expect(s.json('ioreq', 'clients', 'ev')[1].ranges).toBe(2)
  })

  it('--json remove returns the entry and its count', () => {
    expect(s.json('ioeventfd', 'remove', 'ev', '--id', '3')).toEqual({
      addr: '0xc050',
      len: 2,
      pio: true,
      datamatch: '0x1',
      id: 3,
      signals: '0x2',
    })
    expectError(s.run('ioeventfd', 'remove', 'ev', '--id', '3'), 3, "'ev' has no ioeventfd 3")
  })

  it('with none left at the port, the write goes to hsmd', () => {
    const handled = s.vm('ev').clients[0].handled
    write('1', '--pio', '0xc050', '--size', '2')
    expect(s.vm('ev').clients[0].handled).toBe(handled + 1)
  })
})

describe('irqfd add|signal|list|remove (IRQFD, §6)', () => {
  const msis = () => s.vm('ev').hypervisor.msi

  it('registers an irqfd for an MSI', () => {
    const r = s.run('irqfd', 'add', 'ev', '--msi-addr', '0xfee00000', '--msi-data', '0x31')
    expect(r.code, r.stderr).toBe(0)
    // one id sequence per VM: the three ioeventfds had 1..3
    expect(r.stdout).toBe('irqfd #4: MSI 0xfee00000:0x31\n')
  })

  it('--json: another, for vCPU 1 (APIC ID in bits 19:12)', () => {
    const q = s.json('irqfd', 'add', 'ev', '--msi-addr', '0xfee01000', '--msi-data', '0x32')
    expect(q).toEqual({ msiAddr: '0xfee01000', msiData: '0x32', id: 5, signals: 0 })
  })

  it('each write injects the MSI once (§6.3)', () => {
    const [first, second] = s.json('irqfd', 'list', 'ev')
    const r = s.run('irqfd', 'signal', 'ev', '--id', String(first.id), '--count', '3')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe(`signalled irqfd #${first.id} 3x (3 in all)\n`)
    expect(s.json('irqfd', 'signal', 'ev', '--id', String(second.id))).toEqual({
      msiAddr: '0xfee01000',
      msiData: '0x32',
      id: second.id,
      signals: 1,
    })
    expect(msis()).toEqual([
      { vcpu: 0, vector: 0x31, count: 3 },
      { vcpu: 1, vector: 0x32, count: 1 },
    ])
  })

  it('a second irqfd for the same MSI is fine: EBUSY is for the same eventfd (§6.2)', () => {
    const q = s.json('irqfd', 'add', 'ev', '--msi-addr', '0xfee00000', '--msi-data', '0x31')
    s.json('irqfd', 'signal', 'ev', '--id', String(q.id))
    expect(msis()[0]).toEqual({ vcpu: 0, vector: 0x31, count: 4 })
  })

  it('irqfd list shows them with their counts', () => {
    const [a, b, c] = s.json('irqfd', 'list', 'ev')
    const r = s.run('irqfd', 'list', 'ev')
    expect(r.stdout.trimEnd().split('\n')).toEqual([
      'ID  MSI ADDR    MSI DATA  SIGNALS',
      ` ${a.id}  0xfee00000  0x31            3`,
      ` ${b.id}  0xfee01000  0x32            1`,
      ` ${c.id}  0xfee00000  0x31            1`,
    ])
    expect(s.vm('ev').irqfds).toEqual([a, b, c])
  })

  describe('bad input changes nothing', () => {
    let before: Json
    beforeAll(async () => {
      before = await s.snapshot('ev')
    })

    it.each([
      {
        args: ['add', 'ev', '--msi-addr', '0x1234', '--msi-data', '0x31'],
        code: 2,
        message: '--msi-addr: MSI address 0x1234 is outside 0xfee00000-0xfeefffff',
        hint: 'an x86 MSI address is 0xfee00000 | destination APIC ID << 12',
      },
      {
        args: ['add', 'ev', '--msi-addr', '0xfee00000', '--msi-data', '0x100000000'],
        code: 2,
        message: '--msi-data: 0x100000000 is out of range',
      },
      {
        args: ['add', 'ev', '--msi-addr', '0xfee00000'],
        code: 2,
        message: /All of the following must be provided when using --msi-addr: --msi-data/,
      },
      {
        args: ['add', 'nope', '--msi-addr', '0xfee00000', '--msi-data', '0x31'],
        code: 3,
        message: "no VM named 'nope'",
      },
      {
        args: ['signal', 'ev', '--id', '99'],
        code: 3,
        message: "'ev' has no irqfd 99",
        hint: 'see `hsmctl irqfd list ev`',
      },
      { args: ['signal', 'ev', '--id', '1', '--count', '0'], code: 2, message: '--count: 0' },
      { args: ['remove', 'ev', '--id', '99'], code: 3, message: "'ev' has no irqfd 99" },
      { args: ['list', 'nope'], code: 3, message: "no VM named 'nope'" },
    ])('irqfd $args → exit $code', async ({ args, code, message, hint }) => {
      expectError(s.run('irqfd', ...args), code, message, hint)
      expect(await s.snapshot('ev')).toEqual(before)
    })
  })

  it('remove closes it: it no longer injects', () => {
    const [a] = s.json('irqfd', 'list', 'ev')
    const r = s.run('irqfd', 'remove', 'ev', '--id', String(a.id))
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe(`removed irqfd #${a.id}\n`)
    expect(s.json('irqfd', 'list', 'ev').map((q: Json) => q.id)).not.toContain(a.id)
    expectError(
      s.run('irqfd', 'signal', 'ev', '--id', String(a.id)),
      3,
      `'ev' has no irqfd ${a.id}`,
    )
    expect(msis()[0].count).toBe(4)
  })

  // issue 13 item 21: irqfd add and irq inject take an MSI the same two ways
  it('--msi ADDR:DATA is taken too, as irq inject takes it', () => {
    const q = s.json('irqfd', 'add', 'ev', '--msi', '0xfee01000:0x33')
    expect(q).toMatchObject({ msiAddr: '0xfee01000', msiData: '0x33' })
    expect(s.run('irqfd', 'signal', 'ev', '--id', String(q.id)).code).toBe(0)
    expect(msis()).toContainEqual({ vcpu: 1, vector: 0x33, count: 1 })
    expectError(
      s.run('irqfd', 'add', 'ev', '--msi', '0x1234:0x33'),
      2,
      '--msi: MSI address 0x1234 is outside 0xfee00000-0xfeefffff',
    )
    expectError(
      s.run('irqfd', 'add', 'ev', '--msi', '0xfee01000:0x33', '--msi-addr', '0xfee00000'),
      2,
      /--msi-addr cannot also be provided when using --msi/,
    )
    expectError(
      s.run('irqfd', 'add', 'ev'),
      2,
      /Exactly one of the following must be provided: --msi, --msi-addr/,
    )
  })
})
