// ioeventfd (drivers/virt/acrn/ioeventfd.c; spec §5): guest writes to a registered
// PIO/MMIO address signal an eventfd, handled in the kernel by the VM's `ioeventfd-<vmid>`
// client without a round trip to userspace.
//
// The kernel keeps one list and scans it per write. Here each ioeventfd sits in a bucket
// keyed by (type, start address), in registration order, and in a bucket per eventfd, so
// a write looks at the ioeventfds of its own address only. Within a bucket the order is
// the list order, so "the oldest matching one is signalled" still holds.

import { IoeventfdFlag, IoreqDir, IoreqType } from '../../abi/constants.js'
import { Errno } from '../../abi/errno.js'
import { offsetOf } from '../../abi/layout.js'
import { acrn_ioeventfd } from '../../abi/structs.js'
import type { IoctlArg } from '../../hsm-process.js'
import {
  REQ_ADDRESS,
  REQ_DIRECTION,
  REQ_SIZE,
  REQ_VALUE,
  SLOT_SIZE,
  SLOT_TYPE,
} from '../hypervisor/io.js'
import type { EventfdCtx } from '../kernel/eventfd.js'
import { EventfdFile } from '../kernel/file.js'
import type { SimProcess } from '../kernel/process.js'
import { copyFromUser } from '../kernel/uaccess.js'
import {
  addrKey,
  ioreqClientCreate,
  ioreqClientDestroy,
  type AddrKey,
  type IoreqClient,
} from './ioreq.js'
import type { AcrnVm } from './vm.js'

const ARG_FD = offsetOf(acrn_ioeventfd, 'fd')
const ARG_FLAGS = offsetOf(acrn_ioeventfd, 'flags')
const ARG_ADDR = offsetOf(acrn_ioeventfd, 'addr')
const ARG_LEN = offsetOf(acrn_ioeventfd, 'len')
const ARG_RESERVED = offsetOf(acrn_ioeventfd, 'reserved')
const ARG_DATA = offsetOf(acrn_ioeventfd, 'data')
const U64_MAX = 0xffff_ffff_ffff_ffffn
const TWO_21 = 0x20_0000
const TWO_32 = 0x1_0000_0000

export class Ioeventfd {
  constructor(
    readonly ctx: EventfdCtx,
    readonly type: number,
    readonly addr: bigint,
    readonly length: number,
    readonly wildcard: boolean,
    readonly data: bigint,
    /** Registration order across the VM (the kernel's list order). */
    readonly seq: number,
  ) {
    this.dataLo = Number(data & 0xffff_ffffn)
    this.dataHi = Number(data >> 32n)
  }

  /** `data` in halves, so a write compares without building a bigint. */
  readonly dataLo: number
  readonly dataHi: number
}

/** A VM's ioeventfds, indexed for the write path (by address) and for deassign (by eventfd). */
export class IoeventfdTable {
  private readonly byAddr: [Map<AddrKey, Ioeventfd[]>, Map<AddrKey, Ioeventfd[]>] = [
    new Map(),
    new Map(),
  ]
  private readonly byCtx = new Map<EventfdCtx, Ioeventfd[]>()
  private seq = 0
  size = 0

  bucket(type: number, key: AddrKey): Ioeventfd[] | undefined {
    return this.byAddr[type === IoreqType.PORTIO ? 0 : 1].get(key)
  }

  /** hsm_ioeventfd_is_conflict: same eventfd, address and type, and a wildcard or equal data. */
  conflicts(p: Omit<Ioeventfd, 'seq' | 'dataLo' | 'dataHi'>): boolean {
    const bucket = this.bucket(p.type, addrKey(p.addr))
    return (
      bucket?.some((q) => q.ctx === p.ctx && (q.wildcard || p.wildcard || q.data === p.data)) ??
      false
    )
  }

  /** Append to the tail of the list. */
  add(
    ctx: EventfdCtx,
    type: number,
    addr: bigint,
    length: number,
    wildcard: boolean,
    data: bigint,
  ): Ioeventfd {
    const p = new Ioeventfd(ctx, type, addr, length, wildcard, data, this.seq++)
    const map = this.byAddr[type === IoreqType.PORTIO ? 0 : 1]
    const key = addrKey(addr)
    const bucket = map.get(key)
    if (bucket) bucket.push(p)
    else map.set(key, [p])
    const mine = this.byCtx.get(ctx)
    if (mine) mine.push(p)
    else this.byCtx.set(ctx, [p])
    this.size++
    return p
  }

  /** The first (oldest) ioeventfd on this eventfd. */
  firstOf(ctx: EventfdCtx): Ioeventfd | undefined {
    return this.byCtx.get(ctx)?.[0]
  }

  remove(p: Ioeventfd): void {
    const map = this.byAddr[p.type === IoreqType.PORTIO ? 0 : 1]
    const key = addrKey(p.addr)
    const bucket = map.get(key)!
    bucket.splice(bucket.indexOf(p), 1)
    if (bucket.length === 0) map.delete(key)
    const mine = this.byCtx.get(p.ctx)!
    mine.splice(mine.indexOf(p), 1)
    if (mine.length === 0) this.byCtx.delete(p.ctx)
    this.size--
  }

  /** Every ioeventfd in list order (oldest first). */
  list(): Ioeventfd[] {
    const all: Ioeventfd[] = []
    for (const mine of this.byCtx.values()) all.push(...mine)
    return all.sort((a, b) => a.seq - b.seq)
  }

  clear(): void {
    this.byAddr[0].clear()
    this.byAddr[1].clear()
    this.byCtx.clear()
    this.size = 0
  }
}

