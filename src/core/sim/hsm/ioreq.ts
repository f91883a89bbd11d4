// I/O request clients and dispatch (drivers/virt/acrn/ioreq.c; spec §4).
//
// Dispatch is the kernel's work item: the hypervisor's upcall queues it on `ioreq_wq`
// (a microtask here; several upcalls before it runs collapse into one run), and it walks
// every VM, newest first, and every PENDING slot below vcpu_num (§4.3). A request that a
// kernel client (the ioeventfd client) takes is handled at once, synchronously, by that
// client's "thread" (§4.5); the default client's userspace waiter is woken through
// ATTACH_IOREQ_CLIENT. The hot path reads and writes the shared page through a DataView
// and an Int32Array (Atomics for `processed`) and allocates nothing.
//
// Client ranges are indexed by (type, start address) instead of the kernel's list: a
// lookup probes at most 8 start addresses (ranges longer than 8 bytes, which HSM itself
// never registers, are kept in a list). The first matching client still wins.

import {
  ACRN_INVALID_VMID,
  ACRN_IO_REQUEST_MAX,
  IoreqDir,
  IoreqState,
  IoreqType,
  PAGE_SIZE,
  VmFlag,
} from '../../abi/constants.js'
import { Errno } from '../../abi/errno.js'
import type { IoctlArg } from '../../hsm-process.js'
import {
  PCI_BUS,
  PCI_DEV,
  PCI_FUNC,
  PCI_REG,
  processedIndex,
  REQ_ADDRESS,
  REQ_DIRECTION,
  REQ_SIZE,
  REQ_VALUE,
  SLOT_KERNEL_HANDLED,
  SLOT_POLLING,
  SLOT_SIZE,
  SLOT_TYPE,
} from '../hypervisor/io.js'
import type { SimProcess, Sleeper } from '../kernel/process.js'
import { IoreqLane } from '../lane.js'
import { peekUser } from '../kernel/uaccess.js'
import type { HsmModule } from './hsm.js'
import type { AcrnVm } from './vm.js'

const CLEARING = 1 << VmFlag.CLEARING_IOREQ
const PCI_CONF_ADDR_PORT = 0xcf8
const PCI_CONF_DATA_PORT = 0xcfc
const PCI_CONF_ENABLE = 0x8000_0000
const TWO_21 = 0x20_0000
const TWO_32 = 0x1_0000_0000
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)
/** Ranges up to this length are indexed by start address. */
const SHORT_RANGE = 8

/** Map key of an address: a number when exact, else the bigint itself. */
export type AddrKey = number | bigint
export const addrKey = (address: bigint): AddrKey =>
  address <= MAX_SAFE ? Number(address) : address

const VCPU_ARG = Array.from({ length: ACRN_IO_REQUEST_MAX }, (_, i) => BigInt(i))

/** The ioreq page as the kernel maps it (the pinned user page, §2.2 step 3). */
export interface KernelIoreqPage {
  readonly pa: number
  readonly dv: DataView
  readonly i32: Int32Array
}

// --- Ranges ---------------------------------------------------------------------------

interface ShortRanges {
  /** How many ranges of each length 1..8 start here. */
  readonly counts: Uint16Array
  /** Bit len-1 set when counts[len-1] > 0. */
  mask: number
}

interface LongRange {
  readonly type: number
  readonly start: bigint
  readonly end: bigint
}

/** A client's I/O ranges (inclusive ends), by type: PORTIO = 0, MMIO = 1. */
export class RangeSet {
  private readonly short: [Map<AddrKey, ShortRanges>, Map<AddrKey, ShortRanges>] = [
    new Map(),
    new Map(),
  ]
  /** Newest first, like the kernel's list. */
  private long: LongRange[] = []
  size = 0

  /** onChange: told after every add, del and clear (a lane's routes follow them). */
  constructor(private readonly onChange?: () => void) {}

  /** Every port some range of this set holds, as bits (port p: bit p % 8 of byte p / 8). */
  markPorts(bits: Uint8Array): void {
    const mark = (from: bigint, to: bigint) => {
      const last = to > 0xffffn ? 0xffff : Number(to)
      for (let p = Number(from); p <= last; p++) bits[p >> 3]! |= 1 << (p & 7)
    }
    for (const [key, r] of this.short[IoreqType.PORTIO]) {
      const len = 32 - Math.clz32(r.mask)
      const start = BigInt(key)
      if (start <= 0xffffn) mark(start, start + BigInt(len) - 1n)
    }
    for (const r of this.long)
      if (r.type === IoreqType.PORTIO && r.start <= 0xffffn) mark(r.start, r.end)
  }

