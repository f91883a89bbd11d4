// §10.2 as a checklist: one row per (ioctl, errno) the spec lists, each producing that
// errno through the raw ioctl interface. The section suites test the behaviour around
// them; this table is where a reader checks that none is missing.
//
// Not reproducible, and so not listed: allocation failures (ENOMEM from memdup, kzalloc,
// client or irqfd allocation), and a failing NOTIFY hypercall (the hypervisor refuses it
// only for a VM HSM no longer reaches).

import { describe, expect, it } from 'vitest'
import {
  encode,
  GsiOp,
  IoeventfdFlag,
  Ioctl,
  IrqfdFlag,
  Memmap,
  PmCmd,
  structs,
  ioc,
} from '../../../../../src/index.js'
import type { Capability, ConformanceBackend, ConformanceSystem } from '../backend.js'
import {
  createVm,
  errnoOf,
  ioeventfdArg,
  irqfdArg,
  irqline,
  lacks,
  memmap,
  msiArg,
  notifyArg,
  pauseAndDestroy,
  vmCreation,
  type VmHandle,
} from '../helpers.js'

type Row = readonly [
  label: string,
  expected: string,
  run: (vm: VmHandle) => Promise<unknown>,
  needs?: Capability[],
]

const io = (vm: VmHandle, request: number, arg?: Uint8Array | bigint) =>
  vm.proc.ioctl(vm.fd, request, arg)
const pm = (vm: VmHandle, type: number, index = 0, size = 48) => {
  const buf = new Uint8Array(size)
  const cmd = (BigInt(vm.vmid) << 24n) | (BigInt(index) << 8n) | BigInt(type)
  if (size >= 8) new DataView(buf.buffer).setBigUint64(0, cmd, true)
  return io(vm, Ioctl.PM_GET_CPU_STATE, buf)
}
const NIC = 0x200 // 02:00.0 of the default inventory
const pcidev = (phys_bdf: number) => encode(structs.acrn_pcidev, { phys_bdf, virt_bdf: 0x28 })
const vdev = (slot: bigint) => encode(structs.acrn_vdev, { slot })
const mmiodev = (size: bigint) =>
  encode(structs.acrn_mmiodev, {
    res: [{ service_vm_pa: 0xfed4_0000n, user_vm_pa: 0xfed4_0000n, size }],
  })
const ptdev = (type: number) => encode(structs.acrn_ptdev_irq, { type, phys_bdf: NIC })
const vcpuRegs = (reserved = 0) =>
  encode(structs.acrn_vcpu_regs, { reserved: [reserved], vcpu_regs: { cr0: 0x30n } })

async function newVmOnFd(vm: VmHandle): Promise<unknown> {
  const page = await vm.proc.mmap(4096)
  return io(vm, Ioctl.CREATE_VM, vmCreation({ ioreq_buf: page, cpu_affinity: 0b10n }))
}

