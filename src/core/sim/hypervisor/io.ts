// I/O requests on the hypervisor side (§4.1, §9.3, A.3, A.4): a vCPU's trapped access
// becomes a request in its slot of the VM's ioreq page (FREE -> PENDING) and raises the
// upcall; completion (NOTIFY_REQUEST_FINISH, or the vCPU polling the state in polling
// mode) copies a read's value back to the guest, sets the slot FREE and resumes the vCPU.
//
// The page is the process's own memory (a SharedArrayBuffer); `processed` changes go
// through Atomics. Filling a slot and completing it touch only the DataView and the
// Int32Array of the page: no allocation besides the promise the caller awaits.

import { performance } from 'node:perf_hooks'
import {
  ACCESS_SIZES,
  accessSizesText,
  IoreqDir,
  IoreqState,
  IoreqType,
  PAGE_SIZE,
} from '../../abi/constants.js'
import { offsetOf } from '../../abi/layout.js'
import { acrn_io_request } from '../../abi/structs.js'
import type { Hypervisor } from './hypervisor.js'
import { eptAllows } from './ept.js'
import type { HvVcpu, HvVm, IoreqPage } from './vm.js'

// Offsets inside a 256-byte slot (§4.1), from the UAPI layout. PIO, MMIO and PCI requests
// share direction, size and value offsets; the PIO/MMIO address is at the same place too.
const io = (member: string) => offsetOf(acrn_io_request, member)
export const SLOT_SIZE = acrn_io_request.size
export const SLOT_TYPE = io('type')
export const SLOT_POLLING = io('completion_polling')
export const SLOT_REQS = io('reqs')
export const REQ_DIRECTION = io('reqs.mmio_request.direction')
export const REQ_ADDRESS = io('reqs.mmio_request.address')
export const REQ_SIZE = io('reqs.mmio_request.size')
export const REQ_VALUE = io('reqs.mmio_request.value')
export const PCI_BUS = io('reqs.pci_request.bus')
export const PCI_DEV = io('reqs.pci_request.dev')
export const PCI_FUNC = io('reqs.pci_request.func')
export const PCI_REG = io('reqs.pci_request.reg')
export const SLOT_KERNEL_HANDLED = io('kernel_handled')
export const SLOT_PROCESSED = io('processed')
/** Index of slot i's `processed` in an Int32Array over the page. */
export const processedIndex = (slot: number) => (slot * SLOT_SIZE + SLOT_PROCESSED) >> 2

const TWO_32 = 0x1_0000_0000
const SIZE_MASK32 = [0, 0xff, 0xffff, 0, 0xffffffff] as const
const ZERO = 0n

export type GuestAccessType = 'pio' | 'mmio'
export type GuestAccessDir = 'read' | 'write'

/** One trapped access of a vCPU (`platform.guestAccess`). */
export interface GuestAccess {
  readonly vmid: number
  readonly vcpu: number
  readonly type: GuestAccessType
  readonly dir: GuestAccessDir
  /** Port (0..0xFFFF) or guest-physical address. */
  readonly addr: bigint | number
  /** 1, 2 or 4 bytes for PIO; 1, 2, 4 or 8 for MMIO. */
  readonly size: number
  /** The value written; ignored for reads. */
  readonly value?: bigint | number
}

export type GuestAccessFailure = 'not-running' | 'no-vcpu' | 'busy' | 'invalid' | 'discarded'

/** Why a guest access could not be made, or was dropped before it completed. */
export class GuestAccessError extends Error {
  constructor(
    readonly reason: GuestAccessFailure,
    message: string,
  ) {
    super(message)
    this.name = 'GuestAccessError'
  }
}

function setU64(dv: DataView, offset: number, value: bigint | number): void {
  if (typeof value === 'bigint') {
    dv.setBigUint64(offset, BigInt.asUintN(64, value), true)
  } else {
    dv.setUint32(offset, (value % TWO_32) >>> 0, true)
    dv.setUint32(offset + 4, Math.floor(value / TWO_32) >>> 0, true)
  }
}