  /** acrn_ioreq_range_add: EINVAL if end < start. */
  add(type: number, start: bigint, end: bigint): number {
    if (end < start) return -Errno.EINVAL
    const len = end - start + 1n
    if ((type === IoreqType.PORTIO || type === IoreqType.MMIO) && len <= BigInt(SHORT_RANGE)) {
      const map = this.short[type]
      const key = addrKey(start)
      let r = map.get(key)
      if (!r) {
        r = { counts: new Uint16Array(SHORT_RANGE), mask: 0 }
        map.set(key, r)
      }
      const i = Number(len) - 1
      r.counts[i]! += 1
      r.mask |= 1 << i
    } else {
      this.long.unshift({ type, start, end })
    }
    this.size++
    this.onChange?.()
    return 0
  }

  /** acrn_ioreq_range_del: drop one range with exactly this type, start and end, if any. */
  del(type: number, start: bigint, end: bigint): void {
    const len = end - start + 1n
    if (
      (type === IoreqType.PORTIO || type === IoreqType.MMIO) &&
      len >= 1n &&
      len <= BigInt(SHORT_RANGE)
    ) {
      const map = this.short[type]
      const key = addrKey(start)
      const r = map.get(key)
      const i = Number(len) - 1
      if (!r || r.counts[i] === 0) return
      r.counts[i]! -= 1
      if (r.counts[i] === 0) r.mask &= ~(1 << i)
      if (r.mask === 0) map.delete(key)
      this.size--
      this.onChange?.()
      return
    }
    const i = this.long.findIndex((r) => r.type === type && r.start === start && r.end === end)
    if (i >= 0) {
      this.long.splice(i, 1)
      this.size--
      this.onChange?.()
    }
  }

  clear(): void {
    this.short[0].clear()
    this.short[1].clear()
    this.long = []
    this.size = 0
    this.onChange?.()
  }

  /** Some range of this type holds [address, address + size - 1] entirely (§4.3 table). */
  contains(type: number, address: number, size: number): boolean {
    if (type !== IoreqType.PORTIO && type !== IoreqType.MMIO) return false
    const map = this.short[type]
    if (map.size > 0) {
      const last = address + size - 1
      const lowest = Math.max(0, last - SHORT_RANGE + 1)
      // A range starting at s covers the access when s <= address and its length reaches `last`.
      for (let s = address; s >= lowest; s--) {
        const r = map.get(s)
        if (r !== undefined && r.mask >>> (last - s) !== 0) return true
      }
    }
    return this.long.length > 0 && this.containsLong(type, BigInt(address), BigInt(size))
  }

  /** The same for addresses beyond 2^53 (no real device lives there). */
  containsBig(type: number, address: bigint, size: bigint): boolean {
    if (type !== IoreqType.PORTIO && type !== IoreqType.MMIO) return false
    const map = this.short[type]
    const last = address + size - 1n
    for (let s = address; s >= 0n && s >= last - BigInt(SHORT_RANGE) + 1n; s--) {
      const r = map.get(addrKey(s))
      if (r !== undefined && r.mask >>> Number(last - s) !== 0) return true
    }
    return this.containsLong(type, address, size)
  }

  private containsLong(type: number, address: bigint, size: bigint): boolean {
    for (const r of this.long) {
      if (r.type === type && r.start <= address && address + size - 1n <= r.end) return true
    }
    return false
  }
}

// --- Clients ---------------------------------------------------------------------------

/** Handles one request of a kernel client; 0, or a negative errno that stops the thread (§4.5). */
export type IoreqHandler = (client: IoreqClient, vcpu: number) => number

interface AttachWaiter extends Sleeper {
  readonly proc: SimProcess
  readonly resolve: (ret: number) => void
}

export class IoreqClient {
  private bits = 0
  destroying = false
  readonly ranges: RangeSet
  /** Userspace threads blocked in ATTACH (default client only). */
  waiters: AttachWaiter[] = []
  /** The default client's lane (lane.ts), while a shimmed program is served through one. */
  lane: IoreqLane | null = null

