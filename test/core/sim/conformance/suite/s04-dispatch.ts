// §4.1 §4.3 §4.6 end to end: a vCPU traps, the request reaches the default client
// through the shared page, and the guest sees the answer. PIO, MMIO, PCI configuration
// through 0xCF8/0xCFC, requests with no default client.

import { describe, expect, it } from 'vitest'
import { GuestAccessError, IoreqState, IoreqType, Ioctl } from '../../../../../src/index.js'
import type { ConformanceBackend } from '../backend.js'
import {
  answer,
  createVm,
  guestOf,
  ioeventfdArg,
  lacks,
  notify,
  peek,
  readSlot,
  runningVm,
  serve,
  slotStates,
} from '../helpers.js'

export function dispatchSuite(backend: ConformanceBackend) {
  const withGuest = it.skipIf(lacks(backend, 'guest'))

  describe(`§4.1 §4.3 PIO and MMIO through the default client [${backend.name}]`, () => {
    withGuest(
      '§4.1 §9.3 a PIO read: PORTIO request in slot vcpu, PROCESSING, kernel_handled 0; the guest gets the value',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys, { cpu_affinity: 0b1110n })
        const read = guestOf(sys)({
          vmid: vm.vmid,
          vcpu: 2,
          type: 'pio',
          dir: 'read',
          addr: 0x3fd,
          size: 2,
        })
        await vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
        expect(await slotStates(vm)).toEqual([
          IoreqState.FREE,
          IoreqState.FREE,
          IoreqState.PROCESSING,
        ])
        const slot = await readSlot(vm, 2)
        expect(slot).toMatchObject({
          type: IoreqType.PORTIO,
          kernelHandled: 0,
          direction: 0,
          address: 0x3fdn,
          size: 2n,
        })
        await answer(vm, 2, 0xabcdefn)
        await notify(vm, 2)
        // Two bytes of the answer reach the guest.
        expect(await read).toBe(0xcdefn)
        expect((await readSlot(vm, 2)).state).toBe(IoreqState.FREE)
      },
    )

    withGuest('§4.1 a PIO write carries the value, masked to its size', async () => {
      const sys = backend.create()
      const vm = await runningVm(sys)
      const write = guestOf(sys)({
        vmid: vm.vmid,
        vcpu: 0,
        type: 'pio',
        dir: 'write',
        addr: 0x80,
        size: 1,
        value: 0x1234,
      })
      const [slot] = await serve(vm)
      expect(slot).toMatchObject({
        type: IoreqType.PORTIO,
        direction: 1,
        address: 0x80n,
        size: 1n,
        value32: 0x34,
      })
      expect(await write).toBe(0n)
    })

    withGuest('§4.1 MMIO: 64-bit address and value', async () => {
      const sys = backend.create()
      const vm = await runningVm(sys)
      const access = guestOf(sys)
      const write = access({
        vmid: vm.vmid,
        vcpu: 0,
        type: 'mmio',
        dir: 'write',
        addr: 0x1_fe00_0010n,
        size: 8,
        value: 0x0123_4567_89ab_cdefn,
      })
      const [w] = await serve(vm)
      expect(w).toMatchObject({
        type: IoreqType.MMIO,
        direction: 1,
        address: 0x1_fe00_0010n,
        size: 8n,
        value: 0x0123_4567_89ab_cdefn,
      })
      await write
      const read = access({
        vmid: vm.vmid,
        vcpu: 0,
        type: 'mmio',
        dir: 'read',
        addr: 0xfed0_00f0n,
        size: 8,
      })
      await serve(vm, () => 0xfedc_ba98_7654_3210n)
      expect(await read).toBe(0xfedc_ba98_7654_3210n)
    })

    withGuest(
      '§4.1 one request per vCPU: a second access on a busy vCPU is refused, other vCPUs go on',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys, { cpu_affinity: 0b110n })
        const access = guestOf(sys)
        const first = access({
          vmid: vm.vmid,
          vcpu: 0,
          type: 'pio',
          dir: 'read',
          addr: 0x60,
          size: 1,
        })
        await expect(
          access({ vmid: vm.vmid, vcpu: 0, type: 'pio', dir: 'read', addr: 0x64, size: 1 }),
        ).rejects.toMatchObject({ reason: 'busy' })
        const other = access({
          vmid: vm.vmid,
          vcpu: 1,
          type: 'pio',
          dir: 'read',
          addr: 0x64,
          size: 1,
        })
        await sys.settle()
        const served = await serve(vm, (s) => s.address)
        expect(served.map((s) => s.vcpu)).toEqual([0, 1])
        expect(await Promise.all([first, other])).toEqual([0x60n, 0x64n])
      },
    )

    withGuest('guest accesses are refused unless the VM runs and the vCPU exists', async () => {
      const sys = backend.create()
      const vm = await createVm(sys)
      const access = guestOf(sys)
      const pio = { vmid: vm.vmid, vcpu: 0, type: 'pio', dir: 'read', addr: 0x60, size: 1 } as const
      await expect(access(pio)).rejects.toMatchObject({ reason: 'not-running' })
      await vm.proc.ioctl(vm.fd, Ioctl.START_VM)
      await expect(access({ ...pio, vcpu: 5 })).rejects.toMatchObject({ reason: 'no-vcpu' })
      await expect(access({ ...pio, size: 8 })).rejects.toBeInstanceOf(GuestAccessError)
      await expect(access({ ...pio, addr: 0x10000 })).rejects.toMatchObject({ reason: 'invalid' })
      await vm.proc.ioctl(vm.fd, Ioctl.PAUSE_VM)
      await expect(access(pio)).rejects.toMatchObject({ reason: 'not-running' })
    })
  })

  describe(`§4.3 §11.8 requests with no default client [${backend.name}]`, () => {
    withGuest(
      '§4.3 §11.8 they stay PENDING, the pass over that VM stops, other VMs are served',
      async () => {
        const sys = backend.create()
        const a = await runningVm(sys, { client: false, cpu_affinity: 0b110n })
        const b = await runningVm(sys)
        const access = guestOf(sys)
        const a0 = access({ vmid: a.vmid, vcpu: 0, type: 'pio', dir: 'read', addr: 0x60, size: 1 })
        const a1 = access({ vmid: a.vmid, vcpu: 1, type: 'pio', dir: 'read', addr: 0x61, size: 1 })
        const b0 = access({ vmid: b.vmid, vcpu: 0, type: 'pio', dir: 'read', addr: 0x62, size: 1 })
        await serve(b, () => 9n)
        expect(await b0).toBe(9n)
        expect(await slotStates(a)).toEqual([IoreqState.PENDING, IoreqState.PENDING])

        // Creating the client does not rescan...
        await a.proc.ioctl(a.fd, Ioctl.CREATE_IOREQ_CLIENT)
        await sys.settle()
        expect(await slotStates(a)).toEqual([IoreqState.PENDING, IoreqState.PENDING])
        expect((await peek(a.proc.ioctl(a.fd, Ioctl.ATTACH_IOREQ_CLIENT))).state).toBe('pending')

        // ...the next upcall, from any VM, does.
        const b1 = access({
          vmid: b.vmid,
          vcpu: 0,
          type: 'pio',
          dir: 'write',
          addr: 0x62,
          size: 1,
          value: 0,
        })
        await sys.settle()
        expect(await slotStates(a)).toEqual([IoreqState.PROCESSING, IoreqState.PROCESSING])
        await serve(a, (s) => s.address)
        expect(await Promise.all([a0, a1])).toEqual([0x60n, 0x61n])
        await serve(b)
        await b1
      },
    )

    withGuest('§4.3 §4.8 a client destroy rescans every VM', async () => {
      const sys = backend.create()
      const a = await runningVm(sys, { client: false })
      const b = await createVm(sys)
      const access = guestOf(sys)({
        vmid: a.vmid,
        vcpu: 0,
        type: 'mmio',
        dir: 'read',
        addr: 0xc000_0000n,
        size: 4,
      })
      await sys.settle()
      await a.proc.ioctl(a.fd, Ioctl.CREATE_IOREQ_CLIENT)
      expect((await readSlot(a, 0)).state).toBe(IoreqState.PENDING)
      // DESTROY_IOREQ_CLIENT with no client destroys nothing, so nothing is rescanned...
      await b.proc.ioctl(b.fd, Ioctl.DESTROY_IOREQ_CLIENT)
      await sys.settle()
      expect((await readSlot(a, 0)).state).toBe(IoreqState.PENDING)
      // ...destroying a real client of another VM rescans them all.
      await b.proc.ioctl(b.fd, Ioctl.CREATE_IOREQ_CLIENT)
      await b.proc.ioctl(b.fd, Ioctl.DESTROY_IOREQ_CLIENT)
      await sys.settle()
      expect((await readSlot(a, 0)).state).toBe(IoreqState.PROCESSING)
      await serve(a, () => 0x11n)
      expect(await access).toBe(0x11n)
    })
  })

  describe(`§4.6 §11.7 PCI configuration through 0xCF8/0xCFC [${backend.name}]`, () => {
    async function pciVm() {
      const sys = backend.create()
      const vm = await runningVm(sys)
      const access = guestOf(sys)
      const out = (port: number, size: number, value: number) =>
        access({ vmid: vm.vmid, vcpu: 0, type: 'pio', dir: 'write', addr: port, size, value })
      const inp = (port: number, size: number) =>
        access({ vmid: vm.vmid, vcpu: 0, type: 'pio', dir: 'read', addr: port, size })
      return { sys, vm, out, inp }
    }

    withGuest(
      '§4.6 port 0xCF8 is handled in the kernel: written, read back, never seen by a client',
      async () => {
        const { vm, out, inp } = await pciVm()
        const attach = vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
        await out(0xcf8, 4, 0x8000_1234)
        expect(await inp(0xcf8, 4)).toBe(0x8000_1234n)
        // Any width is handled; a narrow read sees the low bytes.
        expect(await inp(0xcf8, 2)).toBe(0x1234n)
        expect((await peek(attach)).state).toBe('pending')
      },
    )

    withGuest(
      '§4.6 with the enable bit clear, data reads are all ones and writes are dropped',
      async () => {
        const { vm, out, inp } = await pciVm()
        const attach = vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
        await out(0xcf8, 4, 0x0000_1000)
        expect(await inp(0xcfc, 4)).toBe(0xffff_ffffn)
        expect(await inp(0xcfe, 2)).toBe(0xffffn)
        await out(0xcfd, 1, 0x55)
        expect((await peek(attach)).state).toBe('pending')
      },
    )

    withGuest(
      '§4.6 with the enable bit set, a data access becomes a PCICFG request for the default client',
      async () => {
        const { vm, out, inp } = await pciVm()
        // Bus 0x12, device 7, function 2, register 0x48, extended page 0xf (bits 27:24).
        await out(0xcf8, 4, 0x8f12_3a48)
        const read = inp(0xcfe, 2)
        const [slot] = await serve(vm, () => 0x8086_1234n)
        expect(slot).toMatchObject({
          type: IoreqType.PCICFG,
          direction: 0,
          size: 2n,
          kernelHandled: 0,
        })
        expect(slot!.pci).toMatchObject({ bus: 0x12, dev: 7, func: 2, reg: 0xf48 + 2 })
        // The PIO address is still there, in pci_request.reserved[1].
        expect(slot!.pci.reserved[1]).toBe(0xcfe)
        expect(await read).toBe(0x1234n)
        const write = out(0xcfc, 4, 0xdead_beef)
        const [w] = await serve(vm)
        expect(w).toMatchObject({ type: IoreqType.PCICFG, direction: 1, value32: 0xdead_beef })
        expect(w!.pci.reg).toBe(0xf48)
        await write
      },
    )

    withGuest('§4.6 ioeventfds on 0xCF8-0xCFF never fire', async () => {
      const { vm, out, inp } = await pciVm()
      const efd = await vm.proc.eventfd(0)
      for (const addr of [0xcf8n, 0xcfcn]) {
        await vm.proc.ioctl(
          vm.fd,
          Ioctl.IOEVENTFD,
          ioeventfdArg({ fd: efd, flags: 1, addr, len: 4 }),
        )
      }
      await out(0xcf8, 4, 0x8000_0800)
      const write = out(0xcfc, 4, 1)
      const [slot] = await serve(vm)
      expect(slot!.type).toBe(IoreqType.PCICFG)
      await write
      expect(await inp(0xcf8, 4)).toBe(0x8000_0800n)
      expect(await vm.proc.eventfdRead(efd).catch((e: { code: string }) => e.code)).toBe('EAGAIN')
    })

    withGuest('§4.6 pci_conf_addr is kept per VM', async () => {
      const sys = backend.create()
      const a = await runningVm(sys)
      const b = await runningVm(sys)
      const access = guestOf(sys)
      await access({
        vmid: a.vmid,
        vcpu: 0,
        type: 'pio',
        dir: 'write',
        addr: 0xcf8,
        size: 4,
        value: 0x8000_0010,
      })
      expect(
        await access({ vmid: b.vmid, vcpu: 0, type: 'pio', dir: 'read', addr: 0xcf8, size: 4 }),
      ).toBe(0n)
      expect(
        await access({ vmid: a.vmid, vcpu: 0, type: 'pio', dir: 'read', addr: 0xcf8, size: 4 }),
      ).toBe(0x8000_0010n)
    })

    withGuest('§4.6 §11.8 a PCICFG request with no default client stalls', async () => {
      const sys = backend.create()
      const vm = await runningVm(sys, { client: false })
      const access = guestOf(sys)
      await access({
        vmid: vm.vmid,
        vcpu: 0,
        type: 'pio',
        dir: 'write',
        addr: 0xcf8,
        size: 4,
        value: 0x8000_0000,
      })
      const read = access({
        vmid: vm.vmid,
        vcpu: 0,
        type: 'pio',
        dir: 'read',
        addr: 0xcfc,
        size: 4,
      })
      await sys.settle()
      const slot = await readSlot(vm, 0)
      expect(slot).toMatchObject({ state: IoreqState.PENDING, type: IoreqType.PCICFG })
      expect((await peek(read)).state).toBe('pending')
    })
  })
}
