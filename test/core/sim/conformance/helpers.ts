// Struct builders and small drivers shared by the conformance suites. Everything goes
// through the raw HsmProcess interface: request numbers, struct bytes, process memory.

import { expect } from 'vitest'
import {
  encode,
  HsmError,
  Ioctl,
  IoreqState,
  structs,
  type GuestAccess,
} from '../../../../src/index.js'
import type {
  Capability,
  ConformanceBackend,
  ConformanceProcess,
  ConformanceSystem,
} from './backend.js'

/** The errno symbol a call failed with, or 'OK'. Anything but HsmError is rethrown. */
export async function errnoOf(call: Promise<unknown>): Promise<string> {
  try {
    await call
    return 'OK'
  } catch (err) {
    if (err instanceof HsmError) return err.code
    throw err
  }
}

/** True when the backend lacks one of the capabilities (for it.skipIf). */
export const lacks = (backend: ConformanceBackend, ...caps: Capability[]) =>
  !caps.every((c) => backend.capabilities.has(c))

// --- Struct builders ---------------------------------------------------------------------

export interface CreationFields {
  ioreq_buf?: bigint
  cpu_affinity?: bigint
  vm_flag?: bigint
  name?: string
  reserved0?: number
  reserved1?: number
}

export function vmCreation(f: CreationFields = {}): Uint8Array {
  const uuid = new Uint8Array(16)
  if (f.name) uuid.set(new TextEncoder().encode(f.name).subarray(0, 16))
  return encode(structs.acrn_vm_creation, {
    ioreq_buf: f.ioreq_buf ?? 0n,
    cpu_affinity: f.cpu_affinity ?? 0n,
    vm_flag: f.vm_flag ?? 0n,
    uuid,
    reserved0: f.reserved0 ?? 0,
    reserved1: f.reserved1 ?? 0,
  })
}

export const memmap = (f: {
  type: number
  attr?: number
  user_vm_pa?: bigint
  vma_base?: bigint
  len: bigint
}) => encode(structs.acrn_vm_memmap, { attr: 0x7, user_vm_pa: 0n, vma_base: 0n, ...f })

export const ioeventfdArg = (f: {
  fd: number
  flags?: number
  addr: bigint
  len: number
  data?: bigint
  reserved?: number
}) => encode(structs.acrn_ioeventfd, { flags: 0, data: 0n, reserved: 0, ...f, fd: f.fd >>> 0 })

export const irqfdArg = (f: { fd: number; flags?: number; msi_addr?: bigint; msi_data?: bigint }) =>
  encode(structs.acrn_irqfd, {
    fd: f.fd,
    flags: f.flags ?? 0,
    msi: { msi_addr: f.msi_addr ?? 0xfee0_0000n, msi_data: f.msi_data ?? 0x30n },
  })

export const notifyArg = (vcpu: number, f: { vmid?: number; reserved?: number } = {}) =>
  encode(structs.acrn_ioreq_notify, { vcpu, vmid: f.vmid ?? 0, reserved: f.reserved ?? 0 })

export const msiArg = (msi_addr: bigint, msi_data: bigint) =>
  encode(structs.acrn_msi_entry, { msi_addr, msi_data })

/** SET_IRQLINE's value: gsi in bits 31:0, op in 63:32 (§7.1). */
export const irqline = (gsi: number, op: number) => (BigInt(op) << 32n) | BigInt(gsi)

// --- VMs -----------------------------------------------------------------------------------

export interface VmHandle {
  readonly sys: ConformanceSystem
  readonly proc: ConformanceProcess
  readonly fd: number
  readonly vmid: number
  readonly vcpuNum: number
  /** Address of the ioreq page in the process. */
  readonly page: bigint
}

export interface VmOptions extends CreationFields {
  proc?: ConformanceProcess
}

/** open + mmap + CREATE_VM (one vCPU unless told otherwise). */
export async function createVm(sys: ConformanceSystem, opts: VmOptions = {}): Promise<VmHandle> {
  const proc = opts.proc ?? sys.spawn()
  const fd = await proc.open('/dev/acrn_hsm')
  const page = opts.ioreq_buf ?? (await proc.mmap(4096))
  const creation = vmCreation({ cpu_affinity: 0b10n, ...opts, ioreq_buf: page })
  await proc.ioctl(fd, Ioctl.CREATE_VM, creation)
  const view = new DataView(creation.buffer)
  return { sys, proc, fd, vmid: view.getUint16(0, true), vcpuNum: view.getUint16(4, true), page }
}