/** The first ioeventfd of the bucket that a write of `size` bytes with this value signals. */
function matchWrite(
  bucket: Ioeventfd[],
  size: number,
  valueLo: number,
  valueHi: number,
): Ioeventfd | undefined {
  for (let i = 0; i < bucket.length; i++) {
    const p = bucket[i]!
    if (p.length >= size && (p.wildcard || (p.dataLo === valueLo && p.dataHi === valueHi))) return p
  }
  return undefined
}

/**
 * The ioeventfd client's handler (§5.5), run in its "thread": reads return 0; writes
 * signal the oldest ioeventfd with exactly this start address, a length that covers the
 * access and matching data. Either way the request is then completed by the caller.
 */
function ioeventfdHandler(client: IoreqClient, vcpu: number): number {
  const vm = client.vm
  const dv = vm.ioreqPage!.dv
  const base = vcpu * SLOT_SIZE
  const type = dv.getUint32(base + SLOT_TYPE, true)
  if (dv.getUint32(base + REQ_DIRECTION, true) === IoreqDir.READ) {
    dv.setUint32(base + REQ_VALUE, 0, true)
    if (type === IoreqType.MMIO) dv.setUint32(base + REQ_VALUE + 4, 0, true)
    return 0
  }
  const lo = dv.getUint32(base + REQ_ADDRESS, true)
  const hi = dv.getUint32(base + REQ_ADDRESS + 4, true)
  const key: AddrKey =
    hi < TWO_21 ? hi * TWO_32 + lo : addrKey(dv.getBigUint64(base + REQ_ADDRESS, true))
  const bucket = vm.ioeventfds.bucket(type, key)
  if (bucket === undefined) return 0
  // PIO values are u32, zero-extended; the comparison is 64-bit.
  const valueLo = dv.getUint32(base + REQ_VALUE, true)
  const valueHi = type === IoreqType.MMIO ? dv.getUint32(base + REQ_VALUE + 4, true) : 0
  const p = matchWrite(bucket, dv.getUint32(base + REQ_SIZE, true), valueLo, valueHi)
  if (p !== undefined) p.ctx.signal()
  return 0
}

/** The eventfd behind `fd` of the calling process: -EBADF if not open, -EINVAL if not an eventfd. */
export function eventfdCtxOf(proc: SimProcess, fd: number): EventfdCtx | number {
  const file = fd < 0 ? undefined : proc.file(fd)
  if (!file) return -Errno.EBADF
  return file instanceof EventfdFile ? file.ctx : -Errno.EINVAL
}

function assign(vm: AcrnVm, proc: SimProcess, view: DataView): number {
  const addr = view.getBigUint64(ARG_ADDR, true)
  const len = view.getUint32(ARG_LEN, true)
  if (addr + BigInt(len) > U64_MAX) return -Errno.EINVAL
  if (len !== 1 && len !== 2 && len !== 4 && len !== 8) return -Errno.EINVAL
  // The fd field is read as an int: values of 2^31 and more are negative.
  const ctx = eventfdCtxOf(proc, view.getInt32(ARG_FD, true))
  if (typeof ctx === 'number') return ctx
  const flags = view.getUint32(ARG_FLAGS, true)
  const type = flags & IoeventfdFlag.PIO ? IoreqType.PORTIO : IoreqType.MMIO
  const wildcard = (flags & IoeventfdFlag.DATAMATCH) === 0
  const data = wildcard ? 0n : view.getBigUint64(ARG_DATA, true)
  if (vm.ioeventfds.conflicts({ ctx, type, addr, length: len, wildcard, data }))
    return -Errno.EEXIST
  const client = vm.ioeventfdClient
  if (client) {
    const ret = client.ranges.add(type, addr, addr + BigInt(len) - 1n)
    if (ret < 0) return ret
  }
  vm.ioeventfds.add(ctx, type, addr, len, wildcard, data)
  return 0
}

function release(vm: AcrnVm, p: Ioeventfd): void {
  vm.ioeventfdClient?.ranges.del(p.type, p.addr, p.addr + BigInt(p.length) - 1n)
  vm.ioeventfds.remove(p)
}

function deassign(vm: AcrnVm, proc: SimProcess, view: DataView): number {
  const ctx = eventfdCtxOf(proc, view.getInt32(ARG_FD, true))
  if (typeof ctx === 'number') return ctx
  // Only the eventfd is compared; one entry per call; 0 even when none matched.
  const p = vm.ioeventfds.firstOf(ctx)
  if (p) release(vm, p)
  return 0
}

/** ACRN_IOCTL_IOEVENTFD (§5.2-§5.4). */
export function ioeventfdIoctl(vm: AcrnVm, proc: SimProcess, arg: IoctlArg): number {
  const bytes = copyFromUser(proc.mm, arg, acrn_ioeventfd.size)
  if (typeof bytes === 'number') return bytes
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (view.getUint32(ARG_RESERVED, true) !== 0) return -Errno.EINVAL
  return view.getUint32(ARG_FLAGS, true) & IoeventfdFlag.DEASSIGN
    ? deassign(vm, proc, view)
    : assign(vm, proc, view)
}

/** At VM creation: the ioeventfd client; a failure is ignored (§2.2 step 5). */
export function ioeventfdInit(vm: AcrnVm): void {
  vm.ioeventfds.clear()
  const client = ioreqClientCreate(vm, ioeventfdHandler, `ioeventfd-${vm.vmid}`, false)
  vm.ioeventfdClient = typeof client === 'number' ? null : client
}

/** At VM destroy: the client first, then every ioeventfd (§5.5 teardown). */
export function ioeventfdDeinit(vm: AcrnVm): void {
  if (vm.ioeventfdClient) ioreqClientDestroy(vm.ioeventfdClient)
  vm.ioeventfdClient = null
  vm.ioeventfds.clear()
}