  constructor(
    readonly vm: AcrnVm,
    readonly name: string,
    readonly isDefault: boolean,
    readonly handler: IoreqHandler | null,
  ) {
    // A kernel client's ranges decide which ports a lane must leave to dispatch.
    this.ranges = new RangeSet(isDefault ? undefined : () => laneRoutesChanged(vm))
  }

  /** ioreqs_map: bit i set while vCPU i's request is dispatched to this client. */
  get pending(): number {
    return this.lane ? this.lane.pending : this.bits
  }

  setPending(vcpu: number): void {
    if (this.lane) this.lane.setPending(vcpu)
    else this.bits |= 1 << vcpu
  }

  clearPending(vcpu: number): void {
    if (this.lane) this.lane.clearPending(vcpu)
    else this.bits &= ~(1 << vcpu)
  }

  /** wake_up on the client's wait queue. */
  wake(): void {
    if (this.isDefault) {
      this.lane?.ring()
      this.wakeWaiters(0)
    } else runKernelClient(this)
  }

  wakeWaiters(ret: number): void {
    if (this.waiters.length === 0) return
    const waiters = this.waiters
    this.waiters = []
    this.lane?.watch(false)
    for (const w of waiters) {
      w.proc.wake(w)
      w.resolve(ret)
    }
  }
}

/**
 * The ports a lane must leave to dispatch: HSM's PCI configuration ports (§4.6) and every
 * port some kernel client's range holds (the first matching client wins, §4.3).
 */
export function laneRoutes(vm: AcrnVm): Uint8Array {
  const bits = new Uint8Array(65536 / 8)
  bits[PCI_CONF_ADDR_PORT >> 3]! |= 1 << (PCI_CONF_ADDR_PORT & 7)
  for (let p = PCI_CONF_DATA_PORT; p < PCI_CONF_DATA_PORT + 4; p++) bits[p >> 3]! |= 1 << (p & 7)
  for (const client of vm.clients) client.ranges.markPorts(bits)
  return bits
}

function laneRoutesChanged(vm: AcrnVm): void {
  const lane = vm.defaultClient?.lane
  if (lane) lane.setRoutes(laneRoutes(vm))
}

/** A kernel client's thread loop (§4.5): lowest pending vCPU first, until none is left. */
function runKernelClient(client: IoreqClient): void {
  const vm = client.vm
  while (client.pending !== 0 && !client.destroying) {
    const bits = client.pending & ((1 << vm.vcpuNum) - 1)
    if (bits === 0) break
    const vcpu = 31 - Math.clz32(bits & -bits)
    // A failing handler leaves its bit set and ends this wake-up.
    if (client.handler!(client, vcpu) < 0) break
    ioreqCompleteThroughClient(client, vcpu)
  }
}

/** acrn_ioreq_client_create. A kernel client goes on the head of the VM's list. */
export function ioreqClientCreate(
  vm: AcrnVm,
  handler: IoreqHandler | null,
  name: string,
  isDefault: boolean,
): IoreqClient | number {
  // A kernel client without a handler cannot be created.
  if (!isDefault && !handler) return -Errno.EINVAL
  const client = new IoreqClient(vm, name, isDefault, handler)
  if (isDefault) vm.defaultClient = client
  else vm.clients.unshift(client)
  return client
}

/**
 * acrn_ioreq_client_destroy (§4.7, §4.8): dispatch pauses globally, waiters see
 * DESTROYING (a blocked ATTACH returns ENODEV), the client goes, and dispatch resumes
 * with one run that rescans every VM. Requests it had taken stay PROCESSING.
 */
export function ioreqClientDestroy(client: IoreqClient): void {
  const vm = client.vm
  const module = vm.module
  module.pauseDispatch()
  client.destroying = true
  client.lane?.turnOff()
  client.wakeWaiters(-Errno.ENODEV)
  if (client.isDefault) {
    if (vm.defaultClient === client) vm.defaultClient = null
  } else {
    const i = vm.clients.indexOf(client)
    if (i >= 0) vm.clients.splice(i, 1)
  }
  client.ranges.clear()
  module.resumeDispatch()
}

// --- Completion (§4.4) -------------------------------------------------------------------

/**
 * Complete slot `vcpu`: read completion_polling first, release-store COMPLETE, then
 * NOTIFY_REQUEST_FINISH unless the hypervisor polls. Returns the hypercall's result.
 */