/** A running VM with a default client. */
export async function runningVm(
  sys: ConformanceSystem,
  opts: VmOptions & { client?: boolean } = {},
) {
  const vm = await createVm(sys, opts)
  if (opts.client ?? true) await vm.proc.ioctl(vm.fd, Ioctl.CREATE_IOREQ_CLIENT)
  await vm.proc.ioctl(vm.fd, Ioctl.START_VM)
  return vm
}

export async function pauseAndDestroy(vm: VmHandle): Promise<void> {
  await vm.proc.ioctl(vm.fd, Ioctl.PAUSE_VM)
  await vm.proc.ioctl(vm.fd, Ioctl.DESTROY_VM)
}

// --- Slots -----------------------------------------------------------------------------------

export interface Slot {
  readonly vcpu: number
  readonly state: number
  readonly type: number
  readonly completionPolling: number
  readonly kernelHandled: number
  readonly direction: number
  readonly address: bigint
  readonly size: bigint
  readonly value: bigint
  readonly value32: number
  readonly pci: { bus: number; dev: number; func: number; reg: number; reserved: number[] }
}

export async function readSlot(vm: VmHandle, vcpu: number): Promise<Slot> {
  const bytes = await vm.proc.read(vm.page + BigInt(vcpu * 256), 256)
  const v = new DataView(bytes.buffer, bytes.byteOffset, 256)
  return {
    vcpu,
    state: v.getUint32(136, true),
    type: v.getUint32(0, true),
    completionPolling: v.getUint32(4, true),
    kernelHandled: v.getUint32(132, true),
    direction: v.getUint32(64, true),
    address: v.getBigUint64(72, true),
    size: v.getBigUint64(80, true),
    value: v.getBigUint64(88, true),
    value32: v.getUint32(88, true),
    pci: {
      bus: v.getUint32(92, true),
      dev: v.getUint32(96, true),
      func: v.getUint32(100, true),
      reg: v.getUint32(104, true),
      reserved: [v.getUint32(68, true), v.getUint32(72, true), v.getUint32(76, true)],
    },
  }
}

export async function slotStates(vm: VmHandle): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < vm.vcpuNum; i++) out.push((await readSlot(vm, i)).state)
  return out
}

/** Put a read's answer in the slot's value field (u64 at offset 88). */
export async function answer(vm: VmHandle, vcpu: number, value: bigint): Promise<void> {
  const bytes = new Uint8Array(8)
  new DataView(bytes.buffer).setBigUint64(0, value, true)
  await vm.proc.write(vm.page + BigInt(vcpu * 256 + 88), bytes)
}

export const notify = (vm: VmHandle, vcpu: number) =>
  vm.proc.ioctl(vm.fd, Ioctl.NOTIFY_REQUEST_FINISH, notifyArg(vcpu))

/**
 * One round of the default client, as acrn-dm runs it: ATTACH, then every slot that is
 * PROCESSING and not kernel-handled is answered (reads get `reply(slot)`) and notified.
 */
export async function serve(
  vm: VmHandle,
  reply: (slot: Slot) => bigint = () => 0n,
): Promise<Slot[]> {
  await vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
  const served: Slot[] = []
  for (let vcpu = 0; vcpu < vm.vcpuNum; vcpu++) {
    const slot = await readSlot(vm, vcpu)
    if (slot.state !== IoreqState.PROCESSING || slot.kernelHandled !== 0) continue
    if (slot.direction === 0) await answer(vm, vcpu, reply(slot))
    await notify(vm, vcpu)
    served.push(slot)
  }
  return served
}

/** The guest side of a backend that has one. */
export function guestOf(sys: ConformanceSystem): (access: GuestAccess) => Promise<bigint> {
  const access = sys.guestAccess
  if (!access) throw new Error('this backend has no guest side')
  return access
}

/** Settled state of a promise without waiting for it: 'pending', or its outcome. */
export async function peek<T>(
  p: Promise<T>,
): Promise<
  { state: 'pending' } | { state: 'fulfilled'; value: T } | { state: 'rejected'; reason: unknown }
> {
  const marker = Symbol('pending')
  const settled = await Promise.race([
    p.then(
      (value) => ({ state: 'fulfilled' as const, value }),
      (reason: unknown) => ({ state: 'rejected' as const, reason }),
    ),
    new Promise<typeof marker>((resolve) => setImmediate(() => resolve(marker))),
  ])
  return settled === marker ? { state: 'pending' } : settled
}

export function expectPending(state: { state: string }): void {
  expect(state.state).toBe('pending')
}
