// §5: IOEVENTFD assign/deassign checks, conflicts, and what a guest access does.

import { describe, expect, it } from 'vitest'
import { IoeventfdFlag, Ioctl, IoreqState } from '../../../../../src/index.js'
import type { ConformanceBackend, ConformanceSystem } from '../backend.js'
import {
  createVm,
  errnoOf,
  guestOf,
  ioeventfdArg,
  lacks,
  peek,
  readSlot,
  runningVm,
  serve,
  vmCreation,
  type VmHandle,
} from '../helpers.js'

const { PIO, DATAMATCH, DEASSIGN } = IoeventfdFlag

async function count(vm: VmHandle, efd: number): Promise<bigint> {
  return vm.proc.eventfdRead(efd).catch((err: { code?: string }) => {
    if (err.code === 'EAGAIN') return 0n
    throw err
  })
}

export function ioeventfdSuite(backend: ConformanceBackend) {
  const withGuest = it.skipIf(lacks(backend, 'guest'))

  describe(`§5.2 §5.3 IOEVENTFD assign [${backend.name}]`, () => {
    type Build = (efd: number, other: { nullFd: number; hsmFd: number }) => Uint8Array | undefined
    const cases: Array<[string, Build, string]> = [
      [
        'reserved != 0',
        (efd) => ioeventfdArg({ fd: efd, addr: 0x100n, len: 4, reserved: 1 }),
        'EINVAL',
      ],
      [
        'addr + len overflows',
        (efd) => ioeventfdArg({ fd: efd, addr: 0xffff_ffff_ffff_fffen, len: 4 }),
        'EINVAL',
      ],
      [
        'addr + len reaches 2^64 exactly',
        (efd) => ioeventfdArg({ fd: efd, addr: 0xffff_ffff_ffff_fff8n, len: 8 }),
        'EINVAL',
      ],
      ['len 0', (efd) => ioeventfdArg({ fd: efd, addr: 0x100n, len: 0 }), 'EINVAL'],
      ['len 3', (efd) => ioeventfdArg({ fd: efd, addr: 0x100n, len: 3 }), 'EINVAL'],
      ['len 16', (efd) => ioeventfdArg({ fd: efd, addr: 0x100n, len: 16 }), 'EINVAL'],
      ['an fd that is not open', () => ioeventfdArg({ fd: 99, addr: 0x100n, len: 4 }), 'EBADF'],
      [
        'fd >= 2^31 (negative as an int)',
        () => ioeventfdArg({ fd: 0x8000_0003, addr: 0x100n, len: 4 }),
        'EBADF',
      ],
      [
        'an open file that is not an eventfd',
        (_e, o) => ioeventfdArg({ fd: o.nullFd, addr: 0x100n, len: 4 }),
        'EINVAL',
      ],
      [
        'the HSM fd itself',
        (_e, o) => ioeventfdArg({ fd: o.hsmFd, addr: 0x100n, len: 4 }),
        'EINVAL',
      ],
      [
        'len 8 at 2^64 - 9',
        (efd) => ioeventfdArg({ fd: efd, addr: 0xffff_ffff_ffff_fff7n, len: 8 }),
        'OK',
      ],
      [
        'unknown flag bits (ignored)',
        (efd) => ioeventfdArg({ fd: efd, flags: 0xf0, addr: 0x100n, len: 1 }),
        'OK',
      ],
      ['a NULL argument', () => undefined, 'EFAULT'],
      [
        'a 31-byte argument',
        (efd) => ioeventfdArg({ fd: efd, addr: 0x100n, len: 4 }).subarray(0, 31),
        'EFAULT',
      ],
    ]

    it.each(cases)('§5.3 §10.2 %s -> $2', async (_label, build, code) => {
      const vm = await createVm(backend.create())
      const efd = await vm.proc.eventfd(0)
      const nullFd = await vm.proc.open('/dev/null').catch(() => vm.fd)
      expect(
        await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.IOEVENTFD, build(efd, { nullFd, hsmFd: vm.fd }))),
      ).toBe(code)
    })

    // [label, first flags, first data, second flags, second data, second len, expected]
    const conflicts: Array<[string, number, bigint, number, bigint, number, string]> = [
      ['same eventfd, address, type, both wildcard', 0, 0n, 0, 0n, 4, 'EEXIST'],
      ['same eventfd and address, different length', 0, 0n, 0, 0n, 1, 'EEXIST'],
      ['one wildcard, one datamatch', 0, 0n, DATAMATCH, 5n, 4, 'EEXIST'],
      ['both datamatch, same data', DATAMATCH, 5n, DATAMATCH, 5n, 2, 'EEXIST'],
      ['both datamatch, different data', DATAMATCH, 5n, DATAMATCH, 6n, 4, 'OK'],
      ['PIO and MMIO at the same address', PIO, 0n, 0, 0n, 4, 'OK'],
    ]

    it.each(conflicts)(
      '§5.3 §11.10 conflict check: %s -> $6',
      async (_label, flags1, data1, flags2, data2, len2, code) => {
        const vm = await createVm(backend.create())
        const efd = await vm.proc.eventfd(0)
        await vm.proc.ioctl(
          vm.fd,
          Ioctl.IOEVENTFD,
          ioeventfdArg({ fd: efd, flags: flags1, addr: 0x200n, len: 4, data: data1 }),
        )
        const second = ioeventfdArg({
          fd: efd,
          flags: flags2,
          addr: 0x200n,
          len: len2,
          data: data2,
        })
        expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.IOEVENTFD, second))).toBe(code)
      },
    )

    it('§5.3 different eventfds at one address never conflict', async () => {
      const vm = await createVm(backend.create())
      const a = await vm.proc.eventfd(0)
      const b = await vm.proc.eventfd(0)
      await vm.proc.ioctl(vm.fd, Ioctl.IOEVENTFD, ioeventfdArg({ fd: a, addr: 0x200n, len: 4 }))
      expect(
        await errnoOf(
          vm.proc.ioctl(vm.fd, Ioctl.IOEVENTFD, ioeventfdArg({ fd: b, addr: 0x200n, len: 4 })),
        ),
      ).toBe('OK')
    })

    it.skipIf(lacks(backend, 'dup'))(
      '§5.3 the same eventfd through another fd number conflicts',
      async () => {
        const vm = await createVm(backend.create())
        const a = await vm.proc.eventfd(0)
        const twin = await vm.proc.dup!(a)
        await vm.proc.ioctl(vm.fd, Ioctl.IOEVENTFD, ioeventfdArg({ fd: a, addr: 0x200n, len: 4 }))
        expect(
          await errnoOf(
            vm.proc.ioctl(vm.fd, Ioctl.IOEVENTFD, ioeventfdArg({ fd: twin, addr: 0x200n, len: 4 })),
          ),
        ).toBe('EEXIST')
      },
    )
  })

  describe(`§5.4 IOEVENTFD deassign [${backend.name}]`, () => {
    it.each([
      ['an fd that is not open', 'EBADF'],
      ['an fd that is not an eventfd', 'EINVAL'],
      ['an eventfd with nothing registered', 'OK'],
    ] as const)('§5.4 %s -> $1', async (label, code) => {
      const vm = await createVm(backend.create())
      const efd = await vm.proc.eventfd(0)
      const fd = label.includes('not open') ? 77 : label.includes('not an eventfd') ? vm.fd : efd
      const arg = ioeventfdArg({ fd, flags: DEASSIGN, addr: 0x10n, len: 4 })
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.IOEVENTFD, arg))).toBe(code)
      // reserved is checked before the DEASSIGN branch.
      const reserved = ioeventfdArg({ fd, flags: DEASSIGN, addr: 0x10n, len: 4, reserved: 2 })
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.IOEVENTFD, reserved))).toBe('EINVAL')
    })

    withGuest(
      '§5.4 §11.10 deassign matches the eventfd only and removes one entry, the oldest',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys)
        const efd = await vm.proc.eventfd(0)
        await vm.proc.ioctl(
          vm.fd,
          Ioctl.IOEVENTFD,
          ioeventfdArg({ fd: efd, flags: PIO, addr: 0x10n, len: 1 }),
        )
        await vm.proc.ioctl(
          vm.fd,
          Ioctl.IOEVENTFD,
          ioeventfdArg({ fd: efd, flags: PIO, addr: 0x20n, len: 1 }),
        )
        // addr, len and flags of the request are ignored.
        const deassign = ioeventfdArg({ fd: efd, flags: DEASSIGN, addr: 0x20n, len: 8, data: 3n })
        expect(await vm.proc.ioctl(vm.fd, Ioctl.IOEVENTFD, deassign)).toBe(0)
        const access = guestOf(sys)
        const out = (port: number) =>
          access({
            vmid: vm.vmid,
            vcpu: 0,
            type: 'pio',
            dir: 'write',
            addr: port,
            size: 1,
            value: 0,
          })
        await out(0x20)
        expect(await count(vm, efd)).toBe(1n)
        const w = out(0x10)
        // 0x10 is no longer an ioeventfd: the default client gets it.
        expect((await serve(vm)).map((s) => s.address)).toEqual([0x10n])
        await w
      },
    )
  })

  describe(`§5.5 guest accesses in ioeventfd ranges [${backend.name}]`, () => {
    async function setup(
      sys: ConformanceSystem,
      regs: Array<{ flags?: number; addr: bigint; len: number; data?: bigint }>,
    ) {
      const vm = await runningVm(sys)
      const efds: number[] = []
      for (const r of regs) {
        const efd = await vm.proc.eventfd(0)
        await vm.proc.ioctl(vm.fd, Ioctl.IOEVENTFD, ioeventfdArg({ fd: efd, ...r }))
        efds.push(efd)
      }
      return { vm, efds }
    }

    withGuest(
      '§5.5 a write at the exact address signals the eventfd; the default client never sees it',
      async () => {
        const sys = backend.create()
        const { vm, efds } = await setup(sys, [{ flags: PIO, addr: 0x510n, len: 2 }])
        const attach = vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
        const access = guestOf(sys)
        for (let i = 0; i < 3; i++) {
          expect(
            await access({
              vmid: vm.vmid,
              vcpu: 0,
              type: 'pio',
              dir: 'write',
              addr: 0x510,
              size: 2,
              value: i,
            }),
          ).toBe(0n)
        }
        expect(await count(vm, efds[0]!)).toBe(3n)
        expect((await peek(attach)).state).toBe('pending')
        const slot = await readSlot(vm, 0)
        expect(slot).toMatchObject({ state: IoreqState.FREE, kernelHandled: 1 })
      },
    )

    const cases: Array<[string, number, number, bigint, 'signal' | 'swallowed' | 'default']> = [
      ['a narrower write at the start', 0x1000, 2, 0n, 'signal'],
      ['a write inside the range, not at its start', 0x1002, 2, 0n, 'swallowed'],
      ['a write straddling the end', 0x1002, 4, 0n, 'default'],
      ['a write wider than the range', 0x1000, 8, 0n, 'default'],
      ['a write just past the range', 0x1004, 1, 0n, 'default'],
    ]

    withGuest.each(cases)(
      '§5.5 §11.10 MMIO wildcard [0x1000, +4): %s -> $4',
      async (_label, addr, size, value, outcome) => {
        const sys = backend.create()
        const { vm, efds } = await setup(sys, [{ addr: 0x1000n, len: 4 }])
        const write = guestOf(sys)({
          vmid: vm.vmid,
          vcpu: 0,
          type: 'mmio',
          dir: 'write',
          addr,
          size,
          value,
        })
        await sys.settle()
        const served = outcome === 'default' ? await serve(vm) : []
        await write
        expect(served.length).toBe(outcome === 'default' ? 1 : 0)
        expect(await count(vm, efds[0]!)).toBe(outcome === 'signal' ? 1n : 0n)
      },
    )

    withGuest(
      '§5.5 datamatch: only the matching value signals; others are swallowed, not forwarded',
      async () => {
        const sys = backend.create()
        const { vm, efds } = await setup(sys, [
          { flags: DATAMATCH, addr: 0xfe00_0000n, len: 8, data: 0x1_0000_0002n },
        ])
        const access = guestOf(sys)
        const attach = vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
        const w = (value: bigint) =>
          access({
            vmid: vm.vmid,
            vcpu: 0,
            type: 'mmio',
            dir: 'write',
            addr: 0xfe00_0000n,
            size: 8,
            value,
          })
        await w(2n)
        await w(0x1_0000_0002n)
        await w(0x2_0000_0002n)
        expect(await count(vm, efds[0]!)).toBe(1n)
        expect((await peek(attach)).state).toBe('pending')
      },
    )

    withGuest('§5.5 PIO values are zero-extended u32 and compared as 64-bit', async () => {
      const sys = backend.create()
      const { vm, efds } = await setup(sys, [
        { flags: PIO | DATAMATCH, addr: 0xc000n, len: 4, data: 0xffff_ffffn },
      ])
      const access = guestOf(sys)
      await access({
        vmid: vm.vmid,
        vcpu: 0,
        type: 'pio',
        dir: 'write',
        addr: 0xc000,
        size: 4,
        value: 0xffff_ffff,
      })
      expect(await count(vm, efds[0]!)).toBe(1n)
    })

    withGuest('§5.5 §11.10 reads in a range return 0 and signal nothing', async () => {
      const sys = backend.create()
      const { vm, efds } = await setup(sys, [
        { addr: 0xfe00_1000n, len: 8 },
        { flags: PIO, addr: 0x60n, len: 1 },
      ])
      const access = guestOf(sys)
      expect(
        await access({
          vmid: vm.vmid,
          vcpu: 0,
          type: 'mmio',
          dir: 'read',
          addr: 0xfe00_1004n,
          size: 4,
        }),
      ).toBe(0n)
      expect(
        await access({ vmid: vm.vmid, vcpu: 0, type: 'pio', dir: 'read', addr: 0x60, size: 1 }),
      ).toBe(0n)
      expect(await count(vm, efds[0]!)).toBe(0n)
      expect(await count(vm, efds[1]!)).toBe(0n)
    })

    withGuest(
      '§5.5 §11.10 several eventfds at one address: only the oldest matching one is signalled',
      async () => {
        const sys = backend.create()
        const { vm, efds } = await setup(sys, [
          { flags: DATAMATCH, addr: 0x3000n, len: 4, data: 1n },
          { addr: 0x3000n, len: 4 },
          { addr: 0x3000n, len: 4 },
        ])
        const access = guestOf(sys)
        const w = (value: number) =>
          access({
            vmid: vm.vmid,
            vcpu: 0,
            type: 'mmio',
            dir: 'write',
            addr: 0x3000,
            size: 4,
            value,
          })
        await w(1)
        await w(2)
        expect([
          await count(vm, efds[0]!),
          await count(vm, efds[1]!),
          await count(vm, efds[2]!),
        ]).toEqual([1n, 1n, 0n])
        // Once the oldest wildcard is deassigned, the next one takes over.
        await vm.proc.ioctl(
          vm.fd,
          Ioctl.IOEVENTFD,
          ioeventfdArg({ fd: efds[1]!, flags: DEASSIGN, addr: 0n, len: 0 }),
        )
        await w(2)
        expect([await count(vm, efds[1]!), await count(vm, efds[2]!)]).toEqual([0n, 1n])
      },
    )

    withGuest('§5.5 the ioeventfd length must cover the access size', async () => {
      const sys = backend.create()
      // [0x4000, +1) for efd0 and [0x4000, +4) for efd1: a 2-byte write is inside efd1's
      // range, and efd0 (older, but too short) does not match it.
      const { vm, efds } = await setup(sys, [
        { addr: 0x4000n, len: 1 },
        { addr: 0x4000n, len: 4 },
      ])
      await guestOf(sys)({
        vmid: vm.vmid,
        vcpu: 0,
        type: 'mmio',
        dir: 'write',
        addr: 0x4000,
        size: 2,
        value: 0,
      })
      expect([await count(vm, efds[0]!), await count(vm, efds[1]!)]).toEqual([0n, 1n])
    })

    withGuest('§5.5 after VM destroy nothing is registered any more', async () => {
      const sys = backend.create()
      const vm = await createVm(sys)
      const efd = await vm.proc.eventfd(0)
      await vm.proc.ioctl(
        vm.fd,
        Ioctl.IOEVENTFD,
        ioeventfdArg({ fd: efd, flags: PIO, addr: 0x10n, len: 1 }),
      )
      await vm.proc.ioctl(vm.fd, Ioctl.PAUSE_VM)
      await vm.proc.ioctl(vm.fd, Ioctl.DESTROY_VM)
      // A re-created VM on the fd starts with an empty list: the same registration is accepted.
      const page = await vm.proc.mmap(4096)
      await vm.proc.ioctl(
        vm.fd,
        Ioctl.CREATE_VM,
        vmCreation({ ioreq_buf: page, cpu_affinity: 0b10n }),
      )
      const again = ioeventfdArg({ fd: efd, flags: PIO, addr: 0x10n, len: 1 })
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.IOEVENTFD, again))).toBe('OK')
    })
  })
}
