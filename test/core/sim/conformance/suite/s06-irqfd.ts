// §6: IRQFD: checks, one MSI per eventfd write, EBUSY duplicates, removal on close.

import { describe, expect, it } from 'vitest'
import { IoeventfdFlag, Ioctl, IrqfdFlag } from '../../../../../src/index.js'
import type { ConformanceBackend } from '../backend.js'
import {
  createVm,
  errnoOf,
  guestOf,
  ioeventfdArg,
  irqfdArg,
  lacks,
  runningVm,
  type VmHandle,
} from '../helpers.js'

/** MSI to vCPU 0 (APIC ID 0), vector 0x41. */
const MSI = { msi_addr: 0xfee0_0000n, msi_data: 0x41n }

export function irqfdSuite(backend: ConformanceBackend) {
  const withInspect = it.skipIf(lacks(backend, 'inspect'))

  const delivered = (vm: VmHandle, vector = 0x41) =>
    vm.sys.inspect!.msi(vm.vmid).find((d) => d.vcpu === 0 && d.vector === vector)?.count ?? 0

  describe(`§6.2 §6.5 IRQFD assign and deassign [${backend.name}]`, () => {
    type Build = (efd: number, hsmFd: number) => Uint8Array | undefined
    const cases: Array<[string, Build, string]> = [
      ['an fd that is not open', () => irqfdArg({ fd: 123 }), 'EBADF'],
      ['a negative fd', () => irqfdArg({ fd: -1 }), 'EBADF'],
      ['an open file that is not an eventfd', (_e, hsm) => irqfdArg({ fd: hsm }), 'EINVAL'],
      [
        'unknown flag bits (ignored: no reserved field)',
        (efd) => irqfdArg({ fd: efd, flags: 0xfe }),
        'OK',
      ],
      ['deassign, fd not open', () => irqfdArg({ fd: 123, flags: IrqfdFlag.DEASSIGN }), 'EBADF'],
      [
        'deassign, not an eventfd',
        (_e, hsm) => irqfdArg({ fd: hsm, flags: IrqfdFlag.DEASSIGN }),
        'EINVAL',
      ],
      [
        'deassign with nothing assigned',
        (efd) => irqfdArg({ fd: efd, flags: IrqfdFlag.DEASSIGN }),
        'OK',
      ],
      ['a NULL argument', () => undefined, 'EFAULT'],
      ['a 23-byte argument', (efd) => irqfdArg({ fd: efd }).subarray(0, 23), 'EFAULT'],
    ]

    it.each(cases)('§6 §10.2 %s -> $2', async (_label, build, code) => {
      const vm = await createVm(backend.create())
      const efd = await vm.proc.eventfd(0)
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.IRQFD, build(efd, vm.fd)))).toBe(code)
    })

    it('§6.2 §11.11 a second irqfd on the same eventfd is EBUSY, whatever the MSI', async () => {
      const vm = await createVm(backend.create())
      const efd = await vm.proc.eventfd(0)
      await vm.proc.ioctl(vm.fd, Ioctl.IRQFD, irqfdArg({ fd: efd, ...MSI }))
      expect(
        await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.IRQFD, irqfdArg({ fd: efd, msi_data: 0x42n }))),
      ).toBe('EBUSY')
      // After deassign the eventfd is free again.
      await vm.proc.ioctl(vm.fd, Ioctl.IRQFD, irqfdArg({ fd: efd, flags: IrqfdFlag.DEASSIGN }))
      expect(
        await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.IRQFD, irqfdArg({ fd: efd, msi_data: 0x42n }))),
      ).toBe('OK')
    })
  })

  describe(`§6.3 §6.4 injection [${backend.name}]`, () => {
    withInspect(
      '§6.3 §11.11 each eventfd write injects exactly one MSI; the counter is never drained',
      async () => {
        const vm = await runningVm(backend.create())
        const efd = await vm.proc.eventfd(0)
        await vm.proc.ioctl(vm.fd, Ioctl.IRQFD, irqfdArg({ fd: efd, ...MSI }))
        expect(delivered(vm)).toBe(0)
        await vm.proc.eventfdWrite(efd, 1)
        await vm.proc.eventfdWrite(efd, 5)
        // A write of 0 still wakes the eventfd's waiters.
        await vm.proc.eventfdWrite(efd, 0)
        expect(delivered(vm)).toBe(3)
        expect(await vm.proc.eventfdRead(efd)).toBe(6n)
        // Reading does not inject.
        expect(delivered(vm)).toBe(3)
      },
    )

    withInspect(
      '§6.2 §11.11 an eventfd already signalled at assign injects once at once',
      async () => {
        const vm = await runningVm(backend.create())
        const efd = await vm.proc.eventfd(2)
        await vm.proc.ioctl(vm.fd, Ioctl.IRQFD, irqfdArg({ fd: efd, ...MSI }))
        expect(delivered(vm)).toBe(1)
        const quiet = await vm.proc.eventfd(0)
        await vm.proc.ioctl(vm.fd, Ioctl.IRQFD, irqfdArg({ fd: quiet, msi_data: 0x42n }))
        expect(delivered(vm, 0x42)).toBe(0)
      },
    )

    withInspect('§6.5 after deassign writes inject nothing', async () => {
      const vm = await runningVm(backend.create())
      const efd = await vm.proc.eventfd(0)
      await vm.proc.ioctl(vm.fd, Ioctl.IRQFD, irqfdArg({ fd: efd, ...MSI }))
      await vm.proc.ioctl(vm.fd, Ioctl.IRQFD, irqfdArg({ fd: efd, flags: IrqfdFlag.DEASSIGN }))
      await vm.proc.eventfdWrite(efd, 1)
      expect(delivered(vm)).toBe(0)
    })

    it.skipIf(lacks(backend, 'inspect', 'guest'))(
      '§6.4 §11.11 closing the eventfd removes the irqfd (asynchronously): an ioeventfd on it no longer injects',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys)
        const efd = await vm.proc.eventfd(0)
        await vm.proc.ioctl(vm.fd, Ioctl.IRQFD, irqfdArg({ fd: efd, ...MSI }))
        await vm.proc.ioctl(
          vm.fd,
          Ioctl.IOEVENTFD,
          ioeventfdArg({ fd: efd, flags: IoeventfdFlag.PIO, addr: 0x10n, len: 1 }),
        )
        const kick = () =>
          guestOf(sys)({
            vmid: vm.vmid,
            vcpu: 0,
            type: 'pio',
            dir: 'write',
            addr: 0x10,
            size: 1,
            value: 0,
          })
        // ioeventfd -> eventfd -> irqfd: the vhost-style chain.
        await kick()
        expect(delivered(vm)).toBe(1)
        await vm.proc.close(efd)
        await sys.settle()
        // The ioeventfd still holds the eventfd and signals it; nobody injects any more.
        await kick()
        expect(delivered(vm)).toBe(1)
        // And a new irqfd on a new eventfd with that fd number is no duplicate.
        const again = await vm.proc.eventfd(0)
        expect(
          await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.IRQFD, irqfdArg({ fd: again, ...MSI }))),
        ).toBe('OK')
      },
    )

    it.skipIf(lacks(backend, 'inspect', 'dup'))(
      '§6.4 closing one of two fds of the eventfd is not its release',
      async () => {
        const vm = await runningVm(backend.create())
        const efd = await vm.proc.eventfd(0)
        const twin = await vm.proc.dup!(efd)
        await vm.proc.ioctl(vm.fd, Ioctl.IRQFD, irqfdArg({ fd: efd, ...MSI }))
        await vm.proc.close(efd)
        await vm.sys.settle()
        await vm.proc.eventfdWrite(twin, 1)
        expect(delivered(vm)).toBe(1)
      },
    )

    withInspect(
      '§6.3 the MSI goes where its address and data say; hypervisor errors are only logged',
      async () => {
        const vm = await runningVm(backend.create(), { cpu_affinity: 0b110n })
        const toCpu1 = await vm.proc.eventfd(0)
        const broken = await vm.proc.eventfd(0)
        await vm.proc.ioctl(
          vm.fd,
          Ioctl.IRQFD,
          irqfdArg({ fd: toCpu1, msi_addr: 0xfee0_1000n, msi_data: 0x4051n }),
        )
        // Not an MSI address: the hypervisor refuses it, the write still succeeds.
        await vm.proc.ioctl(
          vm.fd,
          Ioctl.IRQFD,
          irqfdArg({ fd: broken, msi_addr: 0x1234_0000n, msi_data: 0x60n }),
        )
        await vm.proc.eventfdWrite(toCpu1, 1)
        expect(await errnoOf(vm.proc.eventfdWrite(broken, 1))).toBe('OK')
        expect(vm.sys.inspect!.msi(vm.vmid)).toEqual([{ vcpu: 1, vector: 0x51, count: 1 }])
      },
    )
  })
}