export function ioreqComplete(vm: AcrnVm, vcpu: number): number {
  const page = vm.ioreqPage
  if (!page) return 0
  const polling = page.dv.getUint32(vcpu * SLOT_SIZE + SLOT_POLLING, true)
  Atomics.store(page.i32, processedIndex(vcpu), IoreqState.COMPLETE)
  if (polling !== 0) return 0
  return vm.module.hcall.notifyRequestFinish(vm.vmidArg, VCPU_ARG[vcpu] ?? BigInt(vcpu))
}

/** Complete through a client: vcpu < vcpu_num (else EINVAL), clear its bit, then §4.4. */
export function ioreqCompleteThroughClient(client: IoreqClient, vcpu: number): number {
  if (vcpu >= client.vm.vcpuNum) return -Errno.EINVAL
  client.clearPending(vcpu)
  return ioreqComplete(client.vm, vcpu)
}

// --- Dispatch (§4.3) ---------------------------------------------------------------------

/**
 * handle_cf8cfc (§4.6): port 0xCF8 and, with the enable bit clear, 0xCFC-0xCFF are
 * consumed here and completed; with the enable bit set, a data-port access is rewritten
 * in place into a PCICFG request and dispatch carries on with it.
 */
function handleCf8Cfc(vm: AcrnVm, dv: DataView, base: number, vcpu: number): boolean {
  if (dv.getUint32(base + SLOT_TYPE, true) !== IoreqType.PORTIO) return false
  if (dv.getUint32(base + REQ_ADDRESS + 4, true) !== 0) return false
  const port = dv.getUint32(base + REQ_ADDRESS, true)
  const write = dv.getUint32(base + REQ_DIRECTION, true) === IoreqDir.WRITE
  if (port === PCI_CONF_ADDR_PORT) {
    // Any width is handled (the kernel only warns when it is not 4 bytes).
    if (write) vm.pciConfAddr = dv.getUint32(base + REQ_VALUE, true)
    else dv.setUint32(base + REQ_VALUE, vm.pciConfAddr >>> 0, true)
    ioreqComplete(vm, vcpu)
    return true
  }
  if (port < PCI_CONF_DATA_PORT || port > PCI_CONF_DATA_PORT + 3) return false
  const a = vm.pciConfAddr >>> 0
  if ((a & PCI_CONF_ENABLE) === 0) {
    if (!write) dv.setUint32(base + REQ_VALUE, 0xffff_ffff, true)
    ioreqComplete(vm, vcpu)
    return true
  }
  dv.setUint32(base + SLOT_TYPE, IoreqType.PCICFG, true)
  dv.setUint32(base + PCI_BUS, (a >>> 16) & 0xff, true)
  dv.setUint32(base + PCI_DEV, (a >>> 11) & 0x1f, true)
  dv.setUint32(base + PCI_FUNC, (a >>> 8) & 0x7, true)
  // Bits 27:24 of the address select the extended register page (reg bits 11:8).
  dv.setUint32(
    base + PCI_REG,
    (a & 0xfc) + ((a >>> 16) & 0xf00) + (port - PCI_CONF_DATA_PORT),
    true,
  )
  return false
}

/** The client of a PENDING request: the first kernel client with a range holding it, else the default. */
function findClient(vm: AcrnVm, dv: DataView, base: number): IoreqClient | null {
  const clients = vm.clients
  if (clients.length > 0) {
    const type = dv.getUint32(base + SLOT_TYPE, true)
    if (type !== IoreqType.PCICFG) {
      const lo = dv.getUint32(base + REQ_ADDRESS, true)
      const hi = dv.getUint32(base + REQ_ADDRESS + 4, true)
      const size = dv.getUint32(base + REQ_SIZE, true)
      for (let c = 0; c < clients.length; c++) {
        const client = clients[c]!
        if (client.ranges.size === 0) continue
        const hit =
          hi < TWO_21 && dv.getUint32(base + REQ_SIZE + 4, true) === 0
            ? client.ranges.contains(type, hi * TWO_32 + lo, size)
            : client.ranges.containsBig(
                type,
                dv.getBigUint64(base + REQ_ADDRESS, true),
                dv.getBigUint64(base + REQ_SIZE, true),
              )
        if (hit) return client
      }
    }
  }
  return vm.defaultClient
}

