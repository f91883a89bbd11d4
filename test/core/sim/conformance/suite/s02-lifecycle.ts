// §2: CREATE_VM, DESTROY_VM, START/PAUSE/RESET and the lifecycle quirks of §2.4.

import { describe, expect, it } from 'vitest'
import { GuestAccessError, Ioctl, IoreqState } from '../../../../../src/index.js'
import type { ConformanceBackend } from '../backend.js'
import {
  createVm,
  errnoOf,
  guestOf,
  lacks,
  pauseAndDestroy,
  peek,
  readSlot,
  runningVm,
  slotStates,
  vmCreation,
} from '../helpers.js'

export function lifecycleSuite(backend: ConformanceBackend) {
  describe(`§2.2 CREATE_VM [${backend.name}]`, () => {
    it('§2.2 writes vmid and vcpu_num back and leaves the rest of the struct as given', async () => {
      const sys = backend.create()
      const proc = sys.spawn()
      const fd = await proc.open('/dev/acrn_hsm')
      const page = await proc.mmap(4096)
      const arg = vmCreation({ ioreq_buf: page, cpu_affinity: 0b110n, vm_flag: 0n, name: 'sample' })
      const before = arg.slice()
      expect(await proc.ioctl(fd, Ioctl.CREATE_VM, arg)).toBe(0)
      const view = new DataView(arg.buffer)
      expect(view.getUint16(0, true)).not.toBe(0xffff)
      expect(view.getUint16(4, true)).toBe(2)
      expect(arg.subarray(8)).toEqual(before.subarray(8))
      if (sys.inspect) {
        const info = sys.inspect.vm(view.getUint16(0, true))
        expect(info).toMatchObject({
          name: 'sample',
          state: 'created',
          vcpuNum: 2,
          cpuAffinity: 0b110n,
        })
      }
    })

    it('§2.2 §4.1 A.3 the hypervisor marks all 16 slots FREE when the buffer is set', async () => {
      const sys = backend.create()
      const vm = await createVm(sys)
      const bytes = await vm.proc.read(vm.page, 4096)
      const view = new DataView(bytes.buffer)
      for (let slot = 0; slot < 16; slot++)
        expect(view.getUint32(slot * 256 + 136, true)).toBe(IoreqState.FREE)
    })

    it('§2.2 §11.15 the ioreq buffer is the page that contains ioreq_buf', async () => {
      const sys = backend.create()
      const proc = sys.spawn()
      const fd = await proc.open('/dev/acrn_hsm')
      const page = await proc.mmap(8192)
      await proc.ioctl(
        fd,
        Ioctl.CREATE_VM,
        vmCreation({ ioreq_buf: page + 4096n + 0x123n, cpu_affinity: 0b10n }),
      )
      const second = new DataView((await proc.read(page + 4096n, 4096)).buffer)
      const first = new DataView((await proc.read(page, 4096)).buffer)
      expect(second.getUint32(136, true)).toBe(IoreqState.FREE)
      expect(first.getUint32(136, true)).toBe(0)
    })

    it('§2.2 no default client exists after creation (ATTACH is ENODEV)', async () => {
      const vm = await createVm(backend.create())
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT))).toBe('ENODEV')
    })

    const failures: Array<[string, (page: bigint) => Uint8Array | bigint | undefined, string]> = [
      ['reserved0 non-zero', (page) => vmCreation({ ioreq_buf: page, reserved0: 1 }), 'EINVAL'],
      [
        'reserved1 non-zero',
        (page) => vmCreation({ ioreq_buf: page, reserved1: 0x8000 }),
        'EINVAL',
      ],
      [
        'cpu_affinity outside the configured one (hypervisor -1)',
        (page) => vmCreation({ ioreq_buf: page, cpu_affinity: 1n << 40n }),
        'EINVAL',
      ],
      ['ioreq_buf unmapped (pin fails)', () => vmCreation({ ioreq_buf: 0x1000n }), 'EINVAL'],
      ['a NULL argument', () => undefined, 'EFAULT'],
      ['a 47-byte argument', (page) => vmCreation({ ioreq_buf: page }).subarray(0, 47), 'EFAULT'],
      ['an unmapped user pointer', () => 0x10n, 'EFAULT'],
    ]

    it.each(failures)('§2.2 §10.2 %s -> $2', async (_label, build, code) => {
      const sys = backend.create()
      const proc = sys.spawn()
      const fd = await proc.open('/dev/acrn_hsm')
      const page = await proc.mmap(4096)
      expect(await errnoOf(proc.ioctl(fd, Ioctl.CREATE_VM, build(page)))).toBe(code)
      // The fd still has no VM.
      expect(await errnoOf(proc.ioctl(fd, Ioctl.START_VM))).toBe('EINVAL')
    })

    it.skipIf(lacks(backend, 'inspect'))(
      '§2.2 §11.14 every hypervisor refusal is EINVAL: all VM slots taken',
      async () => {
        const sys = backend.create()
        const slots = sys.inspect!.host().maxVms - 1
        for (let i = 0; i < slots; i++) await createVm(sys)
        const proc = sys.spawn()
        const fd = await proc.open('/dev/acrn_hsm')
        const page = await proc.mmap(4096)
        const arg = vmCreation({ ioreq_buf: page })
        expect(await errnoOf(proc.ioctl(fd, Ioctl.CREATE_VM, arg))).toBe('EINVAL')
      },
    )

    it.skipIf(lacks(backend, 'inspect'))(
      '§2.2 A.1 a VM name in use is refused (EINVAL)',
      async () => {
        const sys = backend.create()
        await createVm(sys, { name: 'vm1' })
        await expect(createVm(sys, { name: 'vm1' })).rejects.toMatchObject({
          code: 'EINVAL',
          request: 'CREATE_VM',
        })
        expect(await errnoOf(createVm(sys, { name: 'vm2' }))).toBe('OK')
      },
    )

    it.skipIf(lacks(backend, 'pfnmap', 'inspect'))(
      '§2.2 step 7 a failed copy-back is EFAULT (the destroy that follows is refused: the VM is not paused)',
      async () => {
        const sys = backend.create()
        const proc = sys.spawn()
        const fd = await proc.open('/dev/acrn_hsm')
        const page = await proc.mmap(4096)
        const holder = await proc.mmap(4096)
        await proc.write(holder, vmCreation({ ioreq_buf: page, cpu_affinity: 0b10n }))
        // A read-only alias of the same physical page: readable by the kernel, not writable.
        const readOnly = await proc.mmapPfn!([await proc.pagemap!(holder)], { writable: false })
        expect(await errnoOf(proc.ioctl(fd, Ioctl.CREATE_VM, readOnly))).toBe('EFAULT')
        const vms = sys.inspect!.vms()
        expect(vms).toHaveLength(1)
        expect(vms[0]!.state).toBe('created')
      },
    )
  })

  describe(`§2.3 DESTROY_VM [${backend.name}]`, () => {
    it('§2.3 A.3 destroying a running VM fails with the hypervisor error and leaves it intact', async () => {
      const sys = backend.create()
      const vm = await runningVm(sys)
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.DESTROY_VM))).toBe('EPERM')
      // Nothing was torn down: the default client still answers.
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.CREATE_IOREQ_CLIENT))).toBe('EEXIST')
      await vm.proc.ioctl(vm.fd, Ioctl.PAUSE_VM)
      expect(await vm.proc.ioctl(vm.fd, Ioctl.DESTROY_VM)).toBe(0)
      if (sys.inspect) expect(sys.inspect.vm(vm.vmid)).toBeUndefined()
    })

    it('§2.3 a destroyed VM wakes a blocked ATTACH with ENODEV', async () => {
      const sys = backend.create()
      const vm = await createVm(sys)
      await vm.proc.ioctl(vm.fd, Ioctl.CREATE_IOREQ_CLIENT)
      const attach = errnoOf(vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT))
      await vm.proc.ioctl(vm.fd, Ioctl.PAUSE_VM)
      await vm.proc.ioctl(vm.fd, Ioctl.DESTROY_VM)
      expect(await attach).toBe('ENODEV')
    })

    it.skipIf(lacks(backend, 'guest'))(
      '§2.3 A.3 destroy discards outstanding requests',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys)
        const access = guestOf(sys)({
          vmid: vm.vmid,
          vcpu: 0,
          type: 'pio',
          dir: 'read',
          addr: 0x3f8,
          size: 1,
        })
        await vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
        await pauseAndDestroy(vm)
        await expect(access).rejects.toBeInstanceOf(GuestAccessError)
      },
    )
  })

  describe(`§2.4 lifecycle quirks [${backend.name}]`, () => {
    it.skipIf(lacks(backend, 'inspect'))(
      '§2.4 §11.13 re-create after destroy works, but the second VM can never be destroyed through HSM',
      async () => {
        const sys = backend.create()
        const vm = await createVm(sys)
        await pauseAndDestroy(vm)
        const page = await vm.proc.mmap(4096)
        const arg = vmCreation({ ioreq_buf: page, cpu_affinity: 0b10n })
        expect(await vm.proc.ioctl(vm.fd, Ioctl.CREATE_VM, arg)).toBe(0)
        const second = new DataView(arg.buffer).getUint16(0, true)
        await vm.proc.ioctl(vm.fd, Ioctl.PAUSE_VM)
        // DESTROYED is still set: 0 and nothing happens.
        expect(await vm.proc.ioctl(vm.fd, Ioctl.DESTROY_VM)).toBe(0)
        expect(sys.inspect!.vm(second)?.state).toBe('paused')
        await vm.proc.close(vm.fd)
        expect(sys.inspect!.vm(second)?.state).toBe('paused')
      },
    )

    it.skipIf(lacks(backend, 'inspect'))(
      '§2.4 §11.13 CREATE_VM on a live fd is EINVAL, leaves the fd without a VM and orphans the first VM',
      async () => {
        const sys = backend.create()
        const vm = await createVm(sys)
        const page = await vm.proc.mmap(4096)
        expect(
          await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.CREATE_VM, vmCreation({ ioreq_buf: page }))),
        ).toBe('EINVAL')
        expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.PAUSE_VM))).toBe('EINVAL')
        expect(sys.inspect!.vm(vm.vmid)?.state).toBe('created')
        // The old buffer was never released, so every later CREATE on this fd fails too.
        expect(
          await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.CREATE_VM, vmCreation({ ioreq_buf: page }))),
        ).toBe('EINVAL')
      },
    )

    it('§2.4 DESTROY_VM on an fd with no VM is EINVAL (the gate), not 0', async () => {
      const proc = backend.create().spawn()
      const fd = await proc.open('/dev/acrn_hsm')
      expect(await errnoOf(proc.ioctl(fd, Ioctl.DESTROY_VM))).toBe('EINVAL')
    })
  })

  describe(`§2.5 START, PAUSE, RESET [${backend.name}]`, () => {
    it.each([
      ['START twice', [Ioctl.START_VM, Ioctl.START_VM], ['OK', 'EPERM']],
      ['RESET a running VM', [Ioctl.START_VM, Ioctl.RESET_VM], ['OK', 'EPERM']],
      ['RESET a created VM', [Ioctl.RESET_VM], ['EPERM']],
      ['PAUSE twice', [Ioctl.PAUSE_VM, Ioctl.PAUSE_VM], ['OK', 'OK']],
      ['START a paused VM', [Ioctl.PAUSE_VM, Ioctl.START_VM], ['OK', 'EPERM']],
      [
        'pause, reset, start',
        [Ioctl.START_VM, Ioctl.PAUSE_VM, Ioctl.RESET_VM, Ioctl.START_VM],
        ['OK', 'OK', 'OK', 'OK'],
      ],
      ['DESTROY a created VM', [Ioctl.DESTROY_VM], ['EPERM']],
    ] as const)('§2.5 A.3 %s', async (_label, requests, expected) => {
      const vm = await createVm(backend.create())
      const got: string[] = []
      for (const request of requests) got.push(await errnoOf(vm.proc.ioctl(vm.fd, request)))
      expect(got).toEqual(expected)
    })

    it('§2.5 the argument is ignored', async () => {
      const vm = await createVm(backend.create())
      expect(await vm.proc.ioctl(vm.fd, Ioctl.START_VM, 0xdeadn)).toBe(0)
      expect(await vm.proc.ioctl(vm.fd, Ioctl.PAUSE_VM, new Uint8Array(1))).toBe(0)
    })

    it.skipIf(lacks(backend, 'guest'))(
      "§2.5 reset does not clear HSM's requests: the client keeps its pending bit, ATTACH returns at once",
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys)
        const access = guestOf(sys)({
          vmid: vm.vmid,
          vcpu: 0,
          type: 'pio',
          dir: 'read',
          addr: 0x70,
          size: 1,
        })
        access.catch(() => undefined)
        await vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
        await vm.proc.ioctl(vm.fd, Ioctl.PAUSE_VM)
        await vm.proc.ioctl(vm.fd, Ioctl.RESET_VM)
        // The hypervisor dropped the request and freed the slot...
        expect((await peek(access)).state).toBe('rejected')
        expect(await slotStates(vm)).toEqual([IoreqState.FREE])
        // ...but the default client's bit is still set.
        expect((await peek(vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT))).state).toBe(
          'fulfilled',
        )
        // CLEAR_VM_IOREQ is how userspace drops it (it completes the now FREE slot).
        await vm.proc.ioctl(vm.fd, Ioctl.CLEAR_VM_IOREQ)
        expect((await readSlot(vm, 0)).state).toBe(IoreqState.COMPLETE)
        expect((await peek(vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT))).state).toBe('pending')
      },
    )
  })
}