const ROWS: readonly Row[] = [
  // CREATE_VM
  ['CREATE_VM memdup fault', 'EFAULT', (vm) => io(vm, Ioctl.CREATE_VM, new Uint8Array(47))],
  [
    'CREATE_VM reserved0 | reserved1 non-zero',
    'EINVAL',
    async (vm) => {
      await pauseAndDestroy(vm)
      return io(vm, Ioctl.CREATE_VM, vmCreation({ ioreq_buf: vm.page, reserved1: 2 }))
    },
  ],
  [
    'CREATE_VM hypervisor failure (affinity not a subset)',
    'EINVAL',
    async (vm) => {
      await pauseAndDestroy(vm)
      return io(
        vm,
        Ioctl.CREATE_VM,
        vmCreation({ ioreq_buf: await vm.proc.mmap(4096), cpu_affinity: 1n << 63n }),
      )
    },
  ],
  [
    'CREATE_VM ioreq page pin failure',
    'EINVAL',
    async (vm) => {
      await pauseAndDestroy(vm)
      return io(vm, Ioctl.CREATE_VM, vmCreation({ ioreq_buf: 0x4000n }))
    },
  ],
  [
    'CREATE_VM no check on vmid, vcpu_num, vm_flag, uuid',
    'OK',
    async (vm) => {
      await pauseAndDestroy(vm)
      const arg = vmCreation({
        ioreq_buf: await vm.proc.mmap(4096),
        vm_flag: 1n << 40n,
        name: 'garbage\u00ff',
      })
      new DataView(arg.buffer).setUint16(0, 0x1234, true)
      new DataView(arg.buffer).setUint16(4, 0x99, true)
      return io(vm, Ioctl.CREATE_VM, arg)
    },
  ],
  // DESTROY_VM, START, PAUSE, RESET
  [
    'DESTROY_VM of a paused VM',
    'OK',
    async (vm) => {
      await io(vm, Ioctl.PAUSE_VM)
      return io(vm, Ioctl.DESTROY_VM)
    },
  ],
  ['DESTROY_VM hypervisor error (not paused)', 'EPERM', (vm) => io(vm, Ioctl.DESTROY_VM)],
  [
    'DESTROY_VM of a re-created VM (DESTROYED still set)',
    'OK',
    async (vm) => {
      await pauseAndDestroy(vm)
      await newVmOnFd(vm)
      return io(vm, Ioctl.DESTROY_VM)
    },
  ],
  [
    'START hypervisor result',
    'EPERM',
    async (vm) => {
      await io(vm, Ioctl.START_VM)
      return io(vm, Ioctl.START_VM)
    },
  ],
  ['PAUSE hypervisor result', 'OK', (vm) => io(vm, Ioctl.PAUSE_VM)],
  ['RESET hypervisor result', 'EPERM', (vm) => io(vm, Ioctl.RESET_VM)],
  // SET_VCPU_REGS
  [
    'SET_VCPU_REGS memdup fault',
    'EFAULT',
    (vm) => io(vm, Ioctl.SET_VCPU_REGS, vcpuRegs().subarray(0, 295)),
  ],
  ['SET_VCPU_REGS reserved non-zero', 'EINVAL', (vm) => io(vm, Ioctl.SET_VCPU_REGS, vcpuRegs(1))],
  [
    'SET_VCPU_REGS hypervisor result (running)',
    'EPERM',
    async (vm) => {
      await io(vm, Ioctl.START_VM)
      return io(vm, Ioctl.SET_VCPU_REGS, vcpuRegs())
    },
  ],
  // SET_MEMSEG
  ['SET_MEMSEG copy fault', 'EFAULT', (vm) => io(vm, Ioctl.SET_MEMSEG)],
  [
    'SET_MEMSEG bad type',
    'EINVAL',
    (vm) => io(vm, Ioctl.SET_MEMSEG, memmap({ type: 3, len: 4096n })),
  ],
  [
    'SET_MEMSEG RAM len < 4096',
    'EINVAL',
    async (vm) =>
      io(
        vm,
        Ioctl.SET_MEMSEG,
        memmap({ type: Memmap.RAM, vma_base: await vm.proc.mmap(4096), len: 4000n }),
      ),
  ],
  [
    'SET_MEMSEG RAM pin failure',
    'EFAULT',
    (vm) => io(vm, Ioctl.SET_MEMSEG, memmap({ type: Memmap.RAM, vma_base: 0x8000n, len: 4096n })),
  ],
  [
    'SET_MEMSEG PFNMAP span',
    'EINVAL',
    async (vm) => {
      const base = await vm.proc.mmapPfn!([0xa000_0000n])
      return io(vm, Ioctl.SET_MEMSEG, memmap({ type: Memmap.RAM, vma_base: base, len: 0x2000n }))
    },
    ['pfnmap'],
  ],
  [
    'SET_MEMSEG PFNMAP contiguity',
    'EINVAL',
    async (vm) => {
      const base = await vm.proc.mmapPfn!([0xa000_1000n, 0xa000_0000n])
      return io(vm, Ioctl.SET_MEMSEG, memmap({ type: Memmap.RAM, vma_base: base, len: 0x2000n }))
    },
    ['pfnmap'],
  ],
  [
    'SET_MEMSEG PFNMAP write-protect',
    'EFAULT',
    async (vm) => {
      const base = await vm.proc.mmapPfn!([0xa000_0000n], { writable: false })
      return io(
        vm,
        Ioctl.SET_MEMSEG,
        memmap({ type: Memmap.RAM, attr: 0x2, vma_base: base, len: 0x1000n }),
      )
    },
    ['pfnmap'],
  ],
  [
    'SET_MEMSEG PFNMAP refcounted page',
    'EFAULT',
    async (vm) => {
      const base = await vm.proc.mmapPfn!([await vm.proc.pagemap!(vm.page)])
      return io(vm, Ioctl.SET_MEMSEG, memmap({ type: Memmap.RAM, vma_base: base, len: 0x1000n }))
    },
    ['pfnmap'],
  ],
  [
    'SET_MEMSEG 256 records used',
    'ENOMEM',
    async (vm) => {
      const ram = await vm.proc.mmap(4096)
      for (let i = 0; i < 256; i++)
        await io(vm, Ioctl.SET_MEMSEG, memmap({ type: Memmap.RAM, vma_base: ram, len: 4096n }))
      return io(vm, Ioctl.SET_MEMSEG, memmap({ type: Memmap.RAM, vma_base: ram, len: 4096n }))
    },
  ],
  [
    'SET_MEMSEG MMIO hypervisor error (size)',
    'EINVAL',
    (vm) =>
      io(vm, Ioctl.SET_MEMSEG, memmap({ type: Memmap.MMIO, vma_base: 0xa000_0000n, len: 100n })),
  ],
  // UNSET_MEMSEG
  ['UNSET_MEMSEG copy fault', 'EFAULT', (vm) => io(vm, Ioctl.UNSET_MEMSEG, new Uint8Array(16))],
  [
    'UNSET_MEMSEG type RAM',
    'EINVAL',
    (vm) => io(vm, Ioctl.UNSET_MEMSEG, memmap({ type: Memmap.RAM, len: 4096n })),
  ],
  [
    'UNSET_MEMSEG hypervisor error (not mapped)',
    'EINVAL',
    (vm) => io(vm, Ioctl.UNSET_MEMSEG, memmap({ type: Memmap.MMIO, len: 4096n })),
  ],
  // The copy-and-hypercall ioctls
  ['ASSIGN_PCIDEV memdup fault', 'EFAULT', (vm) => io(vm, Ioctl.ASSIGN_PCIDEV, new Uint8Array(35))],
  [
    'ASSIGN_PCIDEV hypervisor result',
    'ENODEV',
    (vm) => io(vm, Ioctl.ASSIGN_PCIDEV, pcidev(0xffff)),
  ],
  ['DEASSIGN_PCIDEV memdup fault', 'EFAULT', (vm) => io(vm, Ioctl.DEASSIGN_PCIDEV)],
  [
    'DEASSIGN_PCIDEV hypervisor result',
    'ENODEV',
    (vm) => io(vm, Ioctl.DEASSIGN_PCIDEV, pcidev(NIC)),
  ],
  [
    'ASSIGN_MMIODEV memdup fault',
    'EFAULT',
    (vm) => io(vm, Ioctl.ASSIGN_MMIODEV, new Uint8Array(103)),
  ],
  [
    'ASSIGN_MMIODEV hypervisor result',
    'EINVAL',
    (vm) => io(vm, Ioctl.ASSIGN_MMIODEV, mmiodev(0x10n)),
  ],
  ['DEASSIGN_MMIODEV memdup fault', 'EFAULT', (vm) => io(vm, Ioctl.DEASSIGN_MMIODEV)],
  [
    'DEASSIGN_MMIODEV hypervisor result',
    'EINVAL',
    (vm) => io(vm, Ioctl.DEASSIGN_MMIODEV, mmiodev(0x5000n)),
  ],
  ['CREATE_VDEV memdup fault', 'EFAULT', (vm) => io(vm, Ioctl.CREATE_VDEV, new Uint8Array(191))],
  [
    'CREATE_VDEV hypervisor result',
    'EINVAL',
    async (vm) => {
      await io(vm, Ioctl.CREATE_VDEV, vdev(1n))
      return io(vm, Ioctl.CREATE_VDEV, vdev(1n))
    },
  ],
  ['DESTROY_VDEV memdup fault', 'EFAULT', (vm) => io(vm, Ioctl.DESTROY_VDEV)],
  ['DESTROY_VDEV hypervisor result', 'EINVAL', (vm) => io(vm, Ioctl.DESTROY_VDEV, vdev(9n))],
  [
    'SET_PTDEV_INTR memdup fault',
    'EFAULT',
    (vm) => io(vm, Ioctl.SET_PTDEV_INTR, new Uint8Array(19)),
  ],
  ['SET_PTDEV_INTR hypervisor result', 'EPERM', (vm) => io(vm, Ioctl.SET_PTDEV_INTR, ptdev(0))],
  ['RESET_PTDEV_INTR memdup fault', 'EFAULT', (vm) => io(vm, Ioctl.RESET_PTDEV_INTR)],
  ['RESET_PTDEV_INTR hypervisor result', 'EPERM', (vm) => io(vm, Ioctl.RESET_PTDEV_INTR, ptdev(2))],
  ['INJECT_MSI memdup fault', 'EFAULT', (vm) => io(vm, Ioctl.INJECT_MSI, new Uint8Array(8))],
  ['INJECT_MSI hypervisor result', 'EPERM', (vm) => io(vm, Ioctl.INJECT_MSI, msiArg(0n, 0n))],
  [
    'SET_IRQLINE hypervisor result',
    'EPERM',
    (vm) => io(vm, Ioctl.SET_IRQLINE, irqline(64, GsiOp.SET_HIGH)),
  ],
  ['VM_INTR_MONITOR pin failure', 'EFAULT', (vm) => io(vm, Ioctl.VM_INTR_MONITOR, 0x2000n)],
  [
    'VM_INTR_MONITOR hypervisor result',
    'EINVAL',
    async (vm) => {
      const page = await vm.proc.mmap(4096)
      await vm.proc.write(page, encode(structs.acrn_intr_monitor, { cmd: 7 }))
      return io(vm, Ioctl.VM_INTR_MONITOR, page)
    },
  ],
  // ioreq clients
  [
    'CREATE_IOREQ_CLIENT twice',
    'EEXIST',
    async (vm) => {
      await io(vm, Ioctl.CREATE_IOREQ_CLIENT)
      return io(vm, Ioctl.CREATE_IOREQ_CLIENT)
    },
  ],
  ['DESTROY_IOREQ_CLIENT', 'OK', (vm) => io(vm, Ioctl.DESTROY_IOREQ_CLIENT)],
  ['ATTACH_IOREQ_CLIENT without a client', 'ENODEV', (vm) => io(vm, Ioctl.ATTACH_IOREQ_CLIENT)],
  [
    'ATTACH_IOREQ_CLIENT destroyed while waiting',
    'ENODEV',
    async (vm) => {
      await io(vm, Ioctl.CREATE_IOREQ_CLIENT)
      const attach = io(vm, Ioctl.ATTACH_IOREQ_CLIENT)
      await io(vm, Ioctl.DESTROY_IOREQ_CLIENT)
      return attach
    },
  ],
  [
    'ATTACH_IOREQ_CLIENT interrupted by a signal',
    'OK',
    async (vm) => {
      await io(vm, Ioctl.CREATE_IOREQ_CLIENT)
      const attach = io(vm, Ioctl.ATTACH_IOREQ_CLIENT)
      vm.proc.interrupt!()
      return attach
    },
    ['signal'],
  ],
  [
    'NOTIFY_REQUEST_FINISH copy fault',
    'EFAULT',
    (vm) => io(vm, Ioctl.NOTIFY_REQUEST_FINISH, new Uint8Array(4)),
  ],
  [
    'NOTIFY_REQUEST_FINISH reserved != 0',
    'EINVAL',
    (vm) => io(vm, Ioctl.NOTIFY_REQUEST_FINISH, notifyArg(0, { reserved: 9 })),
  ],
  [
    'NOTIFY_REQUEST_FINISH vcpu >= vcpu_num',
    'EINVAL',
    async (vm) => {
      await io(vm, Ioctl.CREATE_IOREQ_CLIENT)
      return io(vm, Ioctl.NOTIFY_REQUEST_FINISH, notifyArg(1))
    },
  ],
  [
    'NOTIFY_REQUEST_FINISH without a default client',
    'OK',
    (vm) => io(vm, Ioctl.NOTIFY_REQUEST_FINISH, notifyArg(1)),
  ],
  ['CLEAR_VM_IOREQ', 'OK', (vm) => io(vm, Ioctl.CLEAR_VM_IOREQ)],
  // PM
  ['PM_GET_CPU_STATE copy-in fault', 'EFAULT', (vm) => pm(vm, PmCmd.GET_PX_CNT, 0, 7)],
  ['PM_GET_CPU_STATE copy-out fault', 'EFAULT', (vm) => pm(vm, PmCmd.GET_CX_DATA, 1, 16)],
  ['PM_GET_CPU_STATE hypervisor error', 'EPERM', (vm) => pm(vm, PmCmd.GET_PX_DATA, 99)],
  ['PM_GET_CPU_STATE unknown type', 'OK', (vm) => pm(vm, 0x7f)],
  // IOEVENTFD
  ['IOEVENTFD copy fault', 'EFAULT', (vm) => io(vm, Ioctl.IOEVENTFD)],
  [
    'IOEVENTFD reserved != 0',
    'EINVAL',
    async (vm) =>
      io(
        vm,
        Ioctl.IOEVENTFD,
        ioeventfdArg({ fd: await vm.proc.eventfd(0), addr: 0n, len: 4, reserved: 1 }),
      ),
  ],
  [
    'IOEVENTFD assign overflow',
    'EINVAL',
    async (vm) =>
      io(
        vm,
        Ioctl.IOEVENTFD,
        ioeventfdArg({ fd: await vm.proc.eventfd(0), addr: -1n & 0xffff_ffff_ffff_ffffn, len: 1 }),
      ),
  ],
  [
    'IOEVENTFD assign bad len',
    'EINVAL',
    async (vm) =>
      io(vm, Ioctl.IOEVENTFD, ioeventfdArg({ fd: await vm.proc.eventfd(0), addr: 0n, len: 5 })),
  ],
  [
    'IOEVENTFD assign EBADF',
    'EBADF',
    (vm) => io(vm, Ioctl.IOEVENTFD, ioeventfdArg({ fd: 1000, addr: 0n, len: 4 })),
  ],
  [
    'IOEVENTFD assign not an eventfd',
    'EINVAL',
    (vm) => io(vm, Ioctl.IOEVENTFD, ioeventfdArg({ fd: vm.fd, addr: 0n, len: 4 })),
  ],
  [
    'IOEVENTFD assign conflict',
    'EEXIST',
    async (vm) => {
      const efd = await vm.proc.eventfd(0)
      await io(vm, Ioctl.IOEVENTFD, ioeventfdArg({ fd: efd, addr: 0x10n, len: 4 }))
      return io(vm, Ioctl.IOEVENTFD, ioeventfdArg({ fd: efd, addr: 0x10n, len: 8 }))
    },
  ],
  [
    'IOEVENTFD deassign EBADF',
    'EBADF',
    (vm) =>
      io(
        vm,
        Ioctl.IOEVENTFD,
        ioeventfdArg({ fd: 1000, flags: IoeventfdFlag.DEASSIGN, addr: 0n, len: 4 }),
      ),
  ],
  [
    'IOEVENTFD deassign not an eventfd',
    'EINVAL',
    (vm) =>
      io(
        vm,
        Ioctl.IOEVENTFD,
        ioeventfdArg({ fd: vm.fd, flags: IoeventfdFlag.DEASSIGN, addr: 0n, len: 4 }),
      ),
  ],
  [
    'IOEVENTFD deassign otherwise',
    'OK',
    async (vm) =>
      io(
        vm,
        Ioctl.IOEVENTFD,
        ioeventfdArg({
          fd: await vm.proc.eventfd(0),
          flags: IoeventfdFlag.DEASSIGN,
          addr: 0n,
          len: 0,
        }),
      ),
  ],
  // IRQFD
  ['IRQFD copy fault', 'EFAULT', (vm) => io(vm, Ioctl.IRQFD, new Uint8Array(12))],
  ['IRQFD assign EBADF', 'EBADF', (vm) => io(vm, Ioctl.IRQFD, irqfdArg({ fd: 1000 }))],
  ['IRQFD assign not an eventfd', 'EINVAL', (vm) => io(vm, Ioctl.IRQFD, irqfdArg({ fd: vm.fd }))],
  [
    'IRQFD assign duplicate',
    'EBUSY',
    async (vm) => {
      const efd = await vm.proc.eventfd(0)
      await io(vm, Ioctl.IRQFD, irqfdArg({ fd: efd }))
      return io(vm, Ioctl.IRQFD, irqfdArg({ fd: efd, msi_data: 0x99n }))
    },
  ],
  [
    'IRQFD deassign EBADF',
    'EBADF',
    (vm) => io(vm, Ioctl.IRQFD, irqfdArg({ fd: 1000, flags: IrqfdFlag.DEASSIGN })),
  ],
  [
    'IRQFD deassign not an eventfd',
    'EINVAL',
    (vm) => io(vm, Ioctl.IRQFD, irqfdArg({ fd: vm.fd, flags: IrqfdFlag.DEASSIGN })),
  ],
  [
    'IRQFD deassign otherwise',
    'OK',
    async (vm) =>
      io(vm, Ioctl.IRQFD, irqfdArg({ fd: await vm.proc.eventfd(0), flags: IrqfdFlag.DEASSIGN })),
  ],
  // Unknown command
  ['unknown command with a VM', 'ENOTTY', (vm) => io(vm, ioc(0, 0xa2, 0x14, 0))],
  [
    'unknown command without a VM',
    'EINVAL',
    async (vm) => {
      await pauseAndDestroy(vm)
      return io(vm, ioc(0, 0xa2, 0x14, 0))
    },
  ],
]

export function errnoSuite(backend: ConformanceBackend) {
  describe(`§10.2 per-ioctl errors [${backend.name}]`, () => {
    it.for(ROWS.map((r) => [r[0], r[1], r[2], r[3] ?? []] as const))(
      '§10.2 %s -> $1',
      async ([, expected, run, needs], { skip }) => {
        if (lacks(backend, ...needs)) skip()
        const sys: ConformanceSystem = backend.create()
        const vm = await createVm(sys)
        expect(await errnoOf(run(vm) as Promise<unknown>)).toBe(expected)
      },
    )
  })
}
