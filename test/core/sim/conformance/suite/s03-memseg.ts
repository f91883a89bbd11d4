// §3: SET_MEMSEG / UNSET_MEMSEG: RAM pinning and records, PFN mappings, MMIO, memory
// types and the hypervisor's 4 KiB rule.

import { describe, expect, it } from 'vitest'
import { Ioctl, Memmap, MemType } from '../../../../../src/index.js'
import type { ConformanceBackend } from '../backend.js'
import {
  createVm,
  errnoOf,
  guestOf,
  lacks,
  memmap,
  pauseAndDestroy,
  runningVm,
  vmCreation,
} from '../helpers.js'

const MiB = 0x10_0000n
/** A device BAR of the default inventory (UHD Graphics BAR0): PFN-mappable, not RAM. */
const BAR = 0xa000_0000n

export function memsegSuite(backend: ConformanceBackend) {
  describe(`§3.3 §3.4 SET_MEMSEG [${backend.name}]`, () => {
    const failures: Array<[string, (guest: bigint) => Uint8Array | undefined, string]> = [
      ['RAM len 0', (g) => memmap({ type: Memmap.RAM, vma_base: g, len: 0n }), 'EINVAL'],
      [
        'RAM len 4095 (< one page)',
        (g) => memmap({ type: Memmap.RAM, vma_base: g, len: 4095n }),
        'EINVAL',
      ],
      ['type 2', (g) => memmap({ type: 2, vma_base: g, len: 4096n }), 'EINVAL'],
      ['type 0xffffffff', (g) => memmap({ type: 0xffffffff, vma_base: g, len: 4096n }), 'EINVAL'],
      [
        'RAM at an unmapped vma_base',
        () => memmap({ type: Memmap.RAM, vma_base: 0x1000n, len: 4096n }),
        'EFAULT',
      ],
      [
        'RAM running past the mapping',
        (g) => memmap({ type: Memmap.RAM, vma_base: g, len: 2n * MiB }),
        'EFAULT',
      ],
      [
        'RAM whose vma_base is beyond 2^53',
        () => memmap({ type: Memmap.RAM, vma_base: 1n << 60n, len: 4096n }),
        'EFAULT',
      ],
      ['a NULL argument', () => undefined, 'EFAULT'],
      [
        'a 31-byte argument',
        (g) => memmap({ type: Memmap.RAM, vma_base: g, len: 4096n }).subarray(0, 31),
        'EFAULT',
      ],
      [
        'MMIO len not a 4 KiB multiple (hypervisor -EINVAL)',
        () => memmap({ type: Memmap.MMIO, user_vm_pa: 0xd000_0000n, vma_base: BAR, len: 0x1800n }),
        'EINVAL',
      ],
      [
        'MMIO over hypervisor memory (invalid Service-VM range)',
        () =>
          memmap({
            type: Memmap.MMIO,
            user_vm_pa: 0xd000_0000n,
            vma_base: 0x7000_0000n,
            len: 0x1000n,
          }),
        'EINVAL',
      ],
      [
        'MMIO beyond the physical address space',
        () => memmap({ type: Memmap.MMIO, user_vm_pa: 1n << 50n, vma_base: BAR, len: 0x1000n }),
        'EINVAL',
      ],
    ]

    it.each(failures)('§3.3 §10.2 %s -> $2', async (_label, build, code) => {
      const sys = backend.create()
      const vm = await createVm(sys)
      const guest = await vm.proc.mmap(Number(MiB))
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.SET_MEMSEG, build(guest)))).toBe(code)
      if (sys.inspect) expect(sys.inspect.ept(vm.vmid)).toEqual([])
    })

    it.skipIf(lacks(backend, 'inspect'))(
      '§3.4 §9.2 1 MiB of RAM: 256 page regions, WB whatever type was asked, access bits kept',
      async () => {
        const sys = backend.create()
        const vm = await createVm(sys)
        const guest = await vm.proc.mmap(Number(MiB))
        const arg = memmap({
          type: Memmap.RAM,
          attr: MemType.UC | 0x5,
          user_vm_pa: 0n,
          vma_base: guest,
          len: MiB,
        })
        expect(await vm.proc.ioctl(vm.fd, Ioctl.SET_MEMSEG, arg)).toBe(0)
        const ept = sys.inspect!.ept(vm.vmid)
        // The pages are contiguous here, so the 256 ops merge into one mapping.
        expect(ept).toEqual([
          { gpa: 0n, hpa: await vm.proc.pagemap!(guest), size: MiB, attr: MemType.WB | 0x5 },
        ])
      },
    )

    it.skipIf(lacks(backend, 'inspect'))('§3.3 §11.9 MMIO is always UC', async () => {
      const sys = backend.create()
      const vm = await createVm(sys)
      const arg = memmap({
        type: Memmap.MMIO,
        attr: MemType.WB | MemType.WC | 0x3,
        user_vm_pa: 0xd000_0000n,
        vma_base: BAR,
        len: 0x4000n,
      })
      expect(await vm.proc.ioctl(vm.fd, Ioctl.SET_MEMSEG, arg)).toBe(0)
      expect(sys.inspect!.ept(vm.vmid)).toEqual([
        { gpa: 0xd000_0000n, hpa: BAR, size: 0x4000n, attr: MemType.UC | 0x3 },
      ])
    })

    it.skipIf(lacks(backend, 'inspect'))(
      '§3.6 overlaps are not checked: a later add overwrites',
      async () => {
        const sys = backend.create()
        const vm = await createVm(sys)
        const add = (gpa: bigint, hpa: bigint, len: bigint) =>
          vm.proc.ioctl(
            vm.fd,
            Ioctl.SET_MEMSEG,
            memmap({ type: Memmap.MMIO, user_vm_pa: gpa, vma_base: hpa, len }),
          )
        await add(0xd000_0000n, BAR, 0x4000n)
        await add(0xd000_1000n, BAR + 0x10_0000n, 0x1000n)
        await add(0xd000_1000n, BAR + 0x10_0000n, 0x1000n)
        expect(sys.inspect!.ept(vm.vmid).map((r) => [r.gpa, r.hpa, r.size])).toEqual([
          [0xd000_0000n, BAR, 0x1000n],
          [0xd000_1000n, BAR + 0x10_0000n, 0x1000n],
          [0xd000_2000n, BAR + 0x2000n, 0x2000n],
        ])
      },
    )

    it('§3.4 step 4 §11.9 at most 256 RAM records per VM object, counted over its whole life (§2.4)', async () => {
      const sys = backend.create()
      const vm = await createVm(sys)
      const guest = await vm.proc.mmap(257 * 4096)
      const page = (i: number) =>
        memmap({
          type: Memmap.RAM,
          user_vm_pa: BigInt(i) * 4096n,
          vma_base: guest + BigInt(i) * 4096n,
          len: 4096n,
        })
      for (let i = 0; i < 256; i++) await vm.proc.ioctl(vm.fd, Ioctl.SET_MEMSEG, page(i))
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.SET_MEMSEG, page(256)))).toBe('ENOMEM')
      // Destroy drops the records but not the count: the re-created VM has no slot left.
      await pauseAndDestroy(vm)
      const ioreq = await vm.proc.mmap(4096)
      await vm.proc.ioctl(
        vm.fd,
        Ioctl.CREATE_VM,
        vmCreation({ ioreq_buf: ioreq, cpu_affinity: 0b10n }),
      )
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.SET_MEMSEG, page(0)))).toBe('ENOMEM')
      // PFN mappings and MMIO make no records and still work.
      const mmio = memmap({
        type: Memmap.MMIO,
        user_vm_pa: 0xd000_0000n,
        vma_base: BAR,
        len: 0x1000n,
      })
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.SET_MEMSEG, mmio))).toBe('OK')
    })

    it.skipIf(lacks(backend, 'inspect'))(
      '§3.4 a sub-page tail is not mapped; the hypervisor only sees whole pages',
      async () => {
        const sys = backend.create()
        const vm = await createVm(sys)
        const guest = await vm.proc.mmap(0x3000)
        const arg = memmap({
          type: Memmap.RAM,
          user_vm_pa: 0x10_0000n,
          vma_base: guest,
          len: 0x2fffn,
        })
        expect(await vm.proc.ioctl(vm.fd, Ioctl.SET_MEMSEG, arg)).toBe(0)
        expect(sys.inspect!.ept(vm.vmid).map((r) => r.size)).toEqual([0x2000n])
      },
    )

    it.skipIf(lacks(backend, 'guest', 'inspect'))(
      '§3.4 §9.2 the guest sees the pinned pages: RAM accesses never leave the hypervisor',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys, { client: false })
        const guest = await vm.proc.mmap(Number(MiB))
        await vm.proc.ioctl(
          vm.fd,
          Ioctl.SET_MEMSEG,
          memmap({ type: Memmap.RAM, vma_base: guest, len: MiB }),
        )
        const access = guestOf(sys)
        await access({
          vmid: vm.vmid,
          vcpu: 0,
          type: 'mmio',
          dir: 'write',
          addr: 0x400,
          size: 2,
          value: 42,
        })
        expect([...(await vm.proc.read(guest + 0x400n, 2))]).toEqual([42, 0])
        await vm.proc.write(guest + 0x800n, Uint8Array.of(0x78, 0x56, 0x34, 0x12))
        expect(
          await access({ vmid: vm.vmid, vcpu: 0, type: 'mmio', dir: 'read', addr: 0x800, size: 4 }),
        ).toBe(0x12345678n)
      },
    )
  })

  describe(`§3.4 pinned RAM outlives the process's mapping [${backend.name}]`, () => {
    it.skipIf(lacks(backend, 'guest', 'inspect'))(
      '§3.4 after munmap the guest still reads and writes the pinned pages',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys, { client: false })
        const guest = await vm.proc.mmap(Number(MiB))
        await vm.proc.ioctl(
          vm.fd,
          Ioctl.SET_MEMSEG,
          memmap({ type: Memmap.RAM, vma_base: guest, len: MiB }),
        )
        await vm.proc.write(guest + 0x800n, Uint8Array.of(0x78, 0x56, 0x34, 0x12))
        const access = guestOf(sys)
        const read = () =>
          access({ vmid: vm.vmid, vcpu: 0, type: 'mmio', dir: 'read', addr: 0x800, size: 4 })
        expect(await read()).toBe(0x12345678n)
        await vm.proc.munmap(guest, Number(MiB))
        expect(await errnoOf(vm.proc.read(guest + 0x800n, 4))).toBe('EFAULT')
        expect(await read()).toBe(0x12345678n)
        await access({
          vmid: vm.vmid,
          vcpu: 0,
          type: 'mmio',
          dir: 'write',
          addr: 0x800,
          size: 4,
          value: 0xcafe,
        })
        expect(await read()).toBe(0xcafen)
      },
    )
  })

  describe(`§3.4 A PFN-mapped areas [${backend.name}]`, () => {
    const pfnCases: Array<[string, bigint[], boolean, number, bigint, string]> = [
      ['span past the end of the VMA', [BAR, BAR + 0x1000n], true, 0x7, 0x3000n, 'EINVAL'],
      ['read-only PTE with WRITE asked', [BAR], false, 0x3, 0x1000n, 'EFAULT'],
      ['read-only PTE without WRITE', [BAR], false, 0x5, 0x1000n, 'OK'],
      ['ordinary RAM (a refcounted page)', [0x1000_0000n], true, 0x7, 0x1000n, 'EFAULT'],
      ['PFNs not contiguous', [BAR, BAR + 0x2000n], true, 0x7, 0x2000n, 'EINVAL'],
      ['contiguous device pages', [BAR, BAR + 0x1000n], true, 0x7, 0x2000n, 'OK'],
    ]

    it.skipIf(lacks(backend, 'pfnmap')).each(pfnCases)(
      '§3.4 A %s -> $5',
      async (_label, pages, writable, attr, len, code) => {
        const sys = backend.create()
        const vm = await createVm(sys)
        const base = await vm.proc.mmapPfn!(pages, { writable })
        const arg = memmap({ type: Memmap.RAM, attr, user_vm_pa: 0x20_0000n, vma_base: base, len })
        expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.SET_MEMSEG, arg))).toBe(code)
      },
    )

    it.skipIf(lacks(backend, 'pfnmap', 'inspect'))(
      '§3.4 A one WB region, no record (the 256 limit does not count it)',
      async () => {
        const sys = backend.create()
        const vm = await createVm(sys)
        const base = await vm.proc.mmapPfn!([BAR, BAR + 0x1000n])
        const arg = memmap({
          type: Memmap.RAM,
          attr: MemType.UC | 0x7,
          user_vm_pa: 0x20_0000n,
          vma_base: base,
          len: 0x2000n,
        })
        await vm.proc.ioctl(vm.fd, Ioctl.SET_MEMSEG, arg)
        expect(sys.inspect!.ept(vm.vmid)).toEqual([
          { gpa: 0x20_0000n, hpa: BAR, size: 0x2000n, attr: MemType.WB | 0x7 },
        ])
      },
    )
  })

  describe(`§3.5 UNSET_MEMSEG [${backend.name}]`, () => {
    it.each([
      ['RAM (never removable before destroy)', Memmap.RAM, 'EINVAL'],
      ['type 7', 7, 'EINVAL'],
      ['MMIO that is not mapped (hypervisor -EINVAL)', Memmap.MMIO, 'EINVAL'],
    ] as const)('§3.5 §11.9 %s -> $2', async (_label, type, code) => {
      const sys = backend.create()
      const vm = await createVm(sys)
      const guest = await vm.proc.mmap(0x1000)
      await vm.proc.ioctl(
        vm.fd,
        Ioctl.SET_MEMSEG,
        memmap({ type: Memmap.RAM, vma_base: guest, len: 0x1000n }),
      )
      const arg = memmap({ type, user_vm_pa: 0xd000_0000n, vma_base: guest, len: 0x1000n })
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.UNSET_MEMSEG, arg))).toBe(code)
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.UNSET_MEMSEG, arg.subarray(0, 8)))).toBe(
        'EFAULT',
      )
    })

    it.skipIf(lacks(backend, 'inspect'))('§3.5 MMIO unset removes exactly the range', async () => {
      const sys = backend.create()
      const vm = await createVm(sys)
      const seg = (len: bigint, gpa = 0xd000_0000n) =>
        memmap({ type: Memmap.MMIO, user_vm_pa: gpa, vma_base: BAR, len })
      await vm.proc.ioctl(vm.fd, Ioctl.SET_MEMSEG, seg(0x3000n))
      expect(await vm.proc.ioctl(vm.fd, Ioctl.UNSET_MEMSEG, seg(0x1000n, 0xd000_1000n))).toBe(0)
      expect(sys.inspect!.ept(vm.vmid).map((r) => [r.gpa, r.size])).toEqual([
        [0xd000_0000n, 0x1000n],
        [0xd000_2000n, 0x1000n],
      ])
      // The hole is no longer mapped: unsetting it again fails.
      expect(
        await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.UNSET_MEMSEG, seg(0x1000n, 0xd000_1000n))),
      ).toBe('EINVAL')
    })
  })
}
