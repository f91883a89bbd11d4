// A VM's life in hsmd, as the kernel's vm.c: CREATE_VM (with its ioreq client and console),
// START, PAUSE, RESET, DESTROY; `vm forget` for a VM only journaled; the daemon's stop.
// A failed create takes back what it made, so nothing is left half-made.

import { unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { MAX_VCPUS_PER_VM, PAGE_SIZE } from '../abi/constants.js'
import { Ioctl } from '../abi/ioctls.js'
import { decode, encode } from '../abi/layout.js'
import * as S from '../abi/structs.js'
import { ConflictError, NotFoundError, UsageError } from '../errors.js'
import { ConsoleLog } from './console-log.js'
import { DeviceModels } from './devices/models.js'
import { DefaultIoreqClient } from './ioreq-client.js'
import { show, type VmDetails } from './listing.js'
import { memsegSet } from './memory.js'
import type { HsmdVm, HsmdVms } from './owners/hsmd.js'
import { journalState } from './owners/journaled.js'
import { checkVmName } from './spec.js'

const HSM_DEVICE = '/dev/acrn_hsm'

export interface CreateOptions {
  name: string
  vcpus?: number
  cpuAffinity?: bigint
  flags?: bigint
  /** RAM to map at guest address 0 (`--memory`), in the same operation. */
  memory?: bigint
  /** A payload loaded at the start of that RAM (`--payload`). */
  payload?: Uint8Array
}

/** What `vm forget` (or `vm destroy` of a VM only journaled) removed. */
export interface ForgottenVm {
  name: string
  state: 'journaled' | 'incomplete' | 'corrupt'
  file: string
}

/**
 * CREATE_VM and, with `memory`, the RAM at 0: one operation, so that no other client's
 * call on the name falls between them. RAM that cannot be mapped takes the VM back.
 */
export async function create(hsmd: HsmdVms, options: CreateOptions): Promise<VmDetails> {
  const details = await createVm(hsmd, options)
  if (options.memory === undefined) return details
  const seg = { gpa: 0n, size: options.memory, type: 'ram', access: 7 } as const
  try {
    await memsegSet(hsmd, details.name, seg, options.payload, { flag: '--memory' })
  } catch (e) {
    // a failed command changes nothing: no VM, and no console log of one
    await destroy(hsmd, details.name, { rollback: true }).catch(() => {})
    throw e
  }
  return show(hsmd, details.name)
}

async function createVm(hsmd: HsmdVms, options: CreateOptions): Promise<VmDetails> {
  const { platform, proc } = hsmd
  const name = checkVmName(options.name, 'NAME')
  if (hsmd.has(name)) {
    throw new ConflictError(
      `a VM named '${name}' already exists`,
      'pick another name, or destroy it first',
    )
  }
  // the hypervisor refuses a name one of its VMs has (A.1, A.2): say whose it is
  const namesake = platform.hypervisorVms?.().find((vm) => vm.name === name)
  if (namesake) {
    throw new ConflictError(
      `the hypervisor already has a VM named '${name}' (vmid ${namesake.vmid}) that this daemon does not hold${namesake.holder ? ` (${namesake.holder} does)` : ''}`,
      'pick another name; `hsmctl vm list` shows it as an outside VM',
    )
  }
  if (options.vcpus !== undefined && options.cpuAffinity !== undefined) {
    throw new UsageError('give --vcpus or --cpu-affinity, not both')
  }
  let cpuAffinity = options.cpuAffinity ?? 0n
  if (options.vcpus !== undefined) {
    // vCPUs come from the affinity (A.2): take the first N pCPUs a User VM may use
    const { userVmAffinity } = await platform.inventory()
    const allowed = [...Array(64).keys()].filter((cpu) => (userVmAffinity >> BigInt(cpu)) & 1n)
    const limit = Math.min(MAX_VCPUS_PER_VM, allowed.length)
    if (!Number.isInteger(options.vcpus) || options.vcpus < 1 || options.vcpus > limit) {
      throw new UsageError(`${options.vcpus} vCPUs is not possible here`, {
        flag: '--vcpus',
        hint: `a User VM may use ${allowed.length} pCPUs here (${allowed.join(', ')}), one vCPU each, at most ${MAX_VCPUS_PER_VM}`,
      })
    }
    cpuAffinity = allowed
      .slice(0, options.vcpus)
      .reduce((mask, cpu) => mask | (1n << BigInt(cpu)), 0n)
  }
  const fd = await proc.open(platform.device ?? HSM_DEVICE)
  let created = false
  let ioreqBuf: bigint | undefined
  let managed: HsmdVm | undefined
  try {
    ioreqBuf = await proc.mmap(PAGE_SIZE)
    const uuid = new Uint8Array(16)
    uuid.set(new TextEncoder().encode(name)) // the hypervisor reads it as a name (A.1); checkVmName kept it to 15 bytes
    const creation = encode(S.acrn_vm_creation, {
      uuid,
      vm_flag: options.flags ?? 0n,
      ioreq_buf: ioreqBuf,
      cpu_affinity: cpuAffinity,
    })
    await hsmd.ioctl(fd, Ioctl.CREATE_VM, creation, name)
    created = true
    const back = decode(S.acrn_vm_creation, creation)
    const vmid = back.vmid as number
    const vcpuNum = back.vcpu_num as number
    const effectiveAffinity =
      cpuAffinity !== 0n ? cpuAffinity : await configuredAffinity(hsmd, vmid, vcpuNum)
    await hsmd.ioctl(fd, Ioctl.CREATE_IOREQ_CLIENT, undefined, name)
    const console = new ConsoleLog(join(hsmd.opts.stateDir, 'consoles'), name)
    const devices = new DeviceModels((byte) => console.write(byte))
    const vm: HsmdVm = {
      name,
      fd,
      vmid,
      vcpuNum,
      ioreqBuf,
      state: 'created',
      createdAt: Date.now(),
      flags: options.flags ?? 0n,
      cpuAffinity,
      effectiveAffinity,
      requestedVcpus: options.vcpus,
      memsegs: [],
      regs: [],
      ptdevs: [],
      mmiodevs: [],
      vdevs: [],
      ioeventfds: [],
      irqfds: [],
      nextId: 1,
      devices,
      console,
      monitorPage: undefined,
      client: new DefaultIoreqClient(
        proc,
        fd,
        { name, vmid, vcpuNum, ioreqBuf },
        devices,
        hsmd.opts.trace,
      ),
    }
    managed = vm
    hsmd.add(vm)
    hsmd.save(vm)
    hsmd.events.vm(vm, 'created', { vcpus: vcpuNum })
    hsmd.events.ioreqClient(vm, true)
    return show(hsmd, name)
  } catch (e) {
    // the journal could not take it, say: no VM of that name is left behind
    if (managed) {
      hsmd.delete(name)
      managed.client.stop()
    }
    if (created) {
      // CREATE_VM succeeded: the hypervisor destroys only a paused VM (A.3)
      await proc.ioctl(fd, Ioctl.PAUSE_VM).catch(() => {})
      await proc.ioctl(fd, Ioctl.DESTROY_VM).catch(() => {})
    }
    await proc.close(fd).catch(() => {})
    if (managed) {
      await managed.client.done // its ATTACH ended with the VM (or the fd)
      await managed.console.close()
    }
    await hsmd.unmap(ioreqBuf, PAGE_SIZE)
    throw e
  }
}

/**
 * The pCPUs a VM created with affinity 0 got: the configured ones (A.2), one per vCPU.
 * The simulation says which; otherwise the first ones a User VM may use, as --vcpus takes.
 */
async function configuredAffinity(hsmd: HsmdVms, vmid: number, vcpuNum: number): Promise<bigint> {
  const seen = hsmd.platform.inspectVm?.(vmid) as { vcpus?: { pcpu?: unknown }[] } | undefined
  const pcpus = seen?.vcpus?.map((v) => v.pcpu)
  if (pcpus?.length === vcpuNum && pcpus.every((p) => typeof p === 'number'))
    return (pcpus as number[]).reduce((mask, p) => mask | (1n << BigInt(p)), 0n)
  const { userVmAffinity } = await hsmd.platform.inventory()
  let mask = 0n
  for (let cpu = 0, n = 0; cpu < 64 && n < vcpuNum; cpu++) {
    if ((userVmAffinity >> BigInt(cpu)) & 1n) {
      mask |= 1n << BigInt(cpu)
      n++
    }
  }
  return mask
}

export async function start(hsmd: HsmdVms, name: string): Promise<VmDetails> {
  const vm = hsmd.get(name)
  await hsmd.ioctl(vm, Ioctl.START_VM)
  vm.state = 'running'
  hsmd.save(vm)
  hsmd.events.vm(vm, 'started')
  return show(hsmd, name)
}

export async function pause(hsmd: HsmdVms, name: string): Promise<VmDetails> {
  const vm = hsmd.get(name)
  await hsmd.ioctl(vm, Ioctl.PAUSE_VM)
  vm.state = 'paused'
  hsmd.save(vm)
  hsmd.events.vm(vm, 'paused')
  return show(hsmd, name)
}

/** acrn-dm's order: pause, clear the ioreqs, reset (§2.5); the VM is then created again. */
export async function reset(hsmd: HsmdVms, name: string): Promise<VmDetails> {
  const vm = hsmd.get(name)
  if (vm.state === 'running') {
    await hsmd.ioctl(vm, Ioctl.PAUSE_VM)
    vm.state = 'paused'
    hsmd.events.vm(vm, 'paused')
  }
  await hsmd.ioctl(vm, Ioctl.CLEAR_VM_IOREQ)
  await hsmd.ioctl(vm, Ioctl.RESET_VM)
  vm.state = 'created'
  hsmd.save(vm)
  hsmd.events.vm(vm, 'reset')
  return show(hsmd, name)
}

/**
 * Pause unless paused (the hypervisor destroys only paused VMs), destroy, close the fd.
 * The console log stays for reading after the VM is gone, unless `rollback`: a create
 * that failed half-way must leave nothing behind.
 */
export async function destroy(
  hsmd: HsmdVms,
  name: string,
  options: { keepJournal?: boolean; rollback?: boolean } = {},
): Promise<{ name: string; vmid: number } | ForgottenVm> {
  const { proc, journal } = hsmd
  // a VM only journaled: destroying it is forgetting its spec
  if (!hsmd.has(name) && !options.rollback && journal.get(name)) return forget(hsmd, name)
  const vm = hsmd.get(name)
  // A.3: DESTROY needs PAUSED; PAUSE takes a created VM there too (as create's rollback does)
  if (vm.state !== 'paused') {
    const was = vm.state
    await hsmd.ioctl(vm, Ioctl.PAUSE_VM)
    vm.state = 'paused'
    if (was === 'running') hsmd.events.vm(vm, 'paused')
  }
  await hsmd.ioctl(vm, Ioctl.DESTROY_VM)
  vm.client.stop()
  await vm.client.done
  for (const e of vm.ioeventfds) await proc.close(e.efd).catch(() => {})
  for (const q of vm.irqfds) await proc.close(q.efd).catch(() => {})
  await proc.close(vm.fd).catch(() => {})
  await hsmd.unmap(vm.ioreqBuf, PAGE_SIZE)
  await hsmd.unmap(vm.monitorPage, PAGE_SIZE)
  for (const seg of vm.memsegs) if (seg.type === 'ram') await hsmd.unmap(seg.vma, seg.size)
  await vm.console.close()
  if (options.rollback) {
    try {
      unlinkSync(vm.console.path)
    } catch {
      // already gone
    }
  }
  hsmd.delete(name)
  hsmd.events.ioreqClient(vm, false)
  hsmd.events.vm(vm, 'destroyed', options.rollback ? { rollback: true } : {})
  hsmd.opts.onVmDestroyed?.(vm.vmid)
  if (!options.keepJournal) journal.remove(name)
  return { name, vmid: vm.vmid }
}

/** Remove a journal entry (virsh undefine): one only journaled, corrupt or not. */
export function forget(hsmd: HsmdVms, name: string): ForgottenVm {
  if (hsmd.has(name)) {
    throw new ConflictError(
      `'${name}' runs in hsmd; forgetting its spec would leave it running unjournaled`,
      `\`hsmctl vm destroy ${name}\` destroys it and forgets its spec`,
    )
  }
  const entry = hsmd.journal.get(name)
  if (!entry) throw new NotFoundError(`nothing is journaled as '${name}'`, 'see `hsmctl vm list`')
  hsmd.journal.remove(name)
  return { name, state: journalState(entry), file: entry.file }
}

/** Daemon stop: every VM paused and destroyed; the journal keeps their specs. */
export async function shutdown(hsmd: HsmdVms): Promise<void> {
  for (const name of hsmd.names()) {
    await destroy(hsmd, name, { keepJournal: true }).catch(() => {})
  }
}