function maskValue(value: bigint | number, size: number): bigint | number {
  if (typeof value === 'bigint') return BigInt.asUintN(size * 8, value)
  if (size === 8) return value
  return ((value % TWO_32) >>> 0) & SIZE_MASK32[size as 1 | 2 | 4]
}

/**
 * Told of every request as it completes, before its slot goes FREE: the slot bytes still
 * hold what the client saw (type, possibly rewritten to PCICFG, kernel_handled, value).
 * For tracing; it must not change state, and it is called with no allocation. A request
 * the lane completed (lane.ts) comes a few ms later, from the engine's log: `lane` then
 * says when it went PENDING and completed (performance.now() times), and `slot` is the
 * log's copy of the slot.
 */
export type CompletionObserver = (
  vm: HvVm,
  vcpu: HvVcpu,
  slot: DataView,
  base: number,
  value: bigint,
  lane?: LaneTiming,
) => void

/** When a lane request went PENDING and completed (performance.now() times). */
export interface LaneTiming {
  since: number
  done: number
}

export class IoreqEmulator {
  /** At most one: the daemon's trace (a read-only tap, not part of the model). */
  observer: CompletionObserver | null = null
  /** vCPUs of polling-mode VMs whose request the hypervisor is polling (§4.4). */
  private readonly polling = new Map<HvVcpu, HvVm>()
  private pollScheduled = false

  constructor(private readonly hv: Hypervisor) {}

  /** HC_SET_IOREQ_BUFFER(vmid, address of {u64 page address}): VM CREATED; marks 16 slots FREE. */
  setIoreqBuffer(vm: HvVm, p2: bigint): number {
    if (vm.state !== 'created') return -1
    const holder = this.hv.memory.bytes(Number(p2), 8)
    if (!holder) return -1
    const pagePa = Number(new DataView(holder.buffer, holder.byteOffset, 8).getBigUint64(0, true))
    if (pagePa % PAGE_SIZE !== 0) return -1
    const backing = this.hv.memory.resolve(pagePa, PAGE_SIZE)
    if (!backing) return -1
    const page: IoreqPage = {
      pa: pagePa,
      u8: new Uint8Array(backing.buffer, backing.byteOffset, PAGE_SIZE),
      dv: new DataView(backing.buffer, backing.byteOffset, PAGE_SIZE),
      i32: new Int32Array(backing.buffer, backing.byteOffset, PAGE_SIZE / 4),
    }
    for (let slot = 0; slot < 16; slot++)
      Atomics.store(page.i32, processedIndex(slot), IoreqState.FREE)
    vm.ioreq = page
    return 0
  }

  /**
   * HC_NOTIFY_REQUEST_FINISH(vmid, vcpu): VM not powered off, buffer set, vcpu below the
   * created count; wakes the vCPU unless the VM polls (A.3). The vCPU's post-processing
   * runs at once, inside the hypercall: the slot is FREE when the call returns.
   */
  notifyRequestFinish(vm: HvVm, p2: bigint): number {
    if (vm.state === 'powered-off' || !vm.ioreq) return -1
    const vcpuId = p2 <= 0xffffn ? Number(p2) : Number(p2 & 0xffffn)
    const vcpu = vm.vcpus[vcpuId]
    if (!vcpu) return -1
    if (!vm.polling) this.complete(vm, vcpu)
    return 0
  }

  /**
   * A vCPU traps (`platform.guestAccess`): emulate what the hypervisor handles itself, else
   * post a request. On a vCPU that executes guest code the access happens between two of
   * its instructions (vm-execution.ts holds it meanwhile).
   */
  access(req: GuestAccess): Promise<bigint> {
    const vm = this.hv.userVm(req.vmid)
    if (!vm || vm.state !== 'running') {
      return Promise.reject(new GuestAccessError('not-running', `VM ${req.vmid} is not running`))
    }
    const vcpu = vm.vcpus[req.vcpu]
    if (!vcpu) {
      return Promise.reject(
        new GuestAccessError('no-vcpu', `VM ${req.vmid} has no vCPU ${req.vcpu}`),
      )
    }
    const busy = () =>
      new GuestAccessError(
        'busy',
        `vCPU ${req.vcpu} of VM ${req.vmid} already has a request outstanding`,
      )
    if (vcpu.busy || vm.lane?.owns(vcpu.id)) return Promise.reject(busy())
    const mmio = req.type === 'mmio'
    const invalid = invalidAccess(req, mmio)
    if (invalid) return Promise.reject(new GuestAccessError('invalid', invalid))
    const write = req.dir === 'write'
    const value = write ? (req.value ?? 0) : 0
    // An executing vCPU stops between two instructions first.
    const execution = vm.execution
    const held = execution?.hold(vcpu.id) ?? false
    // Held, the vCPU cannot send a request through the lane: one sent before is still out.
    if (held && vm.lane?.owns(vcpu.id)) {
      execution!.release(vcpu.id)
      return Promise.reject(busy())
    }
    const done = new Promise<bigint>((resolve, reject) => {
      this.trap(vm, vcpu, mmio, write, req.addr, req.size, value, resolve, reject)
    })
    return held ? done.finally(() => execution!.release(vcpu.id)) : done
  }