/** The dispatch work item: every VM (newest first), every PENDING slot below vcpu_num. */
export function ioreqDispatch(module: HsmModule): void {
  const vms = module.vmList
  for (let v = 0; v < vms.length; v++) {
    const vm = vms[v]!
    const page = vm.ioreqPage
    // A VM without a buffer ends the walk (break, not continue).
    if (!page) break
    const dv = page.dv
    const i32 = page.i32
    const slots = Math.min(vm.vcpuNum, ACRN_IO_REQUEST_MAX)
    for (let vcpu = 0; vcpu < slots; vcpu++) {
      if (Atomics.load(i32, processedIndex(vcpu)) !== IoreqState.PENDING) continue
      if ((vm.flags & CLEARING) !== 0) {
        ioreqComplete(vm, vcpu)
        continue
      }
      const base = vcpu * SLOT_SIZE
      if (handleCf8Cfc(vm, dv, base, vcpu)) continue
      const client = findClient(vm, dv, base)
      // No client at all: this slot and the later ones of this VM wait for the next run.
      if (!client) break
      dv.setUint32(base + SLOT_KERNEL_HANDLED, client.isDefault ? 0 : 1, true)
      Atomics.store(i32, processedIndex(vcpu), IoreqState.PROCESSING)
      client.setPending(vcpu)
      client.wake()
    }
  }
}

// --- Userspace ioctls (§4.7) -------------------------------------------------------------

/** CREATE_IOREQ_CLIENT: one default client; EEXIST for a second. No rescan. */
export function createIoreqClient(vm: AcrnVm): number {
  if (vm.defaultClient) return -Errno.EEXIST
  const client = ioreqClientCreate(vm, null, 'acrndm', true)
  // Allocation failure is reported as EINVAL by the kernel.
  return typeof client === 'number' ? -Errno.EINVAL : 0
}

/** ATTACH_IOREQ_CLIENT: wait until the default client has any pending bit (§4.7). */
export function attachIoreqClient(vm: AcrnVm, proc: SimProcess): number | Promise<number> {
  const client = vm.defaultClient
  if (!client || client.destroying) return -Errno.ENODEV
  if (client.pending !== 0) return 0
  return new Promise<number>((resolve) => {
    const waiter: AttachWaiter = {
      proc,
      resolve,
      // A signal ends the wait with 0: the interruption status is ignored.
      interrupt: () => {
        const i = client.waiters.indexOf(waiter)
        if (i >= 0) client.waiters.splice(i, 1)
        if (client.waiters.length === 0) client.lane?.watch(false)
        resolve(0)
      },
    }
    client.waiters.push(waiter)
    proc.sleep(waiter)
    // A request the lane dispatches wakes this waiter too; one dispatched before it
    // watched is seen here (the vCPU thread sets the bit, then reads the watch).
    if (client.lane) {
      client.lane.watch(true)
      if (client.pending !== 0) client.wakeWaiters(0)
    }
  })
}

/**
 * NOTIFY_REQUEST_FINISH (§4.7): reserved must be 0; vmid is ignored; vcpu is truncated
 * to 16 bits; no default client is a silent no-op; the slot is completed whatever its
 * state and whether or not its bit was set.
 */
export function notifyRequestFinish(vm: AcrnVm, proc: SimProcess, arg: IoctlArg): number {
  const notify = peekUser(proc.mm, arg, 8)
  if (typeof notify === 'number') return notify
  if ((notify[2]! | notify[3]!) !== 0) return -Errno.EINVAL
  const vcpu = notify[4]! | (notify[5]! << 8)
  const client = vm.defaultClient
  if (!client) return 0
  return ioreqCompleteThroughClient(client, vcpu)
}

/**
 * A shimmed program offers the VM's default client a lane (lane.ts; not a kernel ioctl:
 * the shim's own op). The lane when its vCPUs' port I/O reaches the client through it
 * from now on; else -errno and nothing changes: ENODEV (no VM or no default client), EEXIST (it has
 * one), EOPNOTSUPP (the VM polls for completion, or its vCPUs do not execute on an engine
 * that serves lanes), EINVAL (not a lane page).
 */
