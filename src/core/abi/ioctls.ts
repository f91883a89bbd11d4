// The 27 ioctl requests of /dev/acrn_hsm, each computed the way <asm-generic/ioctl.h>
// builds it: dir<<30 | size<<16 | type<<8 | nr (spec §10.1). Nothing here is a
// hard-coded request number; the conformance test compares every one with the header.

import { ACRN_IOCTL_TYPE } from './constants.js'
import type { Layout } from './layout.js'
import * as S from './structs.js'

/** Direction bits of an ioctl request, seen from userspace: WRITE = user writes to the kernel. */
export const IocDir = { NONE: 0, WRITE: 1, READ: 2 } as const

const IOC_NRBITS = 8
const IOC_TYPEBITS = 8
const IOC_SIZEBITS = 14
const IOC_NRSHIFT = 0
const IOC_TYPESHIFT = IOC_NRSHIFT + IOC_NRBITS
const IOC_SIZESHIFT = IOC_TYPESHIFT + IOC_TYPEBITS
const IOC_DIRSHIFT = IOC_SIZESHIFT + IOC_SIZEBITS

/** `_IOC(dir, type, nr, size)` as an unsigned 32-bit number. */
export function ioc(dir: number, type: number, nr: number, size: number): number {
  if (dir < 0 || dir > 3) throw new RangeError(`ioctl dir ${dir} is not 0..3`)
  if (type < 0 || type >= 1 << IOC_TYPEBITS)
    throw new RangeError(`ioctl type ${type} is not 8 bits`)
  if (nr < 0 || nr >= 1 << IOC_NRBITS) throw new RangeError(`ioctl nr ${nr} is not 8 bits`)
  if (size < 0 || size >= 1 << IOC_SIZEBITS)
    throw new RangeError(`ioctl size ${size} is not 14 bits`)
  return (
    ((dir << IOC_DIRSHIFT) |
      (size << IOC_SIZESHIFT) |
      (type << IOC_TYPESHIFT) |
      (nr << IOC_NRSHIFT)) >>>
    0
  )
}

/** Split a request number into its parts (the inverse of `ioc`). */
export function iocDecode(request: number) {
  return {
    dir: (request >>> IOC_DIRSHIFT) & 0x3,
    size: (request >>> IOC_SIZESHIFT) & ((1 << IOC_SIZEBITS) - 1),
    type: (request >>> IOC_TYPESHIFT) & ((1 << IOC_TYPEBITS) - 1),
    nr: (request >>> IOC_NRSHIFT) & ((1 << IOC_NRBITS) - 1),
  }
}

export type IoctlDirName = 'none' | 'w' | 'r' | 'rw'
/**
 * How the argument travels: a pointer to a struct (or to a u64 buffer), a plain value
 * passed in place of the pointer, or nothing (the argument is ignored).
 */
export type IoctlArgKind = 'struct' | 'value' | 'none'

export interface IoctlInfo {
  /** Name without the ACRN_IOCTL_ prefix, e.g. CREATE_VM. */
  readonly name: string
  readonly nr: number
  readonly dir: IoctlDirName
  /** The size encoded in the request (the declared argument type's size). */
  readonly size: number
  readonly request: number
  readonly kind: IoctlArgKind
  /** C type of the argument: a struct name, `u64*`, a value type, or null. */
  readonly arg: string | null
  /** The struct layout for struct arguments. */
  readonly layout: Layout | undefined
  /**
   * Bytes of user memory the kernel reads or writes through the pointer; differs from
   * `size` only for PM_GET_CPU_STATE, which writes up to 48 bytes back (§7.8).
   */
  readonly bufferSize: number
}

const DIR_BITS: Readonly<Record<IoctlDirName, number>> = {
  none: IocDir.NONE,
  w: IocDir.WRITE,
  r: IocDir.READ,
  rw: IocDir.READ | IocDir.WRITE,
}

function structIoctl(name: string, nr: number, dir: IoctlDirName, layout: Layout): IoctlInfo {
  return {
    name,
    nr,
    dir,
    size: layout.size,
    request: ioc(DIR_BITS[dir], ACRN_IOCTL_TYPE, nr, layout.size),
    kind: 'struct',
    arg: layout.name,
    layout,
    bufferSize: layout.size,
  }
}

function noArgIoctl(name: string, nr: number): IoctlInfo {
  return {
    name,
    nr,
    dir: 'none',
    size: 0,
    request: ioc(IocDir.NONE, ACRN_IOCTL_TYPE, nr, 0),
    kind: 'none',
    arg: null,
    layout: undefined,
    bufferSize: 0,
  }
}

/** `_IOW(type, nr, u64)` whose argument is the value itself, not a pointer (§7.1, §7.3). */
function valueIoctl(name: string, nr: number, arg: string): IoctlInfo {
  return {
    name,
    nr,
    dir: 'w',
    size: 8,
    request: ioc(IocDir.WRITE, ACRN_IOCTL_TYPE, nr, 8),
    kind: 'value',
    arg,
    layout: undefined,
    bufferSize: 0,
  }
}