  /**
   * The trap itself, for a synthetic access and for an exit of an executing vCPU alike:
   * MMIO to EPT-mapped memory is served here (A.4); anything else fills the vCPU's slot,
   * goes PENDING and raises the upcall, and `done` runs with the value the guest sees when
   * the request completes (`fail` if it is discarded). The vCPU must not be busy.
   */
  trap(
    vm: HvVm,
    vcpu: HvVcpu,
    mmio: boolean,
    write: boolean,
    addr: bigint | number,
    size: number,
    value: bigint | number,
    done: (value: bigint) => void,
    fail: (error: Error) => void,
  ): void {
    if (mmio) {
      const direct = this.directMemoryAccess(vm, addr, size, write, value)
      if (direct !== undefined) {
        done(direct)
        return
      }
    }
    const page = vm.ioreq!
    const dv = page.dv
    const base = vcpu.id * SLOT_SIZE
    // The request is built whole, then published with a release store of PENDING (§4.1).
    page.u8.fill(0, base + SLOT_REQS, base + SLOT_REQS + 64)
    dv.setUint32(base + SLOT_TYPE, mmio ? IoreqType.MMIO : IoreqType.PORTIO, true)
    dv.setUint32(base + SLOT_POLLING, vm.polling ? 1 : 0, true)
    dv.setUint32(base + REQ_DIRECTION, write ? IoreqDir.WRITE : IoreqDir.READ, true)
    setU64(dv, base + REQ_ADDRESS, addr)
    dv.setUint32(base + REQ_SIZE, size, true)
    if (write) {
      const masked = maskValue(value, size)
      if (mmio) setU64(dv, base + REQ_VALUE, masked)
      else dv.setUint32(base + REQ_VALUE, Number(masked), true)
    }
    dv.setUint32(base + SLOT_KERNEL_HANDLED, 0, true)
    vcpu.busy = true
    vcpu.busySince = performance.now()
    vcpu.busyType = mmio ? IoreqType.MMIO : IoreqType.PORTIO
    vcpu.busyWrite = write
    vcpu.busySize = size
    vcpu.resolve = done
    vcpu.reject = fail
    Atomics.store(page.i32, processedIndex(vcpu.id), IoreqState.PENDING)
    if (vm.polling) this.poll(vm, vcpu)
    this.hv.raiseUpcall()
  }

  /**
   * emulate_io_post: if the slot is COMPLETE, hand a read's value to the guest, free the
   * slot and resume the vCPU (a paused VM's vCPU is a zombie: the slot is freed, the access
   * counts as done). A slot in any other state is left alone.
   */
  complete(vm: HvVm, vcpu: HvVcpu): void {
    const page = vm.ioreq
    if (!vcpu.busy || !page) {
      // A request the lane sent: its vCPU thread does the rest.
      vm.lane?.finish(vcpu.id)
      return
    }
    const index = processedIndex(vcpu.id)
    if (Atomics.load(page.i32, index) !== IoreqState.COMPLETE) return
    let value = ZERO
    if (!vcpu.busyWrite) {
      const at = vcpu.id * SLOT_SIZE + REQ_VALUE
      value =
        vcpu.busyType === IoreqType.MMIO
          ? BigInt.asUintN(vcpu.busySize * 8, page.dv.getBigUint64(at, true))
          : BigInt((page.dv.getUint32(at, true) & SIZE_MASK32[vcpu.busySize as 1 | 2 | 4]) >>> 0)
    }
    if (this.observer) {
      // The lane's completions logged before this one are told first: the trace keeps order.
      if (vm.lane) vm.execution?.drainLaneLog()
      this.observer(vm, vcpu, page.dv, vcpu.id * SLOT_SIZE, value)
    }
    Atomics.store(page.i32, index, IoreqState.FREE)
    const resolve = vcpu.resolve!
    vcpu.busy = false
    vcpu.resolve = null
    vcpu.reject = null
    this.polling.delete(vcpu)
    resolve(value)
  }