export function ioreqLaneAttach(vm: AcrnVm, bytes: Uint8Array): IoreqLane | number {
  const client = vm.defaultClient
  if (vm.vmid === ACRN_INVALID_VMID || !client || client.destroying) return -Errno.ENODEV
  if (client.lane) return -Errno.EEXIST
  const hv = vm.module.hv
  const hvVm = hv.userVm(vm.vmid)
  const engine = hv.cpu.engine
  if (!hvVm || hvVm.polling || !engine?.lanes) return -Errno.EOPNOTSUPP
  if (IoreqLane.invalid(bytes)) return -Errno.EINVAL
  const lane = new IoreqLane(bytes, engine.lanes)
  lane.setRoutes(laneRoutes(vm))
  lane.onRang = () => {
    if (client.pending !== 0) client.wakeWaiters(0)
  }
  lane.turnOn(vm.vcpuNum, client.pending)
  client.lane = lane
  // ATTACH calls that came over the ring before the lane was on wait for its requests too.
  lane.watch(client.waiters.length > 0)
  hvVm.lane = lane
  hvVm.execution?.laneAttached()
  return lane
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const kernelClientsBusy = (vm: AcrnVm) => vm.clients.some((c) => c.pending !== 0)

/** CLEAR_VM_IOREQ (§4.7): always 0. */
export function clearVmIoreq(vm: AcrnVm): number | Promise<number> {
  vm.flags |= CLEARING
  const lane = vm.defaultClient?.lane
  lane?.setClearing(true)
  const finish = () => {
    const client = vm.defaultClient
    if (client) {
      for (let vcpu = 0; vcpu < ACRN_IO_REQUEST_MAX; vcpu++) {
        // Bits >= vcpu_num would fail with EINVAL; the result is ignored.
        if (client.pending & (1 << vcpu)) ioreqCompleteThroughClient(client, vcpu)
      }
    }
    vm.flags &= ~CLEARING
    lane?.setClearing(false)
    return 0
  }
  if (!kernelClientsBusy(vm)) return finish()
  // Give kernel clients up to ten 10 ms naps to drain, then carry on regardless.
  return (async () => {
    for (let i = 0; i < 10 && kernelClientsBusy(vm); i++) await sleep(10)
    return finish()
  })()
}

/** DESTROY_IOREQ_CLIENT: destroy the default client if there is one; always 0. */
export function destroyIoreqClient(vm: AcrnVm): number {
  if (vm.defaultClient) ioreqClientDestroy(vm.defaultClient)
  return 0
}

// --- Buffer set-up and teardown (§2.2 step 3, §2.3 step 6) ----------------------------------

/** acrn_ioreq_init: pin the page holding `bufAddress` and hand it to the hypervisor. */
export function ioreqInit(vm: AcrnVm, proc: SimProcess, bufAddress: bigint): number {
  if (vm.ioreqPage) return -Errno.EEXIST
  if (bufAddress > MAX_SAFE) return -Errno.EFAULT
  const pinned = proc.mm.pinPages(Number(bufAddress), 1)
  if (!pinned) return -Errno.EFAULT
  const pa = pinned[0]!
  const memory = vm.module.hv.memory
  // HC_SET_IOREQ_BUFFER takes the address of an 8-byte struct holding the page's address.
  const holder = memory.kzalloc(8)
  new DataView(holder.bytes.buffer).setBigUint64(0, BigInt(pa), true)
  const ret = vm.module.hcall.setIoreqBuffer(vm.vmidArg, holder.pa)
  memory.kfree(holder.pa)
  if (ret < 0) {
    memory.unpin(pinned)
    return ret
  }
  const backing = memory.resolve(pa, PAGE_SIZE)!
  vm.ioreqPage = {
    pa,
    dv: new DataView(backing.buffer, backing.byteOffset, PAGE_SIZE),
    i32: new Int32Array(backing.buffer, backing.byteOffset, PAGE_SIZE / 4),
  }
  return 0
}

/**
 * acrn_ioreq_deinit: kernel clients in list order, then the default client; unpin the
 * page (not for a VM orphaned at release, whose guest may still fill it).
 */
export function ioreqDeinit(vm: AcrnVm, unpin = true): void {
  for (const client of [...vm.clients]) ioreqClientDestroy(client)
  if (vm.defaultClient) ioreqClientDestroy(vm.defaultClient)
  if (unpin && vm.ioreqPage) vm.module.hv.memory.unpin([vm.ioreqPage.pa])
  vm.ioreqPage = null
}
