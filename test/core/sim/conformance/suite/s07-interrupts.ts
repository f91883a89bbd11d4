// §7: SET_IRQLINE, INJECT_MSI, VM_INTR_MONITOR, pass-through, vdevs, PM and vCPU registers.

import { describe, expect, it } from 'vitest'
import {
  encode,
  GsiOp,
  Ioctl,
  IntrMonitorCmd,
  packBdf,
  PmCmd,
  structs,
} from '../../../../../src/index.js'
import type { ConformanceBackend } from '../backend.js'
import { createVm, errnoOf, irqline, lacks, msiArg, runningVm, type VmHandle } from '../helpers.js'

const withInspect = (backend: ConformanceBackend) => it.skipIf(lacks(backend, 'inspect'))

/** The I211 NIC of the default inventory, and its INTx GSI. */
const NIC = packBdf({ bus: 2, dev: 0, func: 0 })
const NIC_GSI = 19
const ROOT_PORT = packBdf({ bus: 0, dev: 0x1c, func: 0 })

const pcidev = (phys_bdf: number, virt_bdf = packBdf({ bus: 0, dev: 5, func: 0 })) =>
  encode(structs.acrn_pcidev, {
    type: 1,
    phys_bdf,
    virt_bdf,
    intr_line: 5,
    intr_pin: 1,
    bar: [0xc000_0000, 0, 0xe001],
  })

const ptdevIrq = (f: {
  type?: number
  phys_bdf?: number
  virt_pin?: number
  phys_pin?: number
  is_pic_pin?: number
}) =>
  encode(structs.acrn_ptdev_irq, {
    type: f.type ?? 0,
    virt_bdf: packBdf({ bus: 0, dev: 5, func: 0 }),
    phys_bdf: f.phys_bdf ?? NIC,
    intx: {
      virt_pin: f.virt_pin ?? 10,
      phys_pin: f.phys_pin ?? NIC_GSI,
      is_pic_pin: f.is_pic_pin ?? 0,
    },
  })

const pmCmd = (f: { vmid: number; vcpu?: number; index?: number; type: number }) =>
  (BigInt(f.vmid) << 24n) |
  (BigInt(f.vcpu ?? 0) << 16n) |
  (BigInt(f.index ?? 0) << 8n) |
  BigInt(f.type)

const u64 = (value: bigint, size = 8) => {
  const bytes = new Uint8Array(size)
  new DataView(bytes.buffer).setBigUint64(0, value, true)
  return bytes
}

