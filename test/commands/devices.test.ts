// `hsmctl host devices`, `ptdev`, `mmiodev` and `vdev` as a user runs them (§7.4-§7.7):
// what they print, their JSON, the hypervisor's rules (one owner per device, assignment
// only before start) and bad input, which changes nothing.

import { beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_INVENTORY } from '../../src/core/sim/hypervisor/inventory.js'
import { expectError, expectRefusal, hsmdSession, type Json } from '../support/hsmd-session.js'

const s = hsmdSession('devices')

beforeAll(() => {
  for (const name of ['dev', 'other', 'live']) expect(s.run('vm', 'create', name).code).toBe(0)
  expect(s.run('vm', 'start', 'live').code).toBe(0)
})

/** Packed bus<<8 | dev<<3 | func, as acrn_pcidev carries it. */
const bdf = (bus: number, dev: number, func: number) => (bus << 8) | (dev << 3) | func
const XHCI = bdf(0, 0x14, 0)
const HOST_XHCI = DEFAULT_INVENTORY.pci.find((d) => d.bdf === XHCI)!

/** What bad input aimed at a VM must leave alone: the VM, or the list for an unknown one. */
const look = (name: string): Promise<Json> => s.snapshot(name === 'nope' ? undefined : name)
const lookAll = async (): Promise<Record<string, Json>> =>
  Object.fromEntries(
    await Promise.all(
      ['dev', 'other', 'live', 'nope'].map(async (name) => [name, await look(name)]),
    ),
  )