  /** Reset or destroy: outstanding requests are dropped and every slot goes FREE. */
  discardRequests(vm: HvVm, why: string): void {
    for (const vcpu of vm.vcpus) {
      if (!vcpu.busy) continue
      const reject = vcpu.reject!
      vcpu.busy = false
      vcpu.resolve = null
      vcpu.reject = null
      this.polling.delete(vcpu)
      reject(new GuestAccessError('discarded', `vCPU ${vcpu.id} of VM ${vm.vmid}: ${why}`))
    }
    const page = vm.ioreq
    if (page) {
      for (let slot = 0; slot < 16; slot++)
        Atomics.store(page.i32, processedIndex(slot), IoreqState.FREE)
    }
  }

  /** A guest access that hits EPT-mapped memory with the right permission never leaves the hypervisor. */
  private directMemoryAccess(
    vm: HvVm,
    addr: bigint | number,
    size: number,
    write: boolean,
    value: bigint | number,
  ): bigint | undefined {
    const gpa = Number(addr)
    if (!Number.isSafeInteger(gpa)) return undefined
    const entry = vm.ept.lookup(gpa)
    if (!entry || gpa + size > entry.end || !eptAllows(entry.attr, write)) return undefined
    const bytes = this.hv.memory.bytes(entry.hpa, size)
    if (write) {
      if (bytes) {
        const v = BigInt.asUintN(64, BigInt(value))
        for (let i = 0; i < size; i++) bytes[i] = Number((v >> BigInt(i * 8)) & 0xffn)
      }
      return ZERO
    }
    // Device memory with nothing behind it reads as all ones.
    if (!bytes) return BigInt.asUintN(size * 8, -1n)
    let v = 0n
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!)
    return v
  }

  /** Polling mode: the vCPU spins on its slot's state; modelled as a check every macrotask. */
  private poll(vm: HvVm, vcpu: HvVcpu): void {
    this.polling.set(vcpu, vm)
    if (this.pollScheduled) return
    this.pollScheduled = true
    setImmediate(this.pollTick).unref()
  }

  private readonly pollTick = (): void => {
    this.pollScheduled = false
    for (const [vcpu, vm] of this.polling) {
      if (!vcpu.busy || vm.state === 'powered-off') this.polling.delete(vcpu)
      else this.complete(vm, vcpu)
    }
    if (this.polling.size > 0 && !this.pollScheduled) {
      this.pollScheduled = true
      setImmediate(this.pollTick).unref()
    }
  }
}

function invalidAccess(req: GuestAccess, mmio: boolean): string | undefined {
  if (req.type !== 'pio' && req.type !== 'mmio')
    return `type must be 'pio' or 'mmio', not ${String(req.type)}`
  if (req.dir !== 'read' && req.dir !== 'write')
    return `dir must be 'read' or 'write', not ${String(req.dir)}`
  const size = req.size
  if (!ACCESS_SIZES[req.type].includes(size)) {
    return `a ${req.type} access is ${accessSizesText(req.type)} bytes, not ${size}`
  }
  const addr = req.addr
  const bad =
    typeof addr === 'bigint'
      ? addr < 0n || addr > (mmio ? 0xffff_ffff_ffff_ffffn : 0xffffn)
      : !Number.isSafeInteger(addr) || addr < 0 || (!mmio && addr > 0xffff)
  if (bad)
    return `address ${String(addr)} is outside the ${mmio ? 'physical address space' : 'I/O port space'}`
  return undefined
}