export function interruptsSuite(backend: ConformanceBackend) {
  describe(`§7.1 SET_IRQLINE [${backend.name}]`, () => {
    const level = (vm: VmHandle, chip: 'ioapic' | 'pic', pin: number) =>
      vm.sys.inspect!.gsi(vm.vmid)![chip].find((l) => l.pin === pin)

    withInspect(backend)(
      '§7.1 §11.12 the argument is the value: gsi in bits 31:0, op in 63:32',
      async () => {
        const vm = await createVm(backend.create())
        await vm.proc.ioctl(vm.fd, Ioctl.SET_IRQLINE, irqline(9, GsiOp.SET_HIGH))
        expect(level(vm, 'ioapic', 9)).toEqual({ pin: 9, level: 1, assertions: 1 })
        expect(level(vm, 'pic', 9)).toEqual({ pin: 9, level: 1, assertions: 1 })
        await vm.proc.ioctl(vm.fd, Ioctl.SET_IRQLINE, irqline(9, GsiOp.SET_LOW))
        expect(level(vm, 'ioapic', 9)).toEqual({ pin: 9, level: 0, assertions: 1 })
      },
    )

    it.skipIf(lacks(backend, 'inspect')).each([
      ['RAISING_PULSE ends low, one assertion', GsiOp.RAISING_PULSE, 0, 1],
      ['FALLING_PULSE ends high, one assertion', GsiOp.FALLING_PULSE, 1, 1],
      ['SET_HIGH', GsiOp.SET_HIGH, 1, 1],
      ['SET_LOW on a low line', GsiOp.SET_LOW, 0, 0],
    ])('§7.1 A.3 %s', async (_label, op, finalLevel, assertions) => {
      const vm = await createVm(backend.create())
      await vm.proc.ioctl(vm.fd, Ioctl.SET_IRQLINE, irqline(20, op))
      const line = vm.sys.inspect!.gsi(vm.vmid)!.ioapic.find((l) => l.pin === 20) ?? {
        level: 0,
        assertions: 0,
      }
      expect([line.level, line.assertions]).toEqual([finalLevel, assertions])
      // GSI 20 is above the vPIC's 16 pins.
      expect(vm.sys.inspect!.gsi(vm.vmid)!.pic).toEqual([])
    })

    withInspect(backend)('§7.1 A.3 GSI 2 drives vPIC pin 0', async () => {
      const vm = await createVm(backend.create())
      await vm.proc.ioctl(vm.fd, Ioctl.SET_IRQLINE, irqline(2, GsiOp.SET_HIGH))
      expect(level(vm, 'pic', 0)?.level).toBe(1)
      expect(level(vm, 'pic', 2)).toBeUndefined()
      expect(level(vm, 'ioapic', 2)?.level).toBe(1)
    })

    it("§7.1 A.3 a GSI at or above the VM's GSI count is the hypervisor's -1: EPERM", async () => {
      const vm = await createVm(backend.create())
      expect(
        await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.SET_IRQLINE, irqline(47, GsiOp.SET_HIGH))),
      ).toBe('OK')
      expect(
        await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.SET_IRQLINE, irqline(48, GsiOp.SET_HIGH))),
      ).toBe('EPERM')
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.SET_IRQLINE, 0xffff_ffffn))).toBe('EPERM')
    })
  })

  describe(`§7.2 INJECT_MSI [${backend.name}]`, () => {
    withInspect(backend)(
      '§7.2 counts per vCPU and vector; broadcast reaches every vCPU',
      async () => {
        const vm = await runningVm(backend.create(), { cpu_affinity: 0b110n })
        await vm.proc.ioctl(vm.fd, Ioctl.INJECT_MSI, msiArg(0xfee0_1000n, 0x30n))
        await vm.proc.ioctl(vm.fd, Ioctl.INJECT_MSI, msiArg(0xfee0_1000n, 0x30n))
        await vm.proc.ioctl(vm.fd, Ioctl.INJECT_MSI, msiArg(0xfeef_f00cn, 0x4031n))
        expect(vm.sys.inspect!.msi(vm.vmid)).toEqual([
          { vcpu: 0, vector: 0x31, count: 1 },
          { vcpu: 1, vector: 0x30, count: 2 },
          { vcpu: 1, vector: 0x31, count: 1 },
        ])
      },
    )

    it.each([
      ['a non-MSI address', msiArg(0xfed0_0000n, 0x30n), 'EPERM'],
      ['a NULL argument', undefined, 'EFAULT'],
      ['a 15-byte argument', msiArg(0xfee0_0000n, 0x30n).subarray(0, 15), 'EFAULT'],
    ] as const)('§7.2 %s -> $2', async (_label, arg, code) => {
      const vm = await runningVm(backend.create())
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.INJECT_MSI, arg))).toBe(code)
    })
  })

  describe(`§7.3 VM_INTR_MONITOR [${backend.name}]`, () => {
    const monitor = (cmd: number, bufCnt: number, buffer: bigint[] = []) =>
      encode(structs.acrn_intr_monitor, { cmd, buf_cnt: bufCnt, buffer })

    it('§7.3 §11.12 the argument is an address: an unmapped one is EFAULT', async () => {
      const vm = await createVm(backend.create())
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.VM_INTR_MONITOR, 0x1000n))).toBe('EFAULT')
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.VM_INTR_MONITOR))).toBe('EFAULT')
    })

    it("§7.3 buf_cnt above 48 is the hypervisor's -EINVAL", async () => {
      const vm = await createVm(backend.create())
      const page = await vm.proc.mmap(4096)
      await vm.proc.write(page, monitor(IntrMonitorCmd.GET_DATA, 49))
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.VM_INTR_MONITOR, page))).toBe('EINVAL')
    })

    it.skipIf(lacks(backend, 'guest', 'inspect'))(
      '§7.3 §11.15 GET_DATA fills (pirq, count) pairs in the page holding the address; DELAY_INT sets the delay',
      async () => {
        const sys = backend.create()
        const vm = await createVm(sys)
        await vm.proc.ioctl(vm.fd, Ioctl.ASSIGN_PCIDEV, pcidev(NIC))
        await vm.proc.ioctl(vm.fd, Ioctl.SET_PTDEV_INTR, ptdevIrq({}))
        await vm.proc.ioctl(vm.fd, Ioctl.START_VM)
        sys.physicalInterrupt!(NIC_GSI)
        sys.physicalInterrupt!(NIC_GSI)
        const page = await vm.proc.mmap(4096)
        await vm.proc.write(page, monitor(IntrMonitorCmd.GET_DATA, 48))
        // Any address inside the page selects the page.
        expect(await vm.proc.ioctl(vm.fd, Ioctl.VM_INTR_MONITOR, page + 0x345n)).toBe(0)
        const out = new DataView((await vm.proc.read(page, 392)).buffer)
        expect(out.getUint32(4, true)).toBe(2)
        expect([out.getBigUint64(8, true), out.getBigUint64(16, true)]).toEqual([
          BigInt(NIC_GSI),
          2n,
        ])
        // The virtual line saw the pulses.
        expect(sys.inspect!.gsi(vm.vmid)!.ioapic.find((l) => l.pin === 10)?.assertions).toBe(2)
        await vm.proc.write(page, monitor(IntrMonitorCmd.DELAY_INT, 1, [25n]))
        await vm.proc.ioctl(vm.fd, Ioctl.VM_INTR_MONITOR, page)
        expect(sys.inspect!.intrMonitor(vm.vmid)?.delayMs).toBe(25n)
      },
    )
  })

  describe(`§7.4 §7.5 pass-through [${backend.name}]`, () => {
    it.each([
      ['a device the host does not have', packBdf({ bus: 9, dev: 9, func: 0 }), 'ENODEV'],
      ['a bridge', ROOT_PORT, 'ENODEV'],
      ['an endpoint', NIC, 'OK'],
    ])('§7.5 ASSIGN_PCIDEV of %s -> $2', async (_label, bdf, code) => {
      const vm = await createVm(backend.create())
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.ASSIGN_PCIDEV, pcidev(bdf)))).toBe(code)
    })

    it('§7.5 a physical device is assigned to at most one VM', async () => {
      const sys = backend.create()
      const a = await createVm(sys)
      const b = await createVm(sys)
      await a.proc.ioctl(a.fd, Ioctl.ASSIGN_PCIDEV, pcidev(NIC))
      expect(await errnoOf(b.proc.ioctl(b.fd, Ioctl.ASSIGN_PCIDEV, pcidev(NIC)))).toBe('ENODEV')
      await a.proc.ioctl(a.fd, Ioctl.DEASSIGN_PCIDEV, pcidev(NIC))
      expect(await errnoOf(b.proc.ioctl(b.fd, Ioctl.ASSIGN_PCIDEV, pcidev(NIC)))).toBe('OK')
      // Destroying the owner gives the device back.
      const c = await createVm(sys)
      await b.proc.ioctl(b.fd, Ioctl.PAUSE_VM)
      await b.proc.ioctl(b.fd, Ioctl.DESTROY_VM)
      expect(await errnoOf(c.proc.ioctl(c.fd, Ioctl.ASSIGN_PCIDEV, pcidev(NIC)))).toBe('OK')
    })

    it('§7.5 assignment only while the VM is created; deassign needs the device', async () => {
      const vm = await runningVm(backend.create())
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.ASSIGN_PCIDEV, pcidev(NIC)))).toBe('EINVAL')
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.DEASSIGN_PCIDEV, pcidev(NIC)))).toBe('ENODEV')
      expect(
        await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.ASSIGN_PCIDEV, pcidev(NIC).subarray(0, 35))),
      ).toBe('EFAULT')
    })

    withInspect(backend)('§7.5 the pass-through table shows who owns what', async () => {
      const vm = await createVm(backend.create())
      await vm.proc.ioctl(vm.fd, Ioctl.ASSIGN_PCIDEV, pcidev(NIC))
      await vm.proc.ioctl(vm.fd, Ioctl.SET_PTDEV_INTR, ptdevIrq({}))
      const tables = vm.sys.inspect!.passthrough()
      expect(tables.pci).toMatchObject([
        { vmid: vm.vmid, physBdf: NIC, virtBdf: packBdf({ bus: 0, dev: 5, func: 0 }) },
      ])
      expect(tables.intx).toMatchObject([
        { vmid: vm.vmid, virtPin: 10, physPin: NIC_GSI, count: 0 },
      ])
    })

    // [label, fields, SET result, RESET result]: RESET checks the type and the device only.
    it.each([
      ['INTx of an assigned device', {}, 'OK', 'OK'],
      ['MSI (not through this call)', { type: 1 }, 'EPERM', 'EPERM'],
      [
        'a device that is not assigned',
        { phys_bdf: packBdf({ bus: 1, dev: 0, func: 0 }) },
        'EPERM',
        'EPERM',
      ],
      ['a virtual pin beyond the GSI count', { virt_pin: 48 }, 'EPERM', 'OK'],
      ['a PIC pin above 15', { virt_pin: 16, is_pic_pin: 1 }, 'EPERM', 'OK'],
      ['a physical pin the IOAPICs do not have', { phys_pin: 120 }, 'EPERM', 'OK'],
    ] as const)(
      '§7.4 SET/RESET_PTDEV_INTR %s -> $2, $3',
      async (_label, fields, setCode, resetCode) => {
        const vm = await createVm(backend.create())
        await vm.proc.ioctl(vm.fd, Ioctl.ASSIGN_PCIDEV, pcidev(NIC))
        expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.SET_PTDEV_INTR, ptdevIrq(fields)))).toBe(
          setCode,
        )
        expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.RESET_PTDEV_INTR, ptdevIrq(fields)))).toBe(
          resetCode,
        )
      },
    )

    it.skipIf(lacks(backend, 'inspect'))(
      '§7.4 RESET_PTDEV_INTR removes the remapping; a physical pin is remapped for one VM',
      async () => {
        const sys = backend.create()
        const a = await createVm(sys)
        const b = await createVm(sys)
        await a.proc.ioctl(a.fd, Ioctl.ASSIGN_PCIDEV, pcidev(NIC))
        await a.proc.ioctl(a.fd, Ioctl.SET_PTDEV_INTR, ptdevIrq({}))
        const audio = packBdf({ bus: 0, dev: 0x1f, func: 3 })
        await b.proc.ioctl(b.fd, Ioctl.ASSIGN_PCIDEV, pcidev(audio))
        // B's device claims A's physical pin.
        expect(
          await errnoOf(b.proc.ioctl(b.fd, Ioctl.SET_PTDEV_INTR, ptdevIrq({ phys_bdf: audio }))),
        ).toBe('EPERM')
        await a.proc.ioctl(a.fd, Ioctl.RESET_PTDEV_INTR, ptdevIrq({}))
        expect(sys.inspect!.passthrough().intx).toEqual([])
        expect(
          await errnoOf(b.proc.ioctl(b.fd, Ioctl.SET_PTDEV_INTR, ptdevIrq({ phys_bdf: audio }))),
        ).toBe('OK')
      },
    )
  })

  describe(`§7.6 §7.7 MMIO devices and vdevs [${backend.name}]`, () => {
    const mmiodev = (base = 0xfed4_0000n, size = 0x5000n, gpa = 0xfed4_0000n) => {
      const name = new Uint8Array(8)
      name.set(new TextEncoder().encode('MSFT0101'))
      return encode(structs.acrn_mmiodev, {
        name,
        res: [{ user_vm_pa: gpa, service_vm_pa: base, size, mem_type: 0n }],
      })
    }

    withInspect(backend)(
      '§7.6 ASSIGN_MMIODEV maps the resource UC; DEASSIGN unmaps it',
      async () => {
        const vm = await createVm(backend.create())
        await vm.proc.ioctl(vm.fd, Ioctl.ASSIGN_MMIODEV, mmiodev())
        expect(vm.sys.inspect!.ept(vm.vmid)).toEqual([
          { gpa: 0xfed4_0000n, hpa: 0xfed4_0000n, size: 0x5000n, attr: 0x107 },
        ])
        await vm.proc.ioctl(vm.fd, Ioctl.DEASSIGN_MMIODEV, mmiodev())
        expect(vm.sys.inspect!.ept(vm.vmid)).toEqual([])
      },
    )

    it.each([
      ['an unaligned size', mmiodev(0xfed4_0000n, 0x4800n), 'EINVAL'],
      ['memory no MMIO device has', mmiodev(0xa000_0000n, 0x1000n), 'EINVAL'],
      ['the device', mmiodev(), 'OK'],
    ] as const)('§7.6 ASSIGN_MMIODEV of %s -> $2', async (_label, arg, code) => {
      const vm = await createVm(backend.create())
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.ASSIGN_MMIODEV, arg))).toBe(code)
    })

    it('§7.6 an MMIO device goes to one VM at a time', async () => {
      const sys = backend.create()
      const a = await createVm(sys)
      const b = await createVm(sys)
      await a.proc.ioctl(a.fd, Ioctl.ASSIGN_MMIODEV, mmiodev())
      expect(await errnoOf(b.proc.ioctl(b.fd, Ioctl.ASSIGN_MMIODEV, mmiodev()))).toBe('EINVAL')
      expect(await errnoOf(b.proc.ioctl(b.fd, Ioctl.DEASSIGN_MMIODEV, mmiodev()))).toBe('EINVAL')
    })

    it('§7.7 one vdev per slot; destroying an unknown one is EINVAL', async () => {
      const vm = await createVm(backend.create())
      const vdev = (slot: bigint) =>
        encode(structs.acrn_vdev, {
          id: { value: 0x1110_1af4n },
          slot,
          io_addr: [0xc000_0000],
          io_size: [0x100],
        })
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.CREATE_VDEV, vdev(0x28n)))).toBe('OK')
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.CREATE_VDEV, vdev(0x28n)))).toBe('EINVAL')
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.DESTROY_VDEV, vdev(0x30n)))).toBe('EINVAL')
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.DESTROY_VDEV, vdev(0x28n)))).toBe('OK')
      expect(
        await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.CREATE_VDEV, vdev(0x28n).subarray(0, 100))),
      ).toBe('EFAULT')
    })
  })

  describe(`§7.8 PM_GET_CPU_STATE [${backend.name}]`, () => {
    withInspect(backend)(
      '§7.8 counts are one byte in a u64; DATA writes 48 or 32 bytes through the same pointer',
      async () => {
        const vm = await createVm(backend.create())
        const host = vm.sys.inspect!.host()
        const buf = new Uint8Array(48)
        buf.set(u64(pmCmd({ vmid: vm.vmid, type: PmCmd.GET_PX_CNT })))
        buf.fill(0xee, 8)
        await vm.proc.ioctl(vm.fd, Ioctl.PM_GET_CPU_STATE, buf)
        expect(new DataView(buf.buffer).getBigUint64(0, true)).toBe(BigInt(host.px.length))
        expect(buf[8]).toBe(0xee)

        buf.set(u64(pmCmd({ vmid: vm.vmid, index: 1, type: PmCmd.GET_PX_DATA })))
        await vm.proc.ioctl(vm.fd, Ioctl.PM_GET_CPU_STATE, buf)
        const px = new DataView(buf.buffer)
        expect(px.getBigUint64(0, true)).toBe(BigInt(host.px[1]!.coreFrequency))
        expect(px.getBigUint64(40, true)).toBe(BigInt(host.px[1]!.status))

        const cx = new Uint8Array(32)
        cx.set(u64(pmCmd({ vmid: vm.vmid, index: 2, type: PmCmd.GET_CX_DATA })))
        await vm.proc.ioctl(vm.fd, Ioctl.PM_GET_CPU_STATE, cx)
        const c = new DataView(cx.buffer)
        expect([c.getUint8(12), c.getUint32(16, true), c.getBigUint64(24, true)]).toEqual([
          host.cx[1]!.type,
          host.cx[1]!.latency,
          BigInt(host.cx[1]!.power),
        ])
      },
    )

    it.each([
      ['an unknown type: 0, no hypercall, nothing written', { type: 9 }, 8, 'OK'],
      ['a Px index past the table', { index: 200, type: PmCmd.GET_PX_DATA }, 48, 'EPERM'],
      ['Cx index 0 (entries count from 1)', { index: 0, type: PmCmd.GET_CX_DATA }, 32, 'EPERM'],
      ['a vCPU the VM does not have', { vcpu: 7, index: 1, type: PmCmd.GET_CX_DATA }, 32, 'EPERM'],
      [
        'DATA into an 8-byte buffer (the copy-out faults)',
        { index: 0, type: PmCmd.GET_PX_DATA },
        8,
        'EFAULT',
      ],
      ['a 4-byte buffer (the copy-in faults)', { type: PmCmd.GET_PX_CNT }, 4, 'EFAULT'],
    ] as const)('§7.8 %s -> $3', async (_label, fields, size, code) => {
      const vm = await createVm(backend.create())
      const buf = new Uint8Array(size)
      const cmd = u64(pmCmd({ vmid: vm.vmid, ...fields }))
      buf.set(cmd.subarray(0, size))
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.PM_GET_CPU_STATE, buf))).toBe(code)
      if (code === 'OK') expect(buf).toEqual(cmd)
    })

    withInspect(backend)(
      '§7.8 §11.12 the VM comes from cmd bits 31:24, not from the fd',
      async () => {
        const sys = backend.create()
        const a = await createVm(sys, { cpu_affinity: 0b10n })
        const b = await createVm(sys, { cpu_affinity: 0b110n })
        // vCPU 1 exists in B only; asked through A's fd.
        const buf = new Uint8Array(32)
        buf.set(u64(pmCmd({ vmid: b.vmid, vcpu: 1, index: 1, type: PmCmd.GET_CX_DATA })))
        expect(await errnoOf(a.proc.ioctl(a.fd, Ioctl.PM_GET_CPU_STATE, buf))).toBe('OK')
        buf.set(u64(pmCmd({ vmid: a.vmid, vcpu: 1, index: 1, type: PmCmd.GET_CX_DATA })))
        expect(await errnoOf(b.proc.ioctl(b.fd, Ioctl.PM_GET_CPU_STATE, buf))).toBe('EPERM')
      },
    )
  })

  describe(`§7.9 SET_VCPU_REGS [${backend.name}]`, () => {
    /** vm-sample's real-mode BSP (§9.2 step 6). */
    const sampleRegs = (patch: (v: DataView) => void = () => undefined) => {
      const regs = encode(structs.acrn_vcpu_regs, {
        vcpu_id: 0,
        vcpu_regs: {
          cr0: 0x30n,
          cs_ar: 0x9f,
          cs_sel: 0xf000,
          cs_limit: 0xffff,
          cs_base: 0n,
          rip: 0n,
        },
      })
      patch(new DataView(regs.buffer))
      return regs
    }

    const reserved: Array<[string, number]> = [
      ['reserved[0]', 2],
      ['reserved[2]', 6],
      ['vcpu_regs.reserved_64[3]', 8 + 216 + 24],
      ['vcpu_regs.reserved_32[0]', 8 + 256],
      ['gdt.reserved[1]', 8 + 128 + 12],
      ['idt.reserved[2]', 8 + 144 + 14],
    ]

    it.each(reserved)('§7.9 a non-zero %s is EINVAL', async (_label, offset) => {
      const vm = await createVm(backend.create())
      expect(
        await errnoOf(
          vm.proc.ioctl(
            vm.fd,
            Ioctl.SET_VCPU_REGS,
            sampleRegs((v) => v.setUint8(offset, 1)),
          ),
        ),
      ).toBe('EINVAL')
    })

    it.each([
      ["vm-sample's registers", () => undefined, 'OK'],
      ["vcpu_id beyond the VM's vCPUs", (v: DataView) => v.setUint16(0, 3, true), 'EPERM'],
      ['vcpu_id beyond the maximum', (v: DataView) => v.setUint16(0, 16, true), 'EPERM'],
      [
        'CR0.PG without CR0.PE',
        (v: DataView) => v.setBigUint64(8 + 176, 0x8000_0030n, true),
        'EPERM',
      ],
      ['CR4.VMXE', (v: DataView) => v.setBigUint64(8 + 184, 1n << 13n, true), 'EPERM'],
    ] as const)('§7.9 A.3 %s -> $2', async (_label, patch, code) => {
      const vm = await createVm(backend.create())
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.SET_VCPU_REGS, sampleRegs(patch)))).toBe(code)
    })

    it('§7.9 A.3 not while the VM runs', async () => {
      const vm = await runningVm(backend.create())
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.SET_VCPU_REGS, sampleRegs()))).toBe('EPERM')
      await vm.proc.ioctl(vm.fd, Ioctl.PAUSE_VM)
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.SET_VCPU_REGS, sampleRegs()))).toBe('OK')
    })

    withInspect(backend)(
      '§7.9 §9.2 the hypervisor keeps the registers (real mode at CS base 0, IP 0)',
      async () => {
        const vm = await createVm(backend.create())
        expect(vm.sys.inspect!.vcpuRegs(vm.vmid, 0)).toMatchObject({
          rip: 0xfff0n,
          cs_base: 0xffff0000n,
        })
        await vm.proc.ioctl(vm.fd, Ioctl.SET_VCPU_REGS, sampleRegs())
        expect(vm.sys.inspect!.vcpuRegs(vm.vmid, 0)).toMatchObject({
          rip: 0n,
          cs_base: 0n,
          cr0: 0x30n,
          cs_sel: 0xf000,
        })
      },
    )
  })
}