describe('host devices: the simulated inventory', () => {
  it('lists pCPUs, PCI functions (BARs, INTx) and MMIO devices', () => {
    const r = s.run('host', 'devices')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^${DEFAULT_INVENTORY.pcpus} pCPUs$`, 'm'))
    expect(r.stdout).toMatch(/^BDF +ID +CLASS +NAME +BARS +INTX$/m)
    expect(r.stdout).toMatch(
      /^00:14\.0 +8086:9ded +0c0330 +USB 3\.1 xHCI +0:0xa1100000\/64K +INTA# gsi 16$/m,
    )
    expect(r.stdout).toMatch(/^00:1c\.0 +8086:9dbc +060400 +PCIe root port \(bridge\) +- /m)
    expect(r.stdout).toMatch(/^MSFT0101 0xfed40000 \(20K\)$/m)
    const rows = r.stdout.split('\n').filter((l) => /^[0-9a-f]{2}:[0-9a-f]{2}\.\d /.test(l))
    expect(rows).toHaveLength(DEFAULT_INVENTORY.pci.length)
  })

  it('--json is the inventory, addresses as hex strings and BDFs as the table prints them', () => {
    const inv = s.json('host', 'devices')
    expect(Object.keys(inv)).toEqual(['pcpus', 'userVmAffinity', 'pci', 'mmio'])
    expect(inv.pcpus).toBe(DEFAULT_INVENTORY.pcpus)
    expect(inv.userVmAffinity).toBe(`0x${DEFAULT_INVENTORY.postLaunchedAffinity.toString(16)}`)
    // the BDF column of the table, row for row
    const tableBdfs = s
      .run('host', 'devices')
      .stdout.split('\n')
      .filter((l: string) => /^[0-9a-f]{2}:[0-9a-f]{2}\.\d /.test(l))
      .map((l: string) => l.split(' ')[0])
    expect(inv.pci.map((d: Json) => d.bdf)).toEqual(tableBdfs)
    expect(tableBdfs).toContain('00:14.0')
    expect(tableBdfs).toContain('00:1f.6')
    expect(inv.pci.find((d: Json) => d.bdf === '00:14.0')).toEqual({
      bdf: '00:14.0',
      vendor: '0x8086',
      device: '0x9ded',
      classCode: '0x0c0330',
      name: HOST_XHCI.name,
      bars: [{ index: 0, kind: 'mem64', base: '0xa1100000', size: '0x10000' }],
      intxPin: 1,
      intxGsi: HOST_XHCI.intxGsi,
      bridge: false,
    })
    // fixed width: leading zeros kept (the host bridge is class 06 00 00)
    expect(inv.pci.find((d: Json) => d.bdf === '00:00.0')).toMatchObject({
      vendor: '0x8086',
      classCode: '0x060000',
    })
    expect(inv.mmio).toEqual(
      DEFAULT_INVENTORY.mmio.map((m) => ({
        name: m.name,
        base: `0x${m.base.toString(16)}`,
        size: `0x${m.size.toString(16)}`,
      })),
    )
  })
})

describe('ptdev assign|list|deassign (ASSIGN_PCIDEV, §7.5)', () => {
  it('assigns a host function at a virtual BDF', () => {
    const r = s.run('ptdev', 'assign', 'dev', '--phys', '00:14.0', '--virt', '00:03.0')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('assigned 00:14.0 to dev as 00:03.0\n')
    expect(s.vm('dev').ptdevs).toEqual([{ phys: '00:14.0', virt: '00:03.0', quirk: false }])
  })

  it('--json: the virtual BDF defaults to the physical one, written bb:dd.f', () => {
    expect(s.json('ptdev', 'assign', 'dev', '--phys', '0000:00:1f.6', '--quirk')).toEqual({
      phys: '00:1f.6',
      virt: '00:1f.6',
      quirk: true,
    })
  })

  it('ptdev list shows every VM’s devices; --json and a VM filter', () => {
    const r = s.run('ptdev', 'list')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.trimEnd().split('\n')).toEqual([
      'VM   PHYS     VIRT     INTERRUPT',
      'dev  00:14.0  00:03.0  -',
      'dev  00:1f.6  00:1f.6  -',
    ])
    expect(s.json('ptdev', 'list', 'dev')).toEqual([
      { vm: 'dev', phys: '00:14.0', virt: '00:03.0', quirk: false },
      { vm: 'dev', phys: '00:1f.6', virt: '00:1f.6', quirk: true },
    ])
    expect(s.json('ptdev', 'list', 'other')).toEqual([])
    expect(s.run('ptdev', 'list', 'other').stdout).toBe('No pass-through devices.\n')
  })

  describe('bad input changes nothing', () => {
    let before: Record<string, Json>
    beforeAll(async () => {
      before = await lookAll()
    })

    it.each([
      {
        args: ['dev', '--phys', '00:14.0'],
        code: 4,
        message: "that device is already assigned to 'dev'",
      },
      // the hypervisor gives a device to one VM at a time
      {
        args: ['other', '--phys', '00:14.0'],
        code: 1,
        message: 'ASSIGN_PCIDEV failed: ENODEV (No such device)',
        hint: 'another VM has it',
      },
      {
        args: ['dev', '--phys', '05:00.0'],
        code: 1,
        message: 'ASSIGN_PCIDEV failed: ENODEV (No such device)',
        hint: 'no such host PCI function',
      },
      {
        args: ['dev', '--phys', '00:1c.0'],
        code: 1,
        message: 'ASSIGN_PCIDEV failed: ENODEV',
        hint: 'a bridge',
      },
      {
        args: ['dev', '--phys', '00:17.0', '--virt', '00:03.0'],
        code: 1,
        message: 'ASSIGN_PCIDEV failed: EINVAL (Invalid argument)',
        hint: 'at a free virtual BDF',
      },
      {
        args: ['live', '--phys', '00:17.0'],
        code: 1,
        message: 'ASSIGN_PCIDEV failed: EINVAL',
        hint: 'only to a created VM (before `vm start`)',
      },
      {
        args: ['dev', '--phys', 'zz'],
        code: 2,
        message: "--phys: 'zz' is not a PCI address",
        hint: 'bb:dd.f',
      },
      { args: ['dev', '--phys', '00:20.0'], code: 2, message: '--phys:' },
      {
        args: ['dev'],
        code: 2,
        message: '--phys is required when not running interactively',
        hint: 'see `hsmctl host devices`',
      },
      { args: ['nope', '--phys', '00:17.0'], code: 3, message: "no VM named 'nope'" },
    ])('ptdev assign $args → exit $code', async ({ args, code, message, hint }) => {
      expectError(s.run('ptdev', 'assign', ...args), code, message, hint)
      expect(await look(args[0]!)).toEqual(before[args[0]!])
    })

    it('ptdev list of an unknown VM is exit 3', () => {
      expectError(s.run('ptdev', 'list', 'nope'), 3, "no VM named 'nope'")
    })
  })

  describe('ptdev intr set|reset (SET/RESET_PTDEV_INTR, §7.4)', () => {
    it('routes INTx: the host GSI comes from the inventory', () => {
      const r = s.run(
        ...['ptdev', 'intr', 'set', 'dev', '--type', 'intx', '--phys', '00:14.0'],
        ...['--virt-pin', '5'],
      )
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toBe('set intx interrupt of dev\n')
      expect(s.vm('dev').ptdevs[0]).toEqual({
        phys: '00:14.0',
        virt: '00:03.0',
        quirk: false,
        intr: { type: 'intx', virtPin: 5, physPin: HOST_XHCI.intxGsi, picPin: false },
      })
      expect(s.run('ptdev', 'list', 'dev').stdout).toMatch(/^dev +00:14\.0 +00:03\.0 +intx 16->5$/m)
    })

    it('irq monitor (VM_INTR_MONITOR, §7.3) lists the pass-through interrupt', () => {
      const r = s.run('irq', 'monitor', 'dev')
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toBe(`pirq   ${HOST_XHCI.intxGsi}  0\n`)
      expect(s.json('irq', 'monitor', 'dev')).toEqual({
        name: 'dev',
        interrupts: [{ pirq: `0x${HOST_XHCI.intxGsi.toString(16)}`, count: '0x0' }],
      })
    })

    describe('bad input changes nothing', () => {
      let before: Json
      beforeAll(async () => {
        before = await s.snapshot('dev')
      })

      it.each([
        {
          args: ['--type', 'msi', '--phys', '00:14.0'],
          code: 1,
          message: 'SET_PTDEV_INTR failed: EPERM (Operation not permitted)',
          hint: 'INTx only',
        },
        {
          args: ['--type', 'intx', '--phys', '00:17.0', '--virt-pin', '5'],
          code: 1,
          message: 'SET_PTDEV_INTR failed: EPERM',
          hint: 'of a device assigned to this VM',
        },
        // the VM has 48 GSIs (A.3)
        {
          args: ['--type', 'intx', '--phys', '00:14.0', '--virt-pin', '48'],
          code: 1,
          message: 'SET_PTDEV_INTR failed: EPERM',
          hint: 'pins in range',
        },
        {
          args: ['--type', 'intx', '--phys', '00:14.0', '--virt-pin', '256'],
          code: 2,
          message: '--virt-pin: 256 is out of range',
        },
        {
          args: ['--type', 'legacy', '--phys', '00:14.0'],
          code: 2,
          message: 'Expected --type=legacy to be one of: intx, msi, msix',
        },
        { args: ['--phys', '00:14.0'], code: 2, message: /Missing required flag type/ },
      ])('ptdev intr set $args → exit $code', async ({ args, code, message, hint }) => {
        expectError(s.run('ptdev', 'intr', 'set', 'dev', ...args), code, message, hint)
        expect(await s.snapshot('dev')).toEqual(before)
      })
    })

    it('--json resets the routing', () => {
      const info = s.json(
        ...['ptdev', 'intr', 'reset', 'dev', '--type', 'intx', '--phys', '00:14.0'],
        ...['--virt-pin', '5'],
      )
      expect(info).toEqual({ phys: '00:14.0', virt: '00:03.0', quirk: false })
      expect(s.json('irq', 'monitor', 'dev').interrupts).toEqual([])
      expect(
        s.run('ptdev', 'intr', 'reset', 'dev', '--type', 'intx', '--phys', '00:14.0').stdout,
      ).toBe('reset intx interrupt of dev\n')
    })
  })

  it('deassign demands --yes off a terminal', async () => {
    const before = await s.snapshot('dev')
    expectError(
      s.run('ptdev', 'deassign', 'dev', '--phys', '00:14.0'),
      2,
      '--yes is required when not running interactively',
      "Take 00:14.0 away from 'dev'?",
    )
    expect(await s.snapshot('dev')).toEqual(before)
  })

  it('deassign gives the device back: another VM can have it now', () => {
    const r = s.run('ptdev', 'deassign', 'dev', '--phys', '00:14.0', '--yes')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('deassigned 00:14.0 from dev\n')
    expect(s.vm('dev').ptdevs.map((p: Json) => p.phys)).toEqual(['00:1f.6'])
    expect(s.json('ptdev', 'assign', 'other', '--phys', '00:14.0').phys).toBe('00:14.0')
    expect(s.json('ptdev', 'deassign', 'other', '--phys', '00:14.0', '--yes')).toEqual({
      phys: '00:14.0',
      virt: '00:14.0',
      quirk: false,
    })
  })

  it('what --json prints is what --phys and --virt take: a script round trip', () => {
    // pick a free host function from host devices --json, pass it through, find it in
    // ptdev list --json and feed those fields straight back to the flags
    const host = s.json('host', 'devices').pci.find((d: Json) => d.name === 'SATA AHCI')
    expect(host.bdf).toBe('00:17.0')
    const assigned = s.json('ptdev', 'assign', 'other', '--phys', host.bdf, '--virt', '00:04.0')
    const [listed] = s.json('ptdev', 'list', 'other')
    expect(listed).toEqual({ vm: 'other', ...assigned })
    expect(s.run('ptdev', 'list', 'other').stdout).toMatch(/^other +00:17\.0 +00:04\.0 +-$/m)
    const set = s.json(
      ...['ptdev', 'intr', 'set', 'other', '--type', 'intx'],
      ...['--phys', listed.phys, '--virt', listed.virt, '--virt-pin', '6'],
    )
    expect(set).toMatchObject({ phys: '00:17.0', virt: '00:04.0', intr: { virtPin: 6 } })
    expect(s.json('vm', 'show', 'other').ptdevs).toEqual([set])
    // the oclif path (vm:show misses the start-up fast path) prints the same
    expect(s.json('vm:show', 'other').ptdevs).toEqual([set])
    expect(s.json('ptdev', 'deassign', 'other', '--phys', listed.phys, '--yes')).toMatchObject({
      phys: '00:17.0',
      virt: '00:04.0',
    })
    expect(s.json('ptdev', 'list', 'other')).toEqual([])
  })

  it('deassigning a device the VM does not have is refused', async () => {
    const before = await s.snapshot('dev')
    expectRefusal(
      s.run('ptdev', 'deassign', 'dev', '--phys', '00:14.0', '--yes'),
      'DEASSIGN_PCIDEV',
      'ENODEV',
      'the device is not assigned to this VM',
    )
    expect(await s.snapshot('dev')).toEqual(before)
  })
})

describe('mmiodev assign|deassign (ASSIGN/DEASSIGN_MMIODEV, §7.6)', () => {
  const tpm = ['--dev-name', 'MSFT0101', '--res', '0xfed40000:0xfed40000:0x5000']

  it('assigns a host MMIO device: its resources are mapped into the guest', () => {
    const r = s.run('mmiodev', 'assign', 'dev', ...tpm)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('assigned MMIO device MSFT0101 (dev)\n')
    const vm = s.vm('dev')
    expect(vm.mmiodevs).toEqual([
      {
        devName: 'MSFT0101',
        res: [{ gpa: '0xfed40000', hpa: '0xfed40000', size: '0x5000', memType: '0x0' }],
      },
    ])
    expect(vm.hypervisor.ept).toContainEqual(
      expect.objectContaining({ gpa: '0xfed40000', hpa: '0xfed40000', size: '0x5000' }),
    )
  })

  describe('bad input changes nothing', () => {
    let before: Record<string, Json>
    beforeAll(async () => {
      before = await lookAll()
    })

    it.each([
      {
        args: ['other', ...tpm],
        code: 1,
        message: 'ASSIGN_MMIODEV failed: EINVAL (Invalid argument)',
        hint: 'a host MMIO device no other VM has',
      },
      {
        args: ['dev', '--dev-name', 'X', '--res', '0xe0000000:0xe0000000:0x1000'],
        code: 1,
        message: 'ASSIGN_MMIODEV failed: EINVAL',
      },
      {
        args: ['live', '--dev-name', 'INT34BB', '--res', '0xfd6a0000:0xfd6a0000:0x10000'],
        code: 1,
        message: 'ASSIGN_MMIODEV failed: EINVAL',
        hint: 'only to a created VM',
      },
      {
        args: ['dev', '--dev-name', 'TOOLONGNAME', '--res', '0xfd6a0000:0xfd6a0000:0x10000'],
        code: 2,
        message: "--dev-name: 'TOOLONGNAME' is longer than 8 bytes",
        hint: 'acrn_mmiodev.name holds 8 bytes',
      },
      {
        args: ['dev', '--dev-name', 'X', '--res', '0xfd6a0000:0xfd6a0000'],
        code: 2,
        message: "--res: '0xfd6a0000:0xfd6a0000' is not GPA:HPA:SIZE",
      },
      {
        args: ['dev', '--dev-name', 'X', '--res', '0xfd6a0100:0xfd6a0000:0x1000'],
        code: 2,
        message: '--res: 0xfd6a0100 is not aligned to 0x1000',
      },
      {
        args: ['dev', '--dev-name', 'X', ...Array(4).fill(['--res', '0:0:0x1000']).flat()],
        code: 2,
        message: '--res: an MMIO device has 1 to 3 resources',
      },
      { args: ['dev', '--dev-name', 'X'], code: 2, message: /Missing required flag res/ },
      { args: ['nope', ...tpm], code: 3, message: "no VM named 'nope'" },
    ])('mmiodev assign $args.0 → exit $code: $message', async ({ args, code, message, hint }) => {
      expectError(s.run('mmiodev', 'assign', ...args), code, message, hint)
      expect(await look(args[0]!)).toEqual(before[args[0]!])
    })
  })

  it('--json deassigns it, unmapping its resources; again is refused', () => {
    expect(s.json('mmiodev', 'deassign', 'dev', ...tpm)).toEqual({
      devName: 'MSFT0101',
      res: [{ gpa: '0xfed40000', hpa: '0xfed40000', size: '0x5000', memType: '0x0' }],
    })
    const vm = s.vm('dev')
    expect(vm.mmiodevs).toEqual([])
    expect(vm.hypervisor.ept.find((e: Json) => e.gpa === '0xfed40000')).toBeUndefined()
    expectRefusal(
      s.run('mmiodev', 'deassign', 'dev', ...tpm),
      'DEASSIGN_MMIODEV',
      'EINVAL',
      'that MMIO device is not assigned to this VM',
    )
    expect(s.vm('dev')).toEqual(vm)
  })

  it('now another VM can have it', () => {
    const r = s.run('mmiodev', 'deassign', 'other', ...tpm)
    expect(r.code).toBe(1) // not its device (yet)
    expect(s.run('mmiodev', 'assign', 'other', ...tpm).stdout).toBe(
      'assigned MMIO device MSFT0101 (other)\n',
    )
  })
})

describe('vdev create|destroy (CREATE/DESTROY_VDEV, §7.7)', () => {
  it('creates a legacy device with its I/O resources', () => {
    const r = s.run('vdev', 'create', 'dev', '--legacy-id', '1', '--io', '0x2f8:8')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('created virtual device in dev\n')
    expect(s.vm('dev').vdevs).toEqual([
      {
        vendor: '0x0000',
        device: '0x0000',
        legacyId: 1,
        slot: '0x0',
        ioAddr: [0x2f8],
        ioSize: [8],
      },
    ])
  })

  it('--json: a PCI device at a slot', () => {
    const info = s.json(
      ...['vdev', 'create', 'dev', '--vendor', '0x8086', '--device', '0x1234'],
      ...['--slot', '0x18', '--io', '0x1000:0x100', '--io', '0xc000:16'],
    )
    expect(info).toEqual({
      vendor: '0x8086',
      device: '0x1234',
      legacyId: 0,
      slot: '0x18',
      ioAddr: [0x1000, 0xc000],
      ioSize: [0x100, 16],
    })
    expect(s.vm('dev').vdevs).toHaveLength(2)
    expect(s.run('vm', 'show', 'dev').stdout).toMatch(/^ {2}0x8086:0x1234 slot 0x18$/m)
  })

  describe('bad input changes nothing', () => {
    let before: Record<string, Json>
    beforeAll(async () => {
      before = await lookAll()
    })

    it.each([
      {
        args: ['create', 'dev', '--legacy-id', '2'],
        code: 1,
        message: 'CREATE_VDEV failed: EINVAL (Invalid argument)',
        hint: 'that slot already holds a virtual device',
      },
      {
        args: ['create', 'dev', '--slot', '0x20', '--io', '0x2f8'],
        code: 2,
        message: "--io: '0x2f8' is not ADDR:SIZE",
      },
      {
        args: ['create', 'dev', '--slot', '0x20', ...Array(7).fill(['--io', '0x10:1']).flat()],
        code: 2,
        message: '--io: at most 6 I/O resources',
      },
      {
        args: ['create', 'dev', '--vendor', '0x1ffff'],
        code: 2,
        message: '--vendor: 0x1ffff is out of range',
      },
      {
        args: ['create', 'dev', '--slot', '0x12g'],
        code: 2,
        message: "--slot: '0x12g' is not a number",
      },
      {
        args: ['destroy', 'dev', '--slot', '0x20'],
        code: 1,
        message: 'DESTROY_VDEV failed: EINVAL',
        hint: 'no virtual device at that slot',
      },
      { args: ['create', 'nope', '--legacy-id', '1'], code: 3, message: "no VM named 'nope'" },
      { args: ['destroy', 'nope', '--legacy-id', '1'], code: 3, message: "no VM named 'nope'" },
    ])('vdev $args → exit $code', async ({ args, code, message, hint }) => {
      expectError(s.run('vdev', ...args), code, message, hint)
      expect(await look(args[1]!)).toEqual(before[args[1]!])
    })
  })

  it('destroys them; destroying again is refused', () => {
    const r = s.run('vdev', 'destroy', 'dev', '--legacy-id', '1', '--io', '0x2f8:8')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('destroyed virtual device in dev\n')
    expect(
      s.json(
        'vdev',
        'destroy',
        'dev',
        '--vendor',
        '0x8086',
        '--device',
        '0x1234',
        '--slot',
        '0x18',
      ),
    ).toMatchObject({
      vendor: '0x8086',
      device: '0x1234',
      slot: '0x18',
    })
    expect(s.vm('dev').vdevs).toEqual([])
    expectRefusal(s.run('vdev', 'destroy', 'dev', '--legacy-id', '1'), 'DESTROY_VDEV', 'EINVAL')
  })
})