/** Every ioctl, in header order. */
export const IOCTLS: readonly IoctlInfo[] = [
  structIoctl('CREATE_VM', 0x10, 'rw', S.acrn_vm_creation),
  noArgIoctl('DESTROY_VM', 0x11),
  noArgIoctl('START_VM', 0x12),
  noArgIoctl('PAUSE_VM', 0x13),
  noArgIoctl('RESET_VM', 0x15),
  structIoctl('SET_VCPU_REGS', 0x16, 'w', S.acrn_vcpu_regs),
  structIoctl('INJECT_MSI', 0x23, 'w', S.acrn_msi_entry),
  valueIoctl('VM_INTR_MONITOR', 0x24, 'unsigned long'),
  valueIoctl('SET_IRQLINE', 0x25, 'u64'),
  structIoctl('NOTIFY_REQUEST_FINISH', 0x31, 'w', S.acrn_ioreq_notify),
  noArgIoctl('CREATE_IOREQ_CLIENT', 0x32),
  noArgIoctl('ATTACH_IOREQ_CLIENT', 0x33),
  noArgIoctl('DESTROY_IOREQ_CLIENT', 0x34),
  noArgIoctl('CLEAR_VM_IOREQ', 0x35),
  structIoctl('SET_MEMSEG', 0x41, 'w', S.acrn_vm_memmap),
  structIoctl('UNSET_MEMSEG', 0x42, 'w', S.acrn_vm_memmap),
  structIoctl('SET_PTDEV_INTR', 0x53, 'w', S.acrn_ptdev_irq),
  structIoctl('RESET_PTDEV_INTR', 0x54, 'w', S.acrn_ptdev_irq),
  structIoctl('ASSIGN_PCIDEV', 0x55, 'w', S.acrn_pcidev),
  structIoctl('DEASSIGN_PCIDEV', 0x56, 'w', S.acrn_pcidev),
  structIoctl('ASSIGN_MMIODEV', 0x57, 'w', S.acrn_mmiodev),
  structIoctl('DEASSIGN_MMIODEV', 0x58, 'w', S.acrn_mmiodev),
  structIoctl('CREATE_VDEV', 0x59, 'w', S.acrn_vdev),
  structIoctl('DESTROY_VDEV', 0x5a, 'w', S.acrn_vdev),
  {
    // Declared _IOWR(__u64): reads the u64 cmd, writes back 8, 48 or 32 bytes (§7.8).
    name: 'PM_GET_CPU_STATE',
    nr: 0x60,
    dir: 'rw',
    size: 8,
    request: ioc(IocDir.READ | IocDir.WRITE, ACRN_IOCTL_TYPE, 0x60, 8),
    kind: 'struct',
    arg: 'u64*',
    layout: undefined,
    bufferSize: S.acrn_pstate_data.size,
  },
  structIoctl('IOEVENTFD', 0x70, 'w', S.acrn_ioeventfd),
  structIoctl('IRQFD', 0x71, 'w', S.acrn_irqfd),
]

const BY_REQUEST = new Map(IOCTLS.map((i) => [i.request, i]))
const BY_NAME = new Map(IOCTLS.map((i) => [i.name, i]))

/** The ioctl with exactly this 32-bit request (direction and size included, §1.6). */
export function ioctlByRequest(request: number): IoctlInfo | undefined {
  return BY_REQUEST.get(request >>> 0)
}

/** Look up by name, with or without the ACRN_IOCTL_ prefix, any case. */
export function ioctlByName(name: string): IoctlInfo | undefined {
  return BY_NAME.get(name.toUpperCase().replace(/^ACRN_IOCTL_/, ''))
}

function requestOf(name: string): number {
  const info = BY_NAME.get(name)
  if (!info) throw new Error(`no ioctl ${name}`)
  return info.request
}

/** Request numbers by name, for readable call sites: `proc.ioctl(fd, Ioctl.CREATE_VM, buf)`. */
export const Ioctl = {
  CREATE_VM: requestOf('CREATE_VM'),
  DESTROY_VM: requestOf('DESTROY_VM'),
  START_VM: requestOf('START_VM'),
  PAUSE_VM: requestOf('PAUSE_VM'),
  RESET_VM: requestOf('RESET_VM'),
  SET_VCPU_REGS: requestOf('SET_VCPU_REGS'),
  INJECT_MSI: requestOf('INJECT_MSI'),
  VM_INTR_MONITOR: requestOf('VM_INTR_MONITOR'),
  SET_IRQLINE: requestOf('SET_IRQLINE'),
  NOTIFY_REQUEST_FINISH: requestOf('NOTIFY_REQUEST_FINISH'),
  CREATE_IOREQ_CLIENT: requestOf('CREATE_IOREQ_CLIENT'),
  ATTACH_IOREQ_CLIENT: requestOf('ATTACH_IOREQ_CLIENT'),
  DESTROY_IOREQ_CLIENT: requestOf('DESTROY_IOREQ_CLIENT'),
  CLEAR_VM_IOREQ: requestOf('CLEAR_VM_IOREQ'),
  SET_MEMSEG: requestOf('SET_MEMSEG'),
  UNSET_MEMSEG: requestOf('UNSET_MEMSEG'),
  SET_PTDEV_INTR: requestOf('SET_PTDEV_INTR'),
  RESET_PTDEV_INTR: requestOf('RESET_PTDEV_INTR'),
  ASSIGN_PCIDEV: requestOf('ASSIGN_PCIDEV'),
  DEASSIGN_PCIDEV: requestOf('DEASSIGN_PCIDEV'),
  ASSIGN_MMIODEV: requestOf('ASSIGN_MMIODEV'),
  DEASSIGN_MMIODEV: requestOf('DEASSIGN_MMIODEV'),
  CREATE_VDEV: requestOf('CREATE_VDEV'),
  DESTROY_VDEV: requestOf('DESTROY_VDEV'),
  PM_GET_CPU_STATE: requestOf('PM_GET_CPU_STATE'),
  IOEVENTFD: requestOf('IOEVENTFD'),
  IRQFD: requestOf('IRQFD'),
} as const

/** Render a request number as the kernel headers print it: 0xc030a210. */
export function formatRequest(request: number): string {
  return `0x${(request >>> 0).toString(16).padStart(8, '0')}`
}
