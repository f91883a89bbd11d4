// §11: the checklist of what a naive simulator gets wrong, one case per pitfall.

import { describe, expect, it } from 'vitest'
import {
  encode,
  GsiOp,
  IoeventfdFlag,
  Ioctl,
  IoreqState,
  IoreqType,
  Memmap,
  MemType,
  PmCmd,
  structs,
} from '../../../../../src/index.js'
import type { ConformanceBackend } from '../backend.js'
import {
  answer,
  createVm,
  errnoOf,
  guestOf,
  ioeventfdArg,
  irqfdArg,
  irqline,
  lacks,
  memmap,
  notify,
  notifyArg,
  peek,
  readSlot,
  runningVm,
  serve,
  slotStates,
  vmCreation,
} from '../helpers.js'

export function pitfallsSuite(backend: ConformanceBackend) {
  const withGuest = it.skipIf(lacks(backend, 'guest'))
  const withInspect = it.skipIf(lacks(backend, 'inspect'))

  describe(`§11 pitfalls [${backend.name}]`, () => {
    it('§11.1 any ioctl but CREATE_VM on a fresh fd is EINVAL, an unknown one too', async () => {
      const proc = backend.create().spawn()
      const fd = await proc.open('/dev/acrn_hsm')
      expect(await errnoOf(proc.ioctl(fd, Ioctl.ATTACH_IOREQ_CLIENT))).toBe('EINVAL')
      expect(await errnoOf(proc.ioctl(fd, 0x1234))).toBe('EINVAL')
    })

    it.skipIf(lacks(backend, 'users'))(
      '§11.2 no privilege check beyond the node: with a udev rule making it 0666, any user may do everything',
      async () => {
        const sys = backend.create({ hsmNode: { mode: 0o666 } })
        const vm = await runningVm(sys, { proc: sys.spawn({ uid: 1000 }) })
        await vm.proc.ioctl(vm.fd, Ioctl.SET_IRQLINE, irqline(3, GsiOp.SET_HIGH))
        await vm.proc.ioctl(vm.fd, Ioctl.PAUSE_VM)
        expect(await vm.proc.ioctl(vm.fd, Ioctl.DESTROY_VM)).toBe(0)
      },
    )

    withGuest(
      '§11.3 PENDING 0, COMPLETE 1, PROCESSING 2, FREE 3; slot = vCPU; only vcpu_num slots scanned',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys, { cpu_affinity: 0b110n })
        expect(await slotStates(vm)).toEqual([3, 3])
        // A PENDING-looking (zeroed) slot beyond vcpu_num is never dispatched.
        await vm.proc.write(vm.page + 5n * 256n + 136n, new Uint8Array(4))
        const access = guestOf(sys)({
          vmid: vm.vmid,
          vcpu: 1,
          type: 'pio',
          dir: 'read',
          addr: 0x71,
          size: 1,
        })
        await vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
        expect(await slotStates(vm)).toEqual([3, 2])
        expect((await readSlot(vm, 5)).state).toBe(0)
        await answer(vm, 1, 0x99n)
        await notify(vm, 1)
        expect(await access).toBe(0x99n)
      },
    )

    withGuest(
      '§11.4 ATTACH: 0 on wake-up without saying which vCPU; ENODEV on client destroy',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys, { cpu_affinity: 0b110n })
        void guestOf(sys)({
          vmid: vm.vmid,
          vcpu: 1,
          type: 'pio',
          dir: 'write',
          addr: 0x80,
          size: 1,
          value: 0,
        })
        expect(await vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)).toBe(0)
        const attach = vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
        await vm.proc.ioctl(vm.fd, Ioctl.DESTROY_IOREQ_CLIENT)
        expect(await errnoOf(attach)).toBe('OK')
        await vm.proc.ioctl(vm.fd, Ioctl.CREATE_IOREQ_CLIENT)
        const blocked = vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
        await vm.proc.ioctl(vm.fd, Ioctl.DESTROY_IOREQ_CLIENT)
        expect(await errnoOf(blocked)).toBe('ENODEV')
      },
    )

    withGuest(
      '§11.5 NOTIFY ignores vmid, truncates vcpu, completes unconditionally, is a no-op without a client',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys)
        const access = guestOf(sys)({
          vmid: vm.vmid,
          vcpu: 0,
          type: 'pio',
          dir: 'read',
          addr: 0x71,
          size: 1,
        })
        await vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
        expect(
          await vm.proc.ioctl(
            vm.fd,
            Ioctl.NOTIFY_REQUEST_FINISH,
            notifyArg(0x3_0000, { vmid: 0xbeef }),
          ),
        ).toBe(0)
        await access
        expect(await notify(vm, 0)).toBe(0)
        expect((await readSlot(vm, 0)).state).toBe(IoreqState.COMPLETE)
        await vm.proc.ioctl(vm.fd, Ioctl.DESTROY_IOREQ_CLIENT)
        expect(await vm.proc.ioctl(vm.fd, Ioctl.NOTIFY_REQUEST_FINISH, notifyArg(9))).toBe(0)
      },
    )

    it.skipIf(lacks(backend, 'guest', 'inspect')).each([
      ['with polling', 1n << 2n, 1, 0],
      ['without polling', 0n, 0, 1],
    ])(
      '§11.6 %s: completion_polling $2, NOTIFY hypercalls $3',
      async (_label, vmFlag, polling, hypercalls) => {
        const sys = backend.create()
        const vm = await runningVm(sys, { vm_flag: vmFlag })
        const access = guestOf(sys)({
          vmid: vm.vmid,
          vcpu: 0,
          type: 'mmio',
          dir: 'read',
          addr: 0xe000_0000n,
          size: 4,
        })
        const before = sys.inspect!.hypercalls().NOTIFY_REQUEST_FINISH!
        const [slot] = await serve(vm, () => 0xcafen)
        expect(slot!.completionPolling).toBe(polling)
        expect(sys.inspect!.hypercalls().NOTIFY_REQUEST_FINISH! - before).toBe(hypercalls)
        // COMPLETE either way; the vCPU then frees the slot.
        await sys.settle()
        expect(await access).toBe(0xcafen)
      },
    )

    withGuest(
      '§11.7 0xCF8/0xCFC handled in the kernel; enabled data accesses become PCICFG for the default client',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys)
        const access = guestOf(sys)
        const efd = await vm.proc.eventfd(0)
        await vm.proc.ioctl(
          vm.fd,
          Ioctl.IOEVENTFD,
          ioeventfdArg({ fd: efd, flags: IoeventfdFlag.PIO, addr: 0xcfcn, len: 4 }),
        )
        await access({
          vmid: vm.vmid,
          vcpu: 0,
          type: 'pio',
          dir: 'write',
          addr: 0xcf8,
          size: 4,
          value: 0x8000_2010,
        })
        const read = access({
          vmid: vm.vmid,
          vcpu: 0,
          type: 'pio',
          dir: 'read',
          addr: 0xcfc,
          size: 4,
        })
        const [slot] = await serve(vm, () => 0x1n)
        expect(slot).toMatchObject({
          type: IoreqType.PCICFG,
          pci: { bus: 0, dev: 4, func: 0, reg: 0x10 },
        })
        expect(await read).toBe(1n)
      },
    )

    withGuest(
      '§11.8 no client, no progress: later slots wait too; creating a client does not rescan',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys, { client: false, cpu_affinity: 0b110n })
        const access = guestOf(sys)
        void access({ vmid: vm.vmid, vcpu: 0, type: 'pio', dir: 'read', addr: 0x60, size: 1 })
        void access({ vmid: vm.vmid, vcpu: 1, type: 'pio', dir: 'read', addr: 0x60, size: 1 })
        // Let the upcall's dispatch run (and find no client) before the client exists.
        await sys.settle()
        expect(await slotStates(vm)).toEqual([IoreqState.PENDING, IoreqState.PENDING])
        await vm.proc.ioctl(vm.fd, Ioctl.CREATE_IOREQ_CLIENT)
        await sys.settle()
        expect(await slotStates(vm)).toEqual([IoreqState.PENDING, IoreqState.PENDING])
      },
    )

    it.skipIf(lacks(backend, 'guest', 'inspect'))(
      "§11.8 §4.3 the pass stops at the first slot with no client, even before a kernel client's slot",
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys, { client: false, cpu_affinity: 0b110n })
        const efd = await vm.proc.eventfd(0)
        await vm.proc.ioctl(
          vm.fd,
          Ioctl.IOEVENTFD,
          ioeventfdArg({ fd: efd, flags: IoeventfdFlag.PIO, addr: 0x70n, len: 1 }),
        )
        const access = guestOf(sys)
        void access({ vmid: vm.vmid, vcpu: 0, type: 'pio', dir: 'read', addr: 0x60, size: 1 })
        await sys.settle()
        // vCPU 1's write is the ioeventfd's, but slot 0 ends every pass first.
        const kick = access({
          vmid: vm.vmid,
          vcpu: 1,
          type: 'pio',
          dir: 'write',
          addr: 0x70,
          size: 1,
          value: 0,
        })
        await sys.settle()
        expect(await slotStates(vm)).toEqual([IoreqState.PENDING, IoreqState.PENDING])
        expect((await peek(kick)).state).toBe('pending')
        expect(sys.inspect!.vm(vm.vmid)!.vcpus.map((v) => v.requestOutstanding)).toEqual([
          true,
          true,
        ])
      },
    )

    withInspect(
      '§11.9 MMIO is UC, RAM is WB, RAM cannot be unset, len < 4096 is EINVAL, overlaps are fine',
      async () => {
        const sys = backend.create()
        const vm = await createVm(sys)
        const ram = await vm.proc.mmap(0x2000)
        await vm.proc.ioctl(
          vm.fd,
          Ioctl.SET_MEMSEG,
          memmap({ type: Memmap.RAM, attr: MemType.WC | 7, vma_base: ram, len: 0x2000n }),
        )
        await vm.proc.ioctl(
          vm.fd,
          Ioctl.SET_MEMSEG,
          memmap({
            type: Memmap.MMIO,
            attr: MemType.WB | 3,
            user_vm_pa: 0x1000n,
            vma_base: 0xa000_0000n,
            len: 0x1000n,
          }),
        )
        expect(sys.inspect!.ept(vm.vmid).map((r) => r.attr)).toEqual([
          MemType.WB | 7,
          MemType.UC | 3,
        ])
        expect(
          await errnoOf(
            vm.proc.ioctl(vm.fd, Ioctl.UNSET_MEMSEG, memmap({ type: Memmap.RAM, len: 0x2000n })),
          ),
        ).toBe('EINVAL')
        expect(
          await errnoOf(
            vm.proc.ioctl(
              vm.fd,
              Ioctl.SET_MEMSEG,
              memmap({ type: Memmap.RAM, vma_base: ram, len: 0xfffn }),
            ),
          ),
        ).toBe('EINVAL')
      },
    )

    withGuest(
      '§11.10 ioeventfd: exact start address, reads return 0, oldest wins, deassign by eventfd',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys)
        const access = guestOf(sys)
        const [a, b] = [await vm.proc.eventfd(0), await vm.proc.eventfd(0)]
        await vm.proc.ioctl(vm.fd, Ioctl.IOEVENTFD, ioeventfdArg({ fd: a, addr: 0x9000n, len: 8 }))
        await vm.proc.ioctl(vm.fd, Ioctl.IOEVENTFD, ioeventfdArg({ fd: b, addr: 0x9000n, len: 8 }))
        await access({
          vmid: vm.vmid,
          vcpu: 0,
          type: 'mmio',
          dir: 'write',
          addr: 0x9004,
          size: 4,
          value: 1,
        })
        await access({
          vmid: vm.vmid,
          vcpu: 0,
          type: 'mmio',
          dir: 'write',
          addr: 0x9000,
          size: 4,
          value: 1,
        })
        expect(
          await access({
            vmid: vm.vmid,
            vcpu: 0,
            type: 'mmio',
            dir: 'read',
            addr: 0x9000,
            size: 8,
          }),
        ).toBe(0n)
        expect(await vm.proc.eventfdRead(a)).toBe(1n)
        expect(await errnoOf(vm.proc.eventfdRead(b))).toBe('EAGAIN')
      },
    )

    it.skipIf(lacks(backend, 'inspect', 'dup'))(
      '§11.11 irqfd: EBUSY, one MSI per write, counter never drained, inject at assign, removal on close',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys)
        const efd = await vm.proc.eventfd(1)
        const twin = await vm.proc.dup!(efd)
        await vm.proc.ioctl(vm.fd, Ioctl.IRQFD, irqfdArg({ fd: efd, msi_data: 0x23n }))
        expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.IRQFD, irqfdArg({ fd: twin })))).toBe(
          'EBUSY',
        )
        await vm.proc.eventfdWrite(efd, 3)
        expect(sys.inspect!.msi(vm.vmid)).toEqual([{ vcpu: 0, vector: 0x23, count: 2 }])
        expect(await vm.proc.eventfdRead(efd)).toBe(4n)
        await vm.proc.close(efd)
        await vm.proc.close(twin)
        await sys.settle()
        const again = await vm.proc.eventfd(0)
        expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.IRQFD, irqfdArg({ fd: again })))).toBe('OK')
      },
    )

    withInspect(
      '§11.12 SET_IRQLINE and VM_INTR_MONITOR take values; PM_GET_CPU_STATE writes up to 48 bytes',
      async () => {
        const sys = backend.create()
        const vm = await createVm(sys)
        await vm.proc.ioctl(vm.fd, Ioctl.SET_IRQLINE, irqline(4, GsiOp.SET_HIGH))
        expect(sys.inspect!.gsi(vm.vmid)!.ioapic).toEqual([{ pin: 4, level: 1, assertions: 1 }])
        const page = await vm.proc.mmap(4096)
        expect(await vm.proc.ioctl(vm.fd, Ioctl.VM_INTR_MONITOR, page)).toBe(0)
        const buf = new Uint8Array(48).fill(0xaa)
        new DataView(buf.buffer).setBigUint64(
          0,
          (BigInt(vm.vmid) << 24n) | BigInt(PmCmd.GET_PX_DATA),
          true,
        )
        await vm.proc.ioctl(vm.fd, Ioctl.PM_GET_CPU_STATE, buf)
        expect(buf.subarray(40).some((b) => b === 0xaa)).toBe(false)
      },
    )

    withInspect(
      '§11.13 destroy first, nothing released on failure; re-create leaves an undestroyable VM; CREATE on a live fd orphans',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys)
        expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.DESTROY_VM))).toBe('EPERM')
        expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.CREATE_IOREQ_CLIENT))).toBe('EEXIST')
        const page = await vm.proc.mmap(4096)
        expect(
          await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.CREATE_VM, vmCreation({ ioreq_buf: page }))),
        ).toBe('EINVAL')
        expect(sys.inspect!.vm(vm.vmid)?.state).toBe('running')
        expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.PAUSE_VM))).toBe('EINVAL')
      },
    )

    it('§11.14 hypervisor -1 is EPERM; every CREATE_VM hypervisor failure is EINVAL', async () => {
      const vm = await createVm(backend.create())
      expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.RESET_VM))).toBe('EPERM')
      const fd = await vm.proc.open('/dev/acrn_hsm')
      const page = await vm.proc.mmap(4096)
      expect(
        await errnoOf(
          vm.proc.ioctl(fd, Ioctl.CREATE_VM, vmCreation({ ioreq_buf: page, cpu_affinity: 1n })),
        ),
      ).toBe('EINVAL')
    })

    it('§11.15 ioreq buffer and monitor page: the page containing the address', async () => {
      const sys = backend.create()
      const proc = sys.spawn()
      const fd = await proc.open('/dev/acrn_hsm')
      const pages = await proc.mmap(3 * 4096)
      await proc.ioctl(
        fd,
        Ioctl.CREATE_VM,
        vmCreation({ ioreq_buf: pages + 4096n + 4095n, cpu_affinity: 0b10n }),
      )
      const states = new DataView((await proc.read(pages, 3 * 4096)).buffer)
      expect([
        states.getUint32(136, true),
        states.getUint32(4096 + 136, true),
        states.getUint32(8192 + 136, true),
      ]).toEqual([0, 3, 0])
      await proc.write(pages + 8192n, encode(structs.acrn_intr_monitor, { cmd: 0, buf_cnt: 48 }))
      expect(await proc.ioctl(fd, Ioctl.VM_INTR_MONITOR, pages + 8192n + 4000n)).toBe(0)
      // GET_DATA rewrote buf_cnt at the start of that page (no pass-through interrupts: 0).
      expect(new DataView((await proc.read(pages + 8192n, 8)).buffer).getUint32(4, true)).toBe(0)
    })

    withGuest(
      '§11.16 vm-sample: a non-zero notify.reserved leaves the request uncompleted and ATTACH spinning',
      async () => {
        const sys = backend.create()
        const vm = await runningVm(sys)
        const access = guestOf(sys)({
          vmid: vm.vmid,
          vcpu: 0,
          type: 'pio',
          dir: 'write',
          addr: 0x3f8,
          size: 1,
          value: 0x48,
        })
        await vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
        // Stack garbage in reserved: EINVAL, and the request is never completed...
        expect(
          await errnoOf(
            vm.proc.ioctl(vm.fd, Ioctl.NOTIFY_REQUEST_FINISH, notifyArg(0, { reserved: 0xc0de })),
          ),
        ).toBe('EINVAL')
        // ...so ATTACH returns at once forever.
        expect((await peek(vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT))).state).toBe(
          'fulfilled',
        )
        expect((await peek(access)).state).toBe('pending')
        await vm.proc.ioctl(vm.fd, Ioctl.NOTIFY_REQUEST_FINISH, notifyArg(0))
        expect(await access).toBe(0n)
      },
    )
  })
}
