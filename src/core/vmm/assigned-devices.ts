// Devices given to a VM: pass-through PCI devices (ASSIGN/DEASSIGN_PCIDEV) and their
// interrupts (SET/RESET_PTDEV_INTR), MMIO devices (ASSIGN/DEASSIGN_MMIODEV) and devices
// the hypervisor emulates (CREATE/DESTROY_VDEV). The device models hsmd itself serves as
// the default ioreq client are in devices/.

import { Ioctl } from '../abi/ioctls.js'
import { encode } from '../abi/layout.js'
import * as S from '../abi/structs.js'
import { ConflictError, UsageError } from '../errors.js'
import type { HsmdVms } from './owners/hsmd.js'
import type { HostPciDevice } from './platform.js'
import type { PtdevSpec } from './spec.js'

export interface PtdevInfo extends PtdevSpec {
  intr?: { type: 'intx' | 'msi' | 'msix'; virtPin: number; physPin: number; picPin: boolean }
}

export interface MmiodevInfo {
  devName: string
  res: { gpa: bigint; hpa: bigint; size: bigint; memType: bigint }[]
}

export interface VdevInfo {
  vendor: number
  device: number
  legacyId: number
  slot: bigint
  ioAddr: number[]
  ioSize: number[]
}

/** The host's PCI device at `bdf`, as the platform's inventory has it. */
export async function hostDevice(hsmd: HsmdVms, bdf: number): Promise<HostPciDevice | undefined> {
  return (await hsmd.platform.inventory()).pci.find((d) => d.bdf === bdf)
}

function pcidev(ptdev: PtdevSpec, host: HostPciDevice | undefined): Uint8Array {
  const bar = new Array<number>(6).fill(0)
  for (const b of host?.bars ?? []) {
    // >>> 0: a BAR at or above 2 GiB must stay an unsigned u32, not a negative int32
    bar[b.index] =
      (Number(b.base & 0xffff_ffffn) | (b.kind === 'io' ? 1 : b.kind === 'mem64' ? 4 : 0)) >>> 0
    if (b.kind === 'mem64' && b.index < 5) bar[b.index + 1] = Number(b.base >> 32n)
  }
  return encode(S.acrn_pcidev, {
    type: ptdev.quirk ? 1 : 0,
    virt_bdf: ptdev.virt,
    phys_bdf: ptdev.phys,
    intr_line: host?.intxGsi ?? 0,
    intr_pin: host?.intxPin ?? 0,
    bar,
  })
}

export async function ptdevAssign(
  hsmd: HsmdVms,
  name: string,
  ptdev: PtdevSpec,
): Promise<PtdevInfo> {
  const vm = hsmd.get(name)
  if (vm.ptdevs.some((p) => p.phys === ptdev.phys)) {
    throw new ConflictError(`that device is already assigned to '${name}'`)
  }
  await hsmd.ioctl(vm, Ioctl.ASSIGN_PCIDEV, pcidev(ptdev, await hostDevice(hsmd, ptdev.phys)))
  const info: PtdevInfo = { ...ptdev }
  vm.ptdevs.push(info)
  hsmd.save(vm)
  hsmd.events.ptdev(vm, true, info)
  return info
}

export async function ptdevDeassign(hsmd: HsmdVms, name: string, phys: number): Promise<PtdevInfo> {
  const vm = hsmd.get(name)
  const known = vm.ptdevs.find((p) => p.phys === phys)
  const ptdev = known ?? { phys, virt: phys, quirk: false }
  await hsmd.ioctl(vm, Ioctl.DEASSIGN_PCIDEV, pcidev(ptdev, await hostDevice(hsmd, phys)))
  vm.ptdevs = vm.ptdevs.filter((p) => p.phys !== phys)
  hsmd.save(vm)
  hsmd.events.ptdev(vm, false, ptdev)
  return ptdev
}

