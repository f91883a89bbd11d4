// §4.4 §4.7: the default client's ioctls (CREATE/ATTACH/NOTIFY/CLEAR/DESTROY) and
// completion, polling mode included.

import { describe, expect, it } from 'vitest'
import { Ioctl, IoreqState } from '../../../../../src/index.js'
import type { ConformanceBackend } from '../backend.js'
import {
  answer,
  createVm,
  errnoOf,
  guestOf,
  lacks,
  notify,
  notifyArg,
  peek,
  readSlot,
  runningVm,
  type VmHandle,
} from '../helpers.js'

const GUEST_FLAG_IO_COMPLETION_POLLING = 1n << 2n

export function ioreqSuite(backend: ConformanceBackend) {
  const withGuest = it.skipIf(lacks(backend, 'guest'))

  /** A running VM whose vCPU 0 has a PIO read of port 0x3f8 dispatched to the default client. */
  async function processingRead(opts: { vcpus?: bigint; vm_flag?: bigint } = {}) {
    const sys = backend.create()
    const vm = await runningVm(sys, {
      cpu_affinity: opts.vcpus ?? 0b10n,
      vm_flag: opts.vm_flag ?? 0n,
    })
    const access = guestOf(sys)({
      vmid: vm.vmid,
      vcpu: 0,
      type: 'pio',
      dir: 'read',
      addr: 0x3f8,
      size: 1,
    })
    await vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
    expect((await readSlot(vm, 0)).state).toBe(IoreqState.PROCESSING)
    return { sys, vm, access }
  }

  describe(`§4.7 CREATE_IOREQ_CLIENT and DESTROY_IOREQ_CLIENT [${backend.name}]`, () => {
    it('§4.7 one default client: a second is EEXIST', async () => {
      const vm = await createVm(backend.create())
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.CREATE_IOREQ_CLIENT))).toBe('OK')
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.CREATE_IOREQ_CLIENT))).toBe('EEXIST')
    })

    it('§4.7 DESTROY_IOREQ_CLIENT is always 0, with or without a client', async () => {
      const vm = await createVm(backend.create())
      expect(await vm.proc.ioctl(vm.fd, Ioctl.DESTROY_IOREQ_CLIENT)).toBe(0)
      await vm.proc.ioctl(vm.fd, Ioctl.CREATE_IOREQ_CLIENT)
      expect(await vm.proc.ioctl(vm.fd, Ioctl.DESTROY_IOREQ_CLIENT)).toBe(0)
      expect(await vm.proc.ioctl(vm.fd, Ioctl.DESTROY_IOREQ_CLIENT)).toBe(0)
      // And it is gone: a new one can be created.
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.CREATE_IOREQ_CLIENT))).toBe('OK')
    })

    it('§4.7 §11.4 a blocked ATTACH is woken by DESTROY_IOREQ_CLIENT with ENODEV', async () => {
      const vm = await createVm(backend.create())
      await vm.proc.ioctl(vm.fd, Ioctl.CREATE_IOREQ_CLIENT)
      const attach = vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
      expect((await peek(attach)).state).toBe('pending')
      await vm.proc.ioctl(vm.fd, Ioctl.DESTROY_IOREQ_CLIENT)
      expect(await errnoOf(attach)).toBe('ENODEV')
    })

    withGuest(
      '§4.7 requests a destroyed client had taken stay PROCESSING; NOTIFY without a client is a no-op; a new client can complete them',
      async () => {
        const { vm, access } = await processingRead()
        await vm.proc.ioctl(vm.fd, Ioctl.DESTROY_IOREQ_CLIENT)
        expect(await notify(vm, 0)).toBe(0)
        expect((await readSlot(vm, 0)).state).toBe(IoreqState.PROCESSING)
        expect((await peek(access)).state).toBe('pending')
        await vm.proc.ioctl(vm.fd, Ioctl.CREATE_IOREQ_CLIENT)
        // The new client's bitmap is empty: ATTACH blocks...
        expect((await peek(vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT))).state).toBe('pending')
        // ...but NOTIFY does not check the bit.
        await answer(vm, 0, 0x41n)
        await notify(vm, 0)
        expect(await access).toBe(0x41n)
      },
    )
  })

  describe(`§4.7 ATTACH_IOREQ_CLIENT [${backend.name}]`, () => {
    it('§4.7 without a default client: ENODEV', async () => {
      const vm = await createVm(backend.create())
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT))).toBe('ENODEV')
    })

    withGuest('§4.7 blocks until a request is pending for the default client', async () => {
      const sys = backend.create()
      const vm = await runningVm(sys)
      const attach = vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
      expect((await peek(attach)).state).toBe('pending')
      void guestOf(sys)({
        vmid: vm.vmid,
        vcpu: 0,
        type: 'pio',
        dir: 'write',
        addr: 0x80,
        size: 1,
        value: 1,
      })
      expect(await attach).toBe(0)
    })

    withGuest(
      '§4.7 returns at once while a bit is pending: a client that never completes spins',
      async () => {
        const { vm } = await processingRead()
        for (let i = 0; i < 3; i++)
          expect((await peek(vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT))).state).toBe(
            'fulfilled',
          )
      },
    )

    it.skipIf(lacks(backend, 'signal'))(
      '§4.7 §11.4 a signal ends the wait with 0, never EINTR',
      async () => {
        const vm = await createVm(backend.create())
        await vm.proc.ioctl(vm.fd, Ioctl.CREATE_IOREQ_CLIENT)
        const attach = vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
        expect(vm.proc.interrupt!()).toBe(1)
        expect(await attach).toBe(0)
        // Nothing was pending and nothing is now.
        expect((await peek(vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT))).state).toBe('pending')
      },
    )
  })

  describe(`§4.7 NOTIFY_REQUEST_FINISH [${backend.name}]`, () => {
    const cases: Array<[string, (vm: VmHandle) => Uint8Array | undefined, string, number]> = [
      ['reserved != 0', () => notifyArg(0, { reserved: 1 }), 'EINVAL', IoreqState.PROCESSING],
      ['vcpu == vcpu_num', (vm) => notifyArg(vm.vcpuNum), 'EINVAL', IoreqState.PROCESSING],
      ['vcpu 0x10000 (truncated to vCPU 0)', () => notifyArg(0x10000), 'OK', IoreqState.FREE],
      [
        'a wrong vmid (ignored)',
        (vm) => notifyArg(0, { vmid: vm.vmid + 3 }),
        'OK',
        IoreqState.FREE,
      ],
      ['a NULL argument', () => undefined, 'EFAULT', IoreqState.PROCESSING],
      ['a 7-byte argument', () => notifyArg(0).subarray(0, 7), 'EFAULT', IoreqState.PROCESSING],
    ]

    withGuest.each(cases)(
      '§4.7 §11.5 %s -> $2, slot state $3',
      async (_label, build, code, state) => {
        const { vm, access } = await processingRead()
        expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.NOTIFY_REQUEST_FINISH, build(vm)))).toBe(
          code,
        )
        expect((await readSlot(vm, 0)).state).toBe(state)
        expect((await peek(access)).state).toBe(state === IoreqState.FREE ? 'fulfilled' : 'pending')
      },
    )

    it('§4.7 §11.5 without a default client NOTIFY is 0 and touches nothing', async () => {
      const vm = await createVm(backend.create())
      expect(await vm.proc.ioctl(vm.fd, Ioctl.NOTIFY_REQUEST_FINISH, notifyArg(0))).toBe(0)
      expect(await vm.proc.ioctl(vm.fd, Ioctl.NOTIFY_REQUEST_FINISH, notifyArg(15))).toBe(0)
      expect((await readSlot(vm, 0)).state).toBe(IoreqState.FREE)
    })

    it('§4.7 §11.5 NOTIFY completes whatever the state: a FREE slot becomes COMPLETE', async () => {
      const vm = await createVm(backend.create())
      await vm.proc.ioctl(vm.fd, Ioctl.CREATE_IOREQ_CLIENT)
      expect(await notify(vm, 0)).toBe(0)
      expect((await readSlot(vm, 0)).state).toBe(IoreqState.COMPLETE)
    })

    withGuest(
      '§4.4 §11.6 polling mode: COMPLETE without a NOTIFY hypercall; the vCPU sees it by polling',
      async () => {
        const { sys, vm, access } = await processingRead({
          vm_flag: GUEST_FLAG_IO_COMPLETION_POLLING,
        })
        expect((await readSlot(vm, 0)).completionPolling).toBe(1)
        await answer(vm, 0, 0x5an)
        await notify(vm, 0)
        await sys.settle()
        expect(await access).toBe(0x5an)
        expect((await readSlot(vm, 0)).state).toBe(IoreqState.FREE)
      },
    )

    withGuest(
      '§4.4 without polling the vCPU resumes on NOTIFY: the slot is FREE when NOTIFY returns',
      async () => {
        const { vm, access } = await processingRead()
        expect((await readSlot(vm, 0)).completionPolling).toBe(0)
        await answer(vm, 0, 0x1ffn)
        await notify(vm, 0)
        expect((await readSlot(vm, 0)).state).toBe(IoreqState.FREE)
        // A one-byte IN sees the low byte only.
        expect(await access).toBe(0xffn)
      },
    )
  })

  describe(`§4.7 CLEAR_VM_IOREQ [${backend.name}]`, () => {
    it('§4.7 always 0, with or without a client', async () => {
      const vm = await createVm(backend.create())
      expect(await vm.proc.ioctl(vm.fd, Ioctl.CLEAR_VM_IOREQ)).toBe(0)
      await vm.proc.ioctl(vm.fd, Ioctl.CREATE_IOREQ_CLIENT)
      expect(await vm.proc.ioctl(vm.fd, Ioctl.CLEAR_VM_IOREQ)).toBe(0)
    })

    withGuest(
      '§4.7 completes every request of the default client and clears its bits',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys, { cpu_affinity: 0b110n })
        const access = guestOf(sys)
        const a = access({ vmid: vm.vmid, vcpu: 0, type: 'pio', dir: 'read', addr: 0x60, size: 1 })
        const b = access({
          vmid: vm.vmid,
          vcpu: 1,
          type: 'mmio',
          dir: 'write',
          addr: 0xfe00_0000n,
          size: 4,
          value: 7,
        })
        await vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
        await sys.settle()
        expect(await vm.proc.ioctl(vm.fd, Ioctl.CLEAR_VM_IOREQ)).toBe(0)
        await Promise.all([a, b])
        expect((await peek(vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT))).state).toBe('pending')
      },
    )
  })
}
