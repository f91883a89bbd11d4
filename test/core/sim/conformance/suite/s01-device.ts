// §1: the device node, open/release, permissions and the "no VM yet" gate.

import { describe, expect, it } from 'vitest'
import { ioc, IOCTLS, Ioctl } from '../../../../../src/index.js'
import type { ConformanceBackend } from '../backend.js'
import { createVm, errnoOf, lacks, pauseAndDestroy, vmCreation } from '../helpers.js'

export function deviceSuite(backend: ConformanceBackend) {
  describe(`§1 device, open and release [${backend.name}]`, () => {
    it('§1.4 every open gets its own VM slot: two fds create two VMs', async () => {
      const sys = backend.create()
      const proc = sys.spawn()
      const a = await createVm(sys, { proc })
      const b = await createVm(sys, { proc })
      expect(a.fd).not.toBe(b.fd)
      expect(a.vmid).not.toBe(b.vmid)
      // Each fd controls its own VM: pausing one leaves the other CREATED (START still works).
      await proc.ioctl(a.fd, Ioctl.PAUSE_VM)
      expect(await errnoOf(proc.ioctl(b.fd, Ioctl.START_VM))).toBe('OK')
    })

    it.skipIf(lacks(backend, 'dup', 'inspect'))(
      '§1.4 fds sharing an open file description share the VM',
      async () => {
        const sys = backend.create()
        const vm = await createVm(sys)
        const twin = await vm.proc.dup!(vm.fd)
        await vm.proc.ioctl(twin, Ioctl.START_VM)
        expect(sys.inspect!.vm(vm.vmid)?.state).toBe('running')
        // Closing one fd is not the last close: the VM survives.
        await vm.proc.ioctl(twin, Ioctl.PAUSE_VM)
        await vm.proc.close(twin)
        expect(sys.inspect!.vm(vm.vmid)?.state).toBe('paused')
        await vm.proc.close(vm.fd)
        expect(sys.inspect!.vm(vm.vmid)).toBeUndefined()
      },
    )

    it.skipIf(lacks(backend, 'inspect'))('§1.5 last close of a paused VM destroys it', async () => {
      const sys = backend.create()
      const vm = await createVm(sys)
      await vm.proc.ioctl(vm.fd, Ioctl.PAUSE_VM)
      await vm.proc.close(vm.fd)
      expect(sys.inspect!.vm(vm.vmid)).toBeUndefined()
    })

    it.skipIf(lacks(backend, 'inspect'))(
      '§1.5 §2.4 closing the fd of a running VM orphans it in the hypervisor',
      async () => {
        const sys = backend.create()
        const vm = await createVm(sys)
        await vm.proc.ioctl(vm.fd, Ioctl.START_VM)
        await vm.proc.close(vm.fd)
        expect(sys.inspect!.vm(vm.vmid)?.state).toBe('running')
        // The fd is gone.
        expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.PAUSE_VM))).toBe('EBADF')
      },
    )

    it('§1.5 closing an fd with no VM, or an already destroyed VM, does nothing', async () => {
      const sys = backend.create()
      const proc = sys.spawn()
      const fd = await proc.open('/dev/acrn_hsm')
      expect(await errnoOf(proc.close(fd))).toBe('OK')
      const vm = await createVm(sys, { proc })
      await pauseAndDestroy(vm)
      expect(await errnoOf(proc.close(vm.fd))).toBe('OK')
    })

    it.skipIf(lacks(backend, 'users'))(
      '§1.3 the node is 0600 root: another user gets EACCES',
      async () => {
        const sys = backend.create()
        expect(await errnoOf(sys.spawn({ uid: 1000 }).open('/dev/acrn_hsm'))).toBe('EACCES')
        expect(await errnoOf(sys.spawn({ uid: 0 }).open('/dev/acrn_hsm'))).toBe('OK')
      },
    )

    it.skipIf(lacks(backend, 'compat32'))(
      '§1.2 no compat_ioctl: a 32-bit process gets ENOTTY for every ioctl',
      async () => {
        const sys = backend.create()
        const proc = sys.spawn({ compat32: true })
        const fd = await proc.open('/dev/acrn_hsm')
        const page = await proc.mmap(4096)
        expect(
          await errnoOf(proc.ioctl(fd, Ioctl.CREATE_VM, vmCreation({ ioreq_buf: page }))),
        ).toBe('ENOTTY')
        expect(await errnoOf(proc.ioctl(fd, Ioctl.DESTROY_VM))).toBe('ENOTTY')
      },
    )

    it('§1.2 an fd that is not open is EBADF for every call', async () => {
      const proc = backend.create().spawn()
      expect(await errnoOf(proc.ioctl(42, Ioctl.CREATE_VM, vmCreation()))).toBe('EBADF')
      expect(await errnoOf(proc.close(42))).toBe('EBADF')
    })
  })

  describe(`§1.6 §11.1 the no-VM gate [${backend.name}]`, () => {
    const others = IOCTLS.filter((i) => i.name !== 'CREATE_VM')

    it.each(others.map((i) => [i.name, i.request] as const))(
      '§1.6 %s on a fresh fd is EINVAL',
      async (_name, request) => {
        const proc = backend.create().spawn()
        const fd = await proc.open('/dev/acrn_hsm')
        const arg =
          request === Ioctl.SET_IRQLINE || request === Ioctl.VM_INTR_MONITOR
            ? 0n
            : new Uint8Array(512)
        expect(await errnoOf(proc.ioctl(fd, request, arg))).toBe('EINVAL')
      },
    )

    const unknown: Array<[string, number]> = [
      ['nr 0x14 (absent from the table)', ioc(0, 0xa2, 0x14, 0)],
      ['type 0xa3', ioc(0, 0xa3, 0x11, 0)],
      ['CREATE_VM number with size 40', ioc(3, 0xa2, 0x10, 40)],
      ['DESTROY_VM number with direction W', ioc(1, 0xa2, 0x11, 0)],
      ['0xffffffff', 0xffffffff],
    ]

    it.each(unknown)(
      '§1.6 unknown command %s: EINVAL without a VM, ENOTTY with one',
      async (_label, request) => {
        const sys = backend.create()
        const proc = sys.spawn()
        const bare = await proc.open('/dev/acrn_hsm')
        expect(await errnoOf(proc.ioctl(bare, request, new Uint8Array(64)))).toBe('EINVAL')
        const vm = await createVm(sys, { proc })
        expect(await errnoOf(proc.ioctl(vm.fd, request, new Uint8Array(64)))).toBe('ENOTTY')
      },
    )

    it('§1.6 §2.4 after DESTROY_VM the fd is gated again', async () => {
      const sys = backend.create()
      const vm = await createVm(sys)
      await pauseAndDestroy(vm)
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.START_VM))).toBe('EINVAL')
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.DESTROY_VM))).toBe('EINVAL')
    })
  })
}