export async function ptdevIntr(
  hsmd: HsmdVms,
  name: string,
  set: boolean,
  intr: {
    type: 'intx' | 'msi' | 'msix'
    phys: number
    virt?: number
    virtPin?: number
    physPin?: number
    picPin?: boolean
  },
): Promise<PtdevInfo | { phys: number }> {
  const vm = hsmd.get(name)
  const ptdev = vm.ptdevs.find((p) => p.phys === intr.phys)
  const virt = intr.virt ?? ptdev?.virt ?? intr.phys
  const host = await hostDevice(hsmd, intr.phys)
  const physPin = intr.physPin ?? host?.intxGsi ?? 0
  const irq = encode(S.acrn_ptdev_irq, {
    type: { intx: 0, msi: 1, msix: 2 }[intr.type],
    virt_bdf: virt,
    phys_bdf: intr.phys,
    intx: { virt_pin: intr.virtPin ?? 0, phys_pin: physPin, is_pic_pin: intr.picPin ? 1 : 0 },
  })
  await hsmd.ioctl(vm, set ? Ioctl.SET_PTDEV_INTR : Ioctl.RESET_PTDEV_INTR, irq)
  if (ptdev) {
    if (set)
      ptdev.intr = {
        type: intr.type,
        virtPin: intr.virtPin ?? 0,
        physPin,
        picPin: intr.picPin ?? false,
      }
    else delete ptdev.intr
    hsmd.save(vm)
    return ptdev
  }
  return { phys: intr.phys }
}

export function ptdevList(hsmd: HsmdVms, name?: string) {
  const vms = name === undefined ? hsmd.all() : [hsmd.get(name)]
  return vms.flatMap((vm) => vm.ptdevs.map((p) => ({ vm: vm.name, ...p })))
}

export async function mmiodev(
  hsmd: HsmdVms,
  name: string,
  assign: boolean,
  dev: MmiodevInfo,
): Promise<MmiodevInfo> {
  const vm = hsmd.get(name)
  const nameBytes = new TextEncoder().encode(dev.devName)
  if (nameBytes.byteLength > 8) {
    throw new UsageError(`'${dev.devName}' is longer than 8 bytes`, {
      flag: '--dev-name',
      hint: 'acrn_mmiodev.name holds 8 bytes',
    })
  }
  if (dev.res.length < 1 || dev.res.length > 3) {
    throw new UsageError('an MMIO device has 1 to 3 resources', { flag: '--res' })
  }
  const bytes = encode(S.acrn_mmiodev, {
    name: nameBytes,
    res: dev.res.map((r) => ({
      user_vm_pa: r.gpa,
      service_vm_pa: r.hpa,
      size: r.size,
      mem_type: r.memType,
    })),
  })
  await hsmd.ioctl(vm, assign ? Ioctl.ASSIGN_MMIODEV : Ioctl.DEASSIGN_MMIODEV, bytes)
  if (assign) vm.mmiodevs.push(dev)
  else vm.mmiodevs = vm.mmiodevs.filter((m) => m.devName !== dev.devName)
  hsmd.save(vm)
  hsmd.events.mmiodev(vm, assign, dev)
  return dev
}

export async function vdev(
  hsmd: HsmdVms,
  name: string,
  create: boolean,
  dev: VdevInfo & { args?: Uint8Array },
): Promise<VdevInfo> {
  const vm = hsmd.get(name)
  const bytes = encode(S.acrn_vdev, {
    id: { fields: { vendor: dev.vendor, device: dev.device, legacy_id: dev.legacyId } },
    slot: dev.slot,
    io_addr: dev.ioAddr,
    io_size: dev.ioSize,
    ...(dev.args ? { args: dev.args } : {}),
  })
  await hsmd.ioctl(vm, create ? Ioctl.CREATE_VDEV : Ioctl.DESTROY_VDEV, bytes)
  const { args: _args, ...info } = dev
  if (create) vm.vdevs.push(info)
  else
    vm.vdevs = vm.vdevs.filter(
      (v) => !(v.slot === dev.slot && v.vendor === dev.vendor && v.device === dev.device),
    )
  hsmd.save(vm)
  hsmd.events.vdev(vm, create, info)
  return info
}
