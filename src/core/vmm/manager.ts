// The VM manager inside hsmd: VMs by unique name, one /dev/acrn_hsm fd each, the daemon
// as each VM's default ioreq client, and the journal of VM specs. Every operation is one
// or a few ioctls through the HsmProcess interface, so it behaves the same on both
// backends; a failed operation rolls back what it did, so nothing is left half-made.

import { createWriteStream, unlinkSync, type WriteStream } from 'node:fs'
import { join } from 'node:path'
import {
  ACCESS_SIZES,
  accessSizesText,
  GsiOp,
  IntrMonitorCmd,
  INTR_MONITOR_BUFFER_MAX,
  IoeventfdFlag,
  IrqfdFlag,
  MAX_VCPUS_PER_VM,
  Memmap,
  PAGE_SIZE,
  PmCmd,
} from '../abi/constants.js'
import { Errno } from '../abi/errno.js'
import { Ioctl } from '../abi/ioctls.js'
import { decode, encode } from '../abi/layout.js'
import { formatSize } from '../parse/size.js'
import * as S from '../abi/structs.js'
import { ensurePrivateDir, openPrivateFile, readAll } from '../daemon/private-files.js'
import { ConflictError, HsmError, NotFoundError, UsageError } from '../errors.js'
import type { HsmProcess } from '../hsm-process.js'
import type { TraceHub } from '../trace/hub.js'
import { DeviceModels } from './devices/models.js'
import { vmFlagNames } from './flags.js'
import { withHint } from './hints.js'
import { DefaultIoreqClient } from './ioreq-client.js'
import type { Journal, JournalEntry } from './journal.js'
import type { HostPciDevice, HypervisorVm, VmmPlatform } from './platform.js'
import {
  checkVmName,
  type IoeventfdSpec,
  type IrqfdSpec,
  type MemsegSpec,
  type PtdevSpec,
  type RegsSpec,
  type VmRunState,
  type VmSpec,
} from './spec.js'

const HSM_DEVICE = '/dev/acrn_hsm'

export interface MemsegInfo extends MemsegSpec {
  /** RAM: the daemon's mapping backing the segment. */
  vma?: bigint
}

export interface IoeventfdInfo extends IoeventfdSpec {
  id: number
  /** Writes that signalled the eventfd (drained and summed by the daemon). */
  signals: bigint
}

export interface IrqfdInfo extends IrqfdSpec {
  id: number
  signals: number
}

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

interface ManagedVm {
  name: string
  fd: number
  vmid: number
  vcpuNum: number
  ioreqBuf: bigint
  state: VmRunState
  createdAt: number
  flags: bigint
  /** As asked: 0 when neither --vcpus nor --cpu-affinity was given (the configured one, A.2). */
  cpuAffinity: bigint
  /** The pCPUs its vCPUs run on: what `vm show` says. */
  effectiveAffinity: bigint
  requestedVcpus: number | undefined
  memsegs: MemsegInfo[]
  regs: RegsSpec[]
  ptdevs: PtdevInfo[]
  mmiodevs: MmiodevInfo[]
  vdevs: VdevInfo[]
  ioeventfds: (IoeventfdInfo & { efd: number })[]
  irqfds: (IrqfdInfo & { efd: number })[]
  nextId: number
  devices: DeviceModels
  client: DefaultIoreqClient
  console: ConsoleLog
  monitorPage: bigint | undefined
}

export interface VmSummary {
  name: string
  vmid: number | null
  /**
   * journaled: only a spec in the journal; incomplete: hsmd stopped while applying that
   * spec; corrupt: a journal file that cannot be used (`problem` says why).
   */
  state: VmRunState | 'journaled' | 'incomplete' | 'corrupt'
  vcpus: number | null
  memory: bigint
  /** 'outside process': a VM of the hypervisor that another program holds (or orphaned). */
  owner: 'hsmd' | 'journal' | 'outside process'
  uptimeSeconds: number | null
  /** Outside VMs: who holds the fd, when known (`pid 1234 (vm-sample)`). */
  holder?: string
  /** Corrupt and incomplete journal entries: what is wrong. */
  problem?: string
  /** Recreated from its journal when hsmd starts (`vm autostart`). */
  autostart?: boolean
}

/** What `vm forget` (or `vm destroy` of a VM only journaled) removed. */
export interface ForgottenVm {
  name: string
  state: 'journaled' | 'incomplete' | 'corrupt'
  file: string
}

export interface VmDetails extends VmSummary {
  flags: string[]
  cpuAffinity: bigint
  ioreqBuf: bigint
  memsegs: MemsegInfo[]
  regs: RegsSpec[]
  ptdevs: PtdevInfo[]
  mmiodevs: MmiodevInfo[]
  vdevs: VdevInfo[]
  ioeventfds: IoeventfdInfo[]
  irqfds: IrqfdInfo[]
  clients: IoreqClientInfo[]
  console: string
  /** Simulation: the engine its vCPUs execute on, or why they execute nothing. */
  execution?: { engine: string } | { reason: string }
  hypervisor?: unknown
}

/** `vm.hypervisor`: what the simulated hypervisor knows of a VM (nothing on hardware). */
export interface HypervisorView {
  name: string
  vmid: number
  /** The engine its vCPUs execute on, or why they execute nothing. */
  execution?: { engine: string } | { reason: string }
  hypervisor?: unknown
}

export interface IoreqClientInfo {
  name: string
  kind: 'default' | 'kernel'
  owner: string
  handled?: number
  wakeups?: number
  ranges?: number
}

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

/**
 * Reads a payload file for a RAM segment: `flag` names where its path was given, and a
 * file larger than `maxBytes` (the segment) is refused before it is read.
 */
export type ReadPayload = (file: string, options: { flag: string; maxBytes: bigint }) => Uint8Array

export type GsiOpName = 'assert' | 'deassert' | 'pulse-high' | 'pulse-low'

const GSI_OPS: Readonly<Record<GsiOpName, number>> = {
  assert: GsiOp.SET_HIGH,
  deassert: GsiOp.SET_LOW,
  'pulse-high': GsiOp.RAISING_PULSE,
  'pulse-low': GsiOp.FALLING_PULSE,
}

/**
 * A VM's serial console: bytes the guest wrote to its UART, appended to a log file that
 * the daemon opened once (no link followed) and reads back through the same fd.
 */
class ConsoleLog {
  readonly path: string
  private readonly fd: number
  private stream: WriteStream
  bytes = 0

  constructor(dir: string, name: string) {
    ensurePrivateDir({ path: dir, role: 'console log directory', variable: 'HSMCTL_STATE_DIR' })
    this.path = join(dir, `${name}.log`)
    this.fd = openPrivateFile(this.path, 'replace')
    this.stream = createWriteStream('', { fd: this.fd, autoClose: true })
  }

  /** Everything written so far, from byte `from` (flush first). */
  read(from = 0): Buffer {
    return readAll(this.fd, from)
  }

  write(byte: number) {
    this.bytes++
    this.stream.write(Buffer.of(byte))
  }

  /** Settle pending writes so that readers of the file see every byte. */
  flush(): Promise<void> {
    return new Promise((resolve) => this.stream.write('', () => resolve()))
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.stream.end(() => resolve()))
  }
}

/** Before any VM lookup, so that the flag at fault is named whatever the VM's state. */
function checkAccessSize(type: 'pio' | 'mmio', size: number) {
  if (ACCESS_SIZES[type].includes(size)) return
  const kind = type === 'pio' ? 'a port I/O' : 'an MMIO'
  throw new UsageError(`${kind} access is ${accessSizesText(type)} bytes, not ${size}`, {
    flag: '--size',
    hint:
      type === 'pio'
        ? 'port I/O moves at most 4 bytes (the request’s value is 32 bits); use --size 1, 2 or 4, or --mmio for 8-byte accesses'
        : 'use --size 1, 2, 4 or 8',
  })
}

function realModeRegs(entry: bigint) {
  // §9.2 step 6: CS base carries the high bits of the entry, IP the low 16.
  return {
    cr0: 0x30n,
    cs_ar: 0x009f,
    cs_sel: 0xf000,
    cs_limit: 0xffff,
    cs_base: entry & 0xffff_0000n,
    rip: entry & 0xffffn,
  }
}

function protectedModeRegs(entry: bigint) {
  // Flat 32-bit segments, paging off, as acrn-dm sets up a BSP for a bzImage.
  return {
    cr0: 0x31n,
    cs_ar: 0xc09b,
    cs_sel: 0x10,
    cs_limit: 0xffff_ffff,
    cs_base: 0n,
    rip: entry,
    ds_sel: 0x18,
    es_sel: 0x18,
    ss_sel: 0x18,
  }
}

function longModeRegs(entry: bigint) {
  // 64-bit, paging on (CR3 given), as acrn-dm enters a 64-bit kernel: PG|NE|ET|PE, PAE,
  // EFER LME|LMA, a 64-bit code segment (L=1)
  return {
    cr0: 0x8000_0031n,
    cr4: 0x20n,
    ia32_efer: 0x500n,
    cs_ar: 0xa09b,
    cs_sel: 0x10,
    cs_limit: 0xffff_ffff,
    cs_base: 0n,
    rip: entry,
    ds_sel: 0x18,
    es_sel: 0x18,
    ss_sel: 0x18,
  }
}

export interface VmManagerOptions {
  platform: VmmPlatform
  journal: Journal
  /** Where the default clients publish what they handle; none when the platform traces. */
  trace?: TraceHub
  stateDir: string
  /** Told when a VM is destroyed: its vmid may be reused (the trace forgets its rows). */
  onVmDestroyed?: (vmid: number) => void
}

export class VmManager {
  private readonly vms = new Map<string, ManagedVm>()
  /** VMs `apply` is building: their journal entry is the spec as asked, until done. */
  private readonly applying = new Set<string>()
  private readonly proc: HsmProcess
  private readonly consoleDir: string

  constructor(private readonly opts: VmManagerOptions) {
    this.proc = opts.platform.process
    this.consoleDir = join(opts.stateDir, 'consoles')
  }

  get platform(): VmmPlatform {
    return this.opts.platform
  }

  private vm(name: string): ManagedVm {
    const vm = this.vms.get(name)
    if (vm) return vm
    throw this.notRunning(name)
  }

  /** Why no VM of that name runs here, saying what the journal holds of it. */
  private notRunning(name: string): NotFoundError {
    const entry = this.opts.journal.get(name)
    if (entry?.error !== undefined) {
      return new NotFoundError(
        `no VM named '${name}' runs in hsmd; its journal entry ${entry.file} is corrupt: ${entry.error}`,
        `fix or remove the file, or forget it with \`hsmctl vm forget ${name}\``,
      )
    }
    if (entry) {
      const how = entry.incomplete ? 'journaled, incomplete' : 'journaled'
      return new NotFoundError(
        `no VM named '${name}' runs in hsmd; it is ${how} (held by an earlier daemon)`,
        `recreate it with \`hsmctl vm apply ${name}\`, or forget it with \`hsmctl vm forget ${name}\``,
      )
    }
    return new NotFoundError(`no VM named '${name}'`, 'see `hsmctl vm list`')
  }

  /** Run one ioctl on a VM's fd; a refusal carries the hint for its ioctl and errno. */
  private async ioctl(
    vm: ManagedVm | number,
    request: number,
    arg?: Uint8Array | bigint,
    name?: string,
  ) {
    const fd = typeof vm === 'number' ? vm : vm.fd
    try {
      return await this.proc.ioctl(fd, request, arg)
    } catch (e) {
      if (typeof vm === 'number') throw withHint(e, name)
      throw withHint(e, name ?? vm.name, vm.state)
    }
  }

  // --- lifecycle ------------------------------------------------------------------

  /**
   * CREATE_VM and, with `memory`, the RAM at 0: one operation, so that no other client's
   * call on the name falls between them. RAM that cannot be mapped takes the VM back.
   */
  async create(options: CreateOptions): Promise<VmDetails> {
    const details = await this.createVm(options)
    if (options.memory === undefined) return details
    const seg = { gpa: 0n, size: options.memory, type: 'ram', access: 7 } as const
    try {
      await this.memsegSet(details.name, seg, options.payload, { flag: '--memory' })
    } catch (e) {
      // a failed command changes nothing: no VM, and no console log of one
      await this.destroy(details.name, { rollback: true }).catch(() => {})
      throw e
    }
    return this.show(details.name)
  }

  private async createVm(options: CreateOptions): Promise<VmDetails> {
    const name = checkVmName(options.name, 'NAME')
    if (this.vms.has(name)) {
      throw new ConflictError(
        `a VM named '${name}' already exists`,
        'pick another name, or destroy it first',
      )
    }
    // the hypervisor refuses a name one of its VMs has (A.1, A.2): say whose it is
    const namesake = this.opts.platform.hypervisorVms?.().find((vm) => vm.name === name)
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
      const { userVmAffinity } = await this.opts.platform.inventory()
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
    const fd = await this.proc.open(this.opts.platform.device ?? HSM_DEVICE)
    let created = false
    let ioreqBuf: bigint | undefined
    let managed: ManagedVm | undefined
    try {
      ioreqBuf = await this.proc.mmap(PAGE_SIZE)
      const uuid = new Uint8Array(16)
      uuid.set(new TextEncoder().encode(name)) // the hypervisor reads it as a name (A.1); checkVmName kept it to 15 bytes
      const creation = encode(S.acrn_vm_creation, {
        uuid,
        vm_flag: options.flags ?? 0n,
        ioreq_buf: ioreqBuf,
        cpu_affinity: cpuAffinity,
      })
      await this.ioctl(fd, Ioctl.CREATE_VM, creation, name)
      created = true
      const back = decode(S.acrn_vm_creation, creation)
      const vmid = back.vmid as number
      const vcpuNum = back.vcpu_num as number
      const effectiveAffinity =
        cpuAffinity !== 0n ? cpuAffinity : await this.configuredAffinity(vmid, vcpuNum)
      await this.ioctl(fd, Ioctl.CREATE_IOREQ_CLIENT, undefined, name)
      const console = new ConsoleLog(this.consoleDir, name)
      const devices = new DeviceModels((byte) => console.write(byte))
      const vm: ManagedVm = {
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
          this.proc,
          fd,
          { name, vmid, vcpuNum, ioreqBuf },
          devices,
          this.opts.trace,
        ),
      }
      managed = vm
      this.vms.set(name, vm)
      this.save(vm)
      return this.show(name)
    } catch (e) {
      // the journal could not take it, say: no VM of that name is left behind
      if (managed) {
        this.vms.delete(name)
        managed.client.stop()
      }
      if (created) {
        // CREATE_VM succeeded: the hypervisor destroys only a paused VM (A.3)
        await this.proc.ioctl(fd, Ioctl.PAUSE_VM).catch(() => {})
        await this.proc.ioctl(fd, Ioctl.DESTROY_VM).catch(() => {})
      }
      await this.proc.close(fd).catch(() => {})
      if (managed) {
        await managed.client.done // its ATTACH ended with the VM (or the fd)
        await managed.console.close()
      }
      await this.unmap(ioreqBuf, PAGE_SIZE)
      throw e
    }
  }

  /**
   * The pCPUs a VM created with affinity 0 got: the configured ones (A.2), one per vCPU.
   * The simulation says which; otherwise the first ones a User VM may use, as --vcpus takes.
   */
  private async configuredAffinity(vmid: number, vcpuNum: number): Promise<bigint> {
    const seen = this.opts.platform.inspectVm?.(vmid) as
      { vcpus?: { pcpu?: unknown }[] } | undefined
    const pcpus = seen?.vcpus?.map((v) => v.pcpu)
    if (pcpus?.length === vcpuNum && pcpus.every((p) => typeof p === 'number'))
      return (pcpus as number[]).reduce((mask, p) => mask | (1n << BigInt(p)), 0n)
    const { userVmAffinity } = await this.opts.platform.inventory()
    let mask = 0n
    for (let cpu = 0, n = 0; cpu < 64 && n < vcpuNum; cpu++) {
      if ((userVmAffinity >> BigInt(cpu)) & 1n) {
        mask |= 1n << BigInt(cpu)
        n++
      }
    }
    return mask
  }

  /**
   * Give back memory the daemon mapped for a VM, once the VM no longer pins it (it was
   * destroyed, or never got it): hsmd lives long, and a mapping is host memory.
   */
  private async unmap(address: bigint | undefined, size: bigint | number): Promise<void> {
    if (address === undefined) return
    await this.proc.munmap(address, Math.max(Number(size), 1)).catch(() => {})
  }

  async start(name: string): Promise<VmDetails> {
    const vm = this.vm(name)
    await this.ioctl(vm, Ioctl.START_VM)
    vm.state = 'running'
    this.save(vm)
    return this.show(name)
  }

  async pause(name: string): Promise<VmDetails> {
    const vm = this.vm(name)
    await this.ioctl(vm, Ioctl.PAUSE_VM)
    vm.state = 'paused'
    this.save(vm)
    return this.show(name)
  }

  /** acrn-dm's order: pause, clear the ioreqs, reset (§2.5); the VM is then created again. */
  async reset(name: string): Promise<VmDetails> {
    const vm = this.vm(name)
    if (vm.state === 'running') {
      await this.ioctl(vm, Ioctl.PAUSE_VM)
      vm.state = 'paused'
    }
    await this.ioctl(vm, Ioctl.CLEAR_VM_IOREQ)
    await this.ioctl(vm, Ioctl.RESET_VM)
    vm.state = 'created'
    this.save(vm)
    return this.show(name)
  }

  /**
   * Pause unless paused (the hypervisor destroys only paused VMs), destroy, close the fd.
   * The console log stays for reading after the VM is gone, unless `rollback`: a create
   * that failed half-way must leave nothing behind.
   */
  async destroy(
    name: string,
    options: { keepJournal?: boolean; rollback?: boolean } = {},
  ): Promise<{ name: string; vmid: number } | ForgottenVm> {
    // a VM only journaled: destroying it is forgetting its spec
    if (!this.vms.has(name) && !options.rollback && this.opts.journal.get(name))
      return this.forget(name)
    const vm = this.vm(name)
    // A.3: DESTROY needs PAUSED; PAUSE takes a created VM there too (as create's rollback does)
    if (vm.state !== 'paused') {
      await this.ioctl(vm, Ioctl.PAUSE_VM)
      vm.state = 'paused'
    }
    await this.ioctl(vm, Ioctl.DESTROY_VM)
    vm.client.stop()
    await vm.client.done
    for (const e of vm.ioeventfds) await this.proc.close(e.efd).catch(() => {})
    for (const q of vm.irqfds) await this.proc.close(q.efd).catch(() => {})
    await this.proc.close(vm.fd).catch(() => {})
    await this.unmap(vm.ioreqBuf, PAGE_SIZE)
    await this.unmap(vm.monitorPage, PAGE_SIZE)
    for (const seg of vm.memsegs) if (seg.type === 'ram') await this.unmap(seg.vma, seg.size)
    await vm.console.close()
    if (options.rollback) {
      try {
        unlinkSync(vm.console.path)
      } catch {
        // already gone
      }
    }
    this.vms.delete(name)
    this.opts.onVmDestroyed?.(vm.vmid)
    if (!options.keepJournal) this.opts.journal.remove(name)
    return { name, vmid: vm.vmid }
  }

  /** Remove a journal entry (virsh undefine): one only journaled, corrupt or not. */
  forget(name: string): ForgottenVm {
    if (this.vms.has(name)) {
      throw new ConflictError(
        `'${name}' runs in hsmd; forgetting its spec would leave it running unjournaled`,
        `\`hsmctl vm destroy ${name}\` destroys it and forgets its spec`,
      )
    }
    const entry = this.opts.journal.get(name)
    if (!entry) throw new NotFoundError(`nothing is journaled as '${name}'`, 'see `hsmctl vm list`')
    this.opts.journal.remove(name)
    return { name, state: journalState(entry), file: entry.file }
  }

  /** Daemon stop: every VM paused and destroyed; the journal keeps their specs. */
  async shutdown(): Promise<void> {
    for (const name of [...this.vms.keys()]) {
      await this.destroy(name, { keepJournal: true }).catch(() => {})
    }
  }

  async setRegs(name: string, regs: RegsSpec): Promise<VmDetails> {
    const vm = this.vm(name)
    if (regs.vcpu >= vm.vcpuNum) {
      throw new UsageError(`vCPU ${regs.vcpu} does not exist`, {
        flag: '--vcpu',
        hint: `'${name}' has ${vm.vcpuNum} vCPU${vm.vcpuNum === 1 ? '' : 's'} (0..${vm.vcpuNum - 1})`,
      })
    }
    if (regs.preset === 'long-mode' && regs.cr3 === undefined) {
      throw new UsageError('the long-mode preset needs the guest’s page tables', {
        flag: '--cr3',
        hint: 'give --cr3 GPA of a PML4 your payload holds (identity-mapping the code it runs)',
      })
    }
    const base =
      regs.preset === 'protected-mode'
        ? protectedModeRegs(regs.rip ?? 0n)
        : regs.preset === 'long-mode'
          ? longModeRegs(regs.rip ?? 0n)
          : realModeRegs(regs.rip ?? 0n)
    const value = {
      vcpu_id: regs.vcpu,
      vcpu_regs: {
        ...base,
        ...(regs.cr0 !== undefined ? { cr0: regs.cr0 } : {}),
        ...(regs.cr3 !== undefined ? { cr3: regs.cr3 } : {}),
        ...(regs.cr4 !== undefined ? { cr4: regs.cr4 } : {}),
        gprs: { rsp: regs.rsp ?? 0n },
      },
    }
    await this.ioctl(vm, Ioctl.SET_VCPU_REGS, encode(S.acrn_vcpu_regs, value))
    vm.regs = [...vm.regs.filter((r) => r.vcpu !== regs.vcpu), regs]
    this.save(vm)
    return this.show(name)
  }

  // --- memory ---------------------------------------------------------------------

  /**
   * `flag` names what asked for the size (`--memory`, `--size`, a spec file's entry), so
   * that a size the daemon cannot map is reported against it.
   */
  async memsegSet(
    name: string,
    seg: MemsegSpec,
    payload?: Uint8Array,
    options: { flag?: string } = {},
  ): Promise<MemsegInfo> {
    const vm = this.vm(name)
    if (payload && seg.type !== 'ram')
      throw new UsageError('only RAM segments load a payload', { flag: '--file' })
    if (payload && BigInt(payload.byteLength) > seg.size) {
      throw new UsageError(`the payload (${payload.byteLength} bytes) is larger than the segment`, {
        flag: '--file',
      })
    }
    let info: MemsegInfo
    if (seg.type === 'ram') {
      // RAM is Service-VM memory the kernel pins and maps into the guest (§3.4 B)
      const vma = await this.mapRam(seg.size, options.flag)
      try {
        if (payload) await this.proc.write(vma, payload)
        const memmap = encode(S.acrn_vm_memmap, {
          type: Memmap.RAM,
          attr: seg.access,
          user_vm_pa: seg.gpa,
          vma_base: vma,
          len: seg.size,
        })
        await this.ioctl(vm, Ioctl.SET_MEMSEG, memmap)
      } catch (e) {
        // the kernel did not pin it (§3.4): nobody else has it
        await this.unmap(vma, seg.size)
        throw e
      }
      info = { ...seg, vma }
    } else {
      if (seg.hpa === undefined)
        throw new UsageError('an MMIO segment needs --hpa', { flag: '--hpa' })
      const memmap = encode(S.acrn_vm_memmap, {
        type: Memmap.MMIO,
        attr: seg.access,
        user_vm_pa: seg.gpa,
        service_vm_pa: seg.hpa,
        len: seg.size,
      })
      await this.ioctl(vm, Ioctl.SET_MEMSEG, memmap)
      info = { ...seg }
    }
    vm.memsegs.push(info)
    this.save(vm)
    return info
  }

  /**
   * The daemon's memory behind a RAM segment. When the process cannot map that much, say
   * which process, how much was asked for (by `flag`) and, when known, how much it can map.
   */
  private async mapRam(size: bigint, flag: string | undefined): Promise<bigint> {
    const tooLarge = () => {
      const platform = this.opts.platform
      const who =
        platform.backend === 'sim' ? 'the simulated Service-VM process (hsmd)' : 'hsm-helper'
      const limit = platform.mmapLimit?.()
      // whole MiB read better than an exact byte count, and stay below the limit
      const mib = 1n << 20n
      const room = limit !== undefined && limit >= mib ? (limit / mib) * mib : limit
      const smaller = flag ? `a smaller ${flag}` : 'a smaller size'
      return new HsmError(
        'mmap',
        Errno.ENOMEM,
        room !== undefined
          ? `ask for ${smaller}: at most ${formatSize(room)} can be mapped now`
          : `ask for ${smaller}: the RAM must fit in the host's free memory`,
        `${who} could not map ${formatSize(size)} for the guest's RAM`,
        flag,
      )
    }
    // more than any address space holds: what mmap(2) says to it too
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw tooLarge()
    try {
      // at least one byte: a zero-length segment is the kernel's EINVAL to report (§3.4), not mmap's
      return await this.proc.mmap(Math.max(Number(size), 1))
    } catch (e) {
      if (e instanceof HsmError && e.errno === Errno.ENOMEM) throw tooLarge()
      throw e
    }
  }

  /** UNSET_MEMSEG as the kernel does it: MMIO only; RAM gets the kernel's EINVAL (§3.5). */
  async memsegUnset(
    name: string,
    seg: { gpa: bigint; size: bigint; type: 'ram' | 'mmio' },
  ): Promise<MemsegInfo> {
    const vm = this.vm(name)
    const memmap = encode(S.acrn_vm_memmap, {
      type: seg.type === 'ram' ? Memmap.RAM : Memmap.MMIO,
      user_vm_pa: seg.gpa,
      len: seg.size,
    })
    await this.ioctl(vm, Ioctl.UNSET_MEMSEG, memmap)
    const index = vm.memsegs.findIndex(
      (m) => m.type === 'mmio' && m.gpa === seg.gpa && m.size === seg.size,
    )
    const [removed] = index >= 0 ? vm.memsegs.splice(index, 1) : [{ ...seg, access: 0 }]
    this.save(vm)
    return removed!
  }

  /**
   * The guest address map: segments, pass-through BARs and ioeventfd ranges. A BAR sits
   * at the address ASSIGN_PCIDEV passed in `bar[]` (the host's) until the guest moves it.
   */
  async memsegList(name: string) {
    const vm = this.vm(name)
    const ptdevBars: {
      phys: number
      virt: number
      index: number
      kind: string
      gpa: bigint
      hpa: bigint
      size: bigint
    }[] = []
    for (const p of vm.ptdevs) {
      for (const b of (await this.hostDevice(p.phys))?.bars ?? []) {
        ptdevBars.push({
          phys: p.phys,
          virt: p.virt,
          index: b.index,
          kind: b.kind,
          gpa: b.base,
          hpa: b.base,
          size: b.size,
        })
      }
    }
    return {
      memsegs: vm.memsegs,
      ptdevBars,
      ioeventfds: vm.ioeventfds.map(({ efd: _efd, ...e }) => e),
    }
  }

  // --- devices --------------------------------------------------------------------

  private async hostDevice(bdf: number): Promise<HostPciDevice | undefined> {
    return (await this.opts.platform.inventory()).pci.find((d) => d.bdf === bdf)
  }

  private pcidev(ptdev: PtdevSpec, host: HostPciDevice | undefined): Uint8Array {
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

  async ptdevAssign(name: string, ptdev: PtdevSpec): Promise<PtdevInfo> {
    const vm = this.vm(name)
    if (vm.ptdevs.some((p) => p.phys === ptdev.phys)) {
      throw new ConflictError(`that device is already assigned to '${name}'`)
    }
    await this.ioctl(vm, Ioctl.ASSIGN_PCIDEV, this.pcidev(ptdev, await this.hostDevice(ptdev.phys)))
    const info: PtdevInfo = { ...ptdev }
    vm.ptdevs.push(info)
    this.save(vm)
    return info
  }

  async ptdevDeassign(name: string, phys: number): Promise<PtdevInfo> {
    const vm = this.vm(name)
    const known = vm.ptdevs.find((p) => p.phys === phys)
    const ptdev = known ?? { phys, virt: phys, quirk: false }
    await this.ioctl(vm, Ioctl.DEASSIGN_PCIDEV, this.pcidev(ptdev, await this.hostDevice(phys)))
    vm.ptdevs = vm.ptdevs.filter((p) => p.phys !== phys)
    this.save(vm)
    return ptdev
  }

  async ptdevIntr(
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
    const vm = this.vm(name)
    const ptdev = vm.ptdevs.find((p) => p.phys === intr.phys)
    const virt = intr.virt ?? ptdev?.virt ?? intr.phys
    const host = await this.hostDevice(intr.phys)
    const physPin = intr.physPin ?? host?.intxGsi ?? 0
    const irq = encode(S.acrn_ptdev_irq, {
      type: { intx: 0, msi: 1, msix: 2 }[intr.type],
      virt_bdf: virt,
      phys_bdf: intr.phys,
      intx: { virt_pin: intr.virtPin ?? 0, phys_pin: physPin, is_pic_pin: intr.picPin ? 1 : 0 },
    })
    await this.ioctl(vm, set ? Ioctl.SET_PTDEV_INTR : Ioctl.RESET_PTDEV_INTR, irq)
    if (ptdev) {
      if (set)
        ptdev.intr = {
          type: intr.type,
          virtPin: intr.virtPin ?? 0,
          physPin,
          picPin: intr.picPin ?? false,
        }
      else delete ptdev.intr
      this.save(vm)
      return ptdev
    }
    return { phys: intr.phys }
  }

  ptdevList(name?: string) {
    const vms = name === undefined ? [...this.vms.values()] : [this.vm(name)]
    return vms.flatMap((vm) => vm.ptdevs.map((p) => ({ vm: vm.name, ...p })))
  }

  async mmiodev(name: string, assign: boolean, dev: MmiodevInfo): Promise<MmiodevInfo> {
    const vm = this.vm(name)
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
    await this.ioctl(vm, assign ? Ioctl.ASSIGN_MMIODEV : Ioctl.DEASSIGN_MMIODEV, bytes)
    if (assign) vm.mmiodevs.push(dev)
    else vm.mmiodevs = vm.mmiodevs.filter((m) => m.devName !== dev.devName)
    this.save(vm)
    return dev
  }

  async vdev(
    name: string,
    create: boolean,
    dev: VdevInfo & { args?: Uint8Array },
  ): Promise<VdevInfo> {
    const vm = this.vm(name)
    const bytes = encode(S.acrn_vdev, {
      id: { fields: { vendor: dev.vendor, device: dev.device, legacy_id: dev.legacyId } },
      slot: dev.slot,
      io_addr: dev.ioAddr,
      io_size: dev.ioSize,
      ...(dev.args ? { args: dev.args } : {}),
    })
    await this.ioctl(vm, create ? Ioctl.CREATE_VDEV : Ioctl.DESTROY_VDEV, bytes)
    const { args: _args, ...info } = dev
    if (create) vm.vdevs.push(info)
    else
      vm.vdevs = vm.vdevs.filter(
        (v) => !(v.slot === dev.slot && v.vendor === dev.vendor && v.device === dev.device),
      )
    this.save(vm)
    return info
  }

  // --- ioeventfd and irqfd -------------------------------------------------------------

  async ioeventfdAdd(name: string, spec: IoeventfdSpec): Promise<IoeventfdInfo> {
    const vm = this.vm(name)
    const efd = await this.proc.eventfd(0)
    const flags =
      (spec.pio ? IoeventfdFlag.PIO : 0) |
      (spec.datamatch !== undefined ? IoeventfdFlag.DATAMATCH : 0)
    try {
      await this.ioctl(
        vm,
        Ioctl.IOEVENTFD,
        encode(S.acrn_ioeventfd, {
          fd: efd,
          flags,
          addr: spec.addr,
          len: spec.len,
          data: spec.datamatch ?? 0n,
        }),
      )
    } catch (e) {
      await this.proc.close(efd).catch(() => {})
      throw e
    }
    const info = { ...spec, id: vm.nextId++, signals: 0n, efd }
    vm.ioeventfds.push(info)
    this.save(vm)
    const { efd: _efd, ...out } = info
    return out
  }

  async ioeventfdRemove(name: string, id: number): Promise<IoeventfdInfo> {
    const vm = this.vm(name)
    const entry = vm.ioeventfds.find((e) => e.id === id)
    if (!entry)
      throw new NotFoundError(
        `'${name}' has no ioeventfd ${id}`,
        `see \`hsmctl ioeventfd list ${name}\``,
      )
    await this.ioctl(
      vm,
      Ioctl.IOEVENTFD,
      encode(S.acrn_ioeventfd, {
        fd: entry.efd,
        flags: IoeventfdFlag.DEASSIGN | (entry.pio ? IoeventfdFlag.PIO : 0),
        addr: entry.addr,
        len: entry.len,
      }),
    )
    await this.drain(entry)
    await this.proc.close(entry.efd).catch(() => {})
    vm.ioeventfds = vm.ioeventfds.filter((e) => e !== entry)
    this.save(vm)
    const { efd: _efd, ...out } = entry
    return out
  }

  private async drain(entry: { efd: number; signals: bigint }) {
    try {
      entry.signals += await this.proc.eventfdRead(entry.efd)
    } catch (e) {
      if (!(e instanceof HsmError && e.errno === Errno.EAGAIN)) throw e
    }
  }

  async ioeventfdList(name: string): Promise<IoeventfdInfo[]> {
    const vm = this.vm(name)
    for (const e of vm.ioeventfds) await this.drain(e)
    return vm.ioeventfds.map(({ efd: _efd, ...e }) => e)
  }

  async irqfdAdd(name: string, spec: IrqfdSpec): Promise<IrqfdInfo> {
    const vm = this.vm(name)
    const efd = await this.proc.eventfd(0)
    try {
      await this.ioctl(
        vm,
        Ioctl.IRQFD,
        encode(S.acrn_irqfd, { fd: efd, msi: { msi_addr: spec.msiAddr, msi_data: spec.msiData } }),
      )
    } catch (e) {
      await this.proc.close(efd).catch(() => {})
      throw e
    }
    const info = { ...spec, id: vm.nextId++, signals: 0, efd }
    vm.irqfds.push(info)
    this.save(vm)
    const { efd: _efd, ...out } = info
    return out
  }

  private irqfd(vm: ManagedVm, id: number) {
    const entry = vm.irqfds.find((q) => q.id === id)
    if (!entry)
      throw new NotFoundError(
        `'${vm.name}' has no irqfd ${id}`,
        `see \`hsmctl irqfd list ${vm.name}\``,
      )
    return entry
  }

  async irqfdRemove(name: string, id: number): Promise<IrqfdInfo> {
    const vm = this.vm(name)
    const entry = this.irqfd(vm, id)
    await this.ioctl(
      vm,
      Ioctl.IRQFD,
      encode(S.acrn_irqfd, { fd: entry.efd, flags: IrqfdFlag.DEASSIGN }),
    )
    await this.proc.close(entry.efd).catch(() => {})
    vm.irqfds = vm.irqfds.filter((q) => q !== entry)
    this.save(vm)
    const { efd: _efd, ...out } = entry
    return out
  }

  /** Write 1 to the irqfd's eventfd: the kernel injects its MSI once per write (§6.3). */
  async irqfdSignal(name: string, id: number, count = 1): Promise<IrqfdInfo> {
    const vm = this.vm(name)
    const entry = this.irqfd(vm, id)
    for (let i = 0; i < count; i++) {
      await this.proc.eventfdWrite(entry.efd, 1n)
      entry.signals++
    }
    const { efd: _efd, ...out } = entry
    return out
  }

  irqfdList(name: string): IrqfdInfo[] {
    return this.vm(name).irqfds.map(({ efd: _efd, ...q }) => q)
  }

  // --- interrupts -------------------------------------------------------------------

  async injectMsi(name: string, msi: { addr: bigint; data: bigint }) {
    const vm = this.vm(name)
    await this.ioctl(
      vm,
      Ioctl.INJECT_MSI,
      encode(S.acrn_msi_entry, { msi_addr: msi.addr, msi_data: msi.data }),
    )
    return { name, msiAddr: msi.addr, msiData: msi.data }
  }

  async setIrqline(name: string, gsi: number, op: GsiOpName) {
    const vm = this.vm(name)
    const code = GSI_OPS[op]
    if (code === undefined)
      throw new UsageError(`'${op}' is not a GSI operation`, {
        flag: '--op',
        hint: Object.keys(GSI_OPS).join(', '),
      })
    // SET_IRQLINE takes the value itself: gsi in bits 31:0, op in 63:32 (§7.1)
    await this.ioctl(vm, Ioctl.SET_IRQLINE, (BigInt(code) << 32n) | BigInt(gsi >>> 0))
    return { name, gsi, op }
  }

  /** Interrupt counts of the VM's pass-through devices, or set the injection delay (§7.3). */
  async intrMonitor(name: string, delayMs?: number) {
    const vm = this.vm(name)
    vm.monitorPage ??= await this.proc.mmap(PAGE_SIZE)
    const request =
      delayMs === undefined
        ? { cmd: IntrMonitorCmd.GET_DATA, buf_cnt: INTR_MONITOR_BUFFER_MAX }
        : { cmd: IntrMonitorCmd.DELAY_INT, buf_cnt: 1, buffer: [BigInt(delayMs)] }
    await this.proc.write(vm.monitorPage, encode(S.acrn_intr_monitor, request))
    await this.ioctl(vm, Ioctl.VM_INTR_MONITOR, vm.monitorPage)
    if (delayMs !== undefined)
      return { name, delayMs, interrupts: [] as { pirq: bigint; count: bigint }[] }
    const page = decode(
      S.acrn_intr_monitor,
      await this.proc.read(vm.monitorPage, S.acrn_intr_monitor.size),
    )
    const buffer = page.buffer as bigint[]
    const interrupts: { pirq: bigint; count: bigint }[] = []
    for (let i = 0; i + 1 < (page.buf_cnt as number); i += 2)
      interrupts.push({ pirq: buffer[i]!, count: buffer[i + 1]! })
    return { name, interrupts }
  }

  // --- I/O requests and power management ------------------------------------------------

  async ioreqClear(name: string) {
    const vm = this.vm(name)
    await this.ioctl(vm, Ioctl.CLEAR_VM_IOREQ)
    return { name }
  }

  ioreqClients(name: string): IoreqClientInfo[] {
    const vm = this.vm(name)
    return [
      {
        name: 'acrndm',
        kind: 'default',
        owner: `hsmd pid ${process.pid}`,
        handled: vm.client.stats.handled,
        wakeups: vm.client.stats.wakeups,
      },
      // HSM creates it with every VM (§2.2); it serves the ioeventfd ranges (§5)
      {
        name: `ioeventfd-${vm.vmid}`,
        kind: 'kernel',
        owner: 'kernel',
        ranges: vm.ioeventfds.length,
      },
    ]
  }

  /** Px or Cx data of a vCPU: the count, then every entry or the one asked for (§7.8). */
  async pm(name: string, kind: 'px' | 'cx', vcpu: number, index?: number) {
    const vm = this.vm(name)
    const cmd = (type: number, i: number) =>
      (BigInt(vm.vmid & 0xff) << 24n) |
      (BigInt(vcpu & 0xff) << 16n) |
      (BigInt(i & 0xff) << 8n) |
      BigInt(type)
    const call = async (type: number, i: number) => {
      const buf = new Uint8Array(S.acrn_pstate_data.size) // the kernel writes up to 48 bytes back
      new DataView(buf.buffer).setBigUint64(0, cmd(type, i), true)
      await this.ioctl(vm, Ioctl.PM_GET_CPU_STATE, buf)
      return buf
    }
    const countType = kind === 'px' ? PmCmd.GET_PX_CNT : PmCmd.GET_CX_CNT
    const count = Number(new DataView((await call(countType, 0)).buffer).getBigUint64(0, true))
    // Px states are numbered from 0, Cx entries from 1 (§7.8)
    const first = kind === 'px' ? 0 : 1
    const indices =
      index !== undefined ? [index] : Array.from({ length: count }, (_, i) => i + first)
    const states = []
    for (const i of indices) {
      const bytes = await call(kind === 'px' ? PmCmd.GET_PX_DATA : PmCmd.GET_CX_DATA, i)
      states.push({
        index: i,
        ...decode(kind === 'px' ? S.acrn_pstate_data : S.acrn_cstate_data, bytes),
      })
    }
    return { name, vcpu, kind, count, states }
  }

  // --- guest (simulation) ------------------------------------------------------------------

  async guestAccess(
    name: string,
    access: {
      vcpu: number
      type: 'pio' | 'mmio'
      dir: 'read' | 'write'
      addr: bigint
      size: number
      value: bigint
    },
  ) {
    const guestAccess = this.opts.platform.guestAccess
    if (!guestAccess) {
      throw new UsageError('guest access needs the simulation', {
        hint: 'on real hardware the guest itself performs accesses; run the daemon with --backend sim',
      })
    }
    checkAccessSize(access.type, access.size)
    const outside = this.vms.has(name) ? undefined : this.outsideVms().get(name)
    if (outside) {
      // a VM of a program under the device shim: its vCPU traps, that program serves it
      if (outside.state !== 'running') {
        throw new UsageError(`'${name}' is ${outside.state}, not running`, {
          hint: 'the program that holds it starts it',
        })
      }
      const value = await guestAccess.call(this.opts.platform, { vmid: outside.vmid, ...access })
      return { name, ...access, result: value }
    }
    const vm = this.vm(name)
    if (vm.state !== 'running') {
      throw new UsageError(`'${name}' is ${vm.state}, not running`, {
        hint:
          vm.state === 'created'
            ? `start it first: hsmctl vm start ${name}`
            : `a paused VM runs again only after a reset: hsmctl vm reset ${name} --yes, then hsmctl vm start ${name}`,
      })
    }
    if (access.vcpu >= vm.vcpuNum) {
      throw new UsageError(`vCPU ${access.vcpu} does not exist`, {
        flag: '--vcpu',
        hint: `'${name}' has ${vm.vcpuNum} vCPU${vm.vcpuNum === 1 ? '' : 's'} (0..${vm.vcpuNum - 1})`,
      })
    }
    const value = await guestAccess.call(this.opts.platform, { vmid: vm.vmid, ...access })
    return { name, ...access, result: value }
  }

  // --- views ---------------------------------------------------------------------------

  private memory(vm: ManagedVm): bigint {
    return vm.memsegs.filter((m) => m.type === 'ram').reduce((n, m) => n + m.size, 0n)
  }

  /**
   * VMs the hypervisor runs that this daemon does not hold, by name: the one CREATE_VM gave
   * (A.1) when it is free, else `outside-VMID`.
   */
  private outsideVms(entries = this.opts.journal.list()): Map<string, HypervisorVm> {
    const out = new Map<string, HypervisorVm>()
    const own = new Set([...this.vms.values()].map((vm) => vm.vmid))
    const journaled = new Set(entries.map((e) => e.name))
    for (const vm of this.opts.platform.hypervisorVms?.() ?? []) {
      if (own.has(vm.vmid)) continue
      const free = (n: string) => n !== '' && !this.vms.has(n) && !journaled.has(n) && !out.has(n)
      out.set(free(vm.name) ? vm.name : `outside-${vm.vmid}`, vm)
    }
    return out
  }

  list(): VmSummary[] {
    // the journal is read from disk (it may change there): once per list
    const entries = this.opts.journal.list()
    const outside: VmSummary[] = [...this.outsideVms(entries)].map(([name, vm]) => ({
      name,
      vmid: vm.vmid,
      state: vm.state,
      vcpus: vm.vcpus,
      memory: vm.memory,
      owner: 'outside process',
      uptimeSeconds: null,
      ...(vm.holder ? { holder: vm.holder } : {}),
    }))
    const autostart = new Set(entries.filter((e) => e.autostart).map((e) => e.name))
    const live: VmSummary[] = [...this.vms.values()].map((vm) =>
      this.summary(vm, autostart.has(vm.name)),
    )
    const journaled: VmSummary[] = entries
      .filter((e) => !this.vms.has(e.name))
      .map((e) => ({
        name: e.name,
        vmid: null,
        state: journalState(e),
        vcpus: e.spec?.vcpus ?? null,
        memory: (e.spec?.memory ?? [])
          .filter((m) => m.type === 'ram')
          .reduce((n, m) => n + m.size, 0n),
        owner: 'journal',
        uptimeSeconds: null,
        ...(e.error !== undefined ? { problem: e.error } : {}),
        ...(e.incomplete
          ? { problem: 'hsmd stopped while applying this spec; it is journaled as asked' }
          : {}),
        ...(e.autostart ? { autostart: true } : {}),
      }))
    return [...live, ...journaled, ...outside].sort((a, b) => a.name.localeCompare(b.name))
  }

  private summary(vm: ManagedVm, autostart: boolean): VmSummary {
    return {
      name: vm.name,
      vmid: vm.vmid,
      state: vm.state,
      vcpus: vm.vcpuNum,
      memory: this.memory(vm),
      owner: 'hsmd',
      uptimeSeconds: Math.round((Date.now() - vm.createdAt) / 1000),
      ...(autostart ? { autostart: true } : {}),
    }
  }

  /**
   * The simulated hypervisor's view of a VM the platform runs, hsmd's own or another
   * program's (acrn-dm under `sim exec`): its vCPUs, interrupt lines and MSIs.
   */
  hypervisorView(name: string): HypervisorView {
    const vmid = this.vms.get(name)?.vmid ?? this.outsideVms().get(name)?.vmid
    if (vmid === undefined) throw this.notRunning(name)
    return {
      name,
      vmid,
      ...(this.opts.platform.execution ? { execution: this.opts.platform.execution() } : {}),
      ...(this.opts.platform.inspectVm ? { hypervisor: this.opts.platform.inspectVm(vmid) } : {}),
    }
  }

  async show(name: string): Promise<VmDetails> {
    const vm = this.vm(name)
    await vm.console.flush()
    const summary = this.summary(vm, this.opts.journal.get(name)?.autostart === true)
    return {
      ...summary,
      flags: vmFlagNames(vm.flags),
      cpuAffinity: vm.effectiveAffinity,
      ioreqBuf: vm.ioreqBuf,
      memsegs: vm.memsegs,
      regs: vm.regs,
      ptdevs: vm.ptdevs,
      mmiodevs: vm.mmiodevs,
      vdevs: vm.vdevs,
      ioeventfds: await this.ioeventfdList(name),
      irqfds: this.irqfdList(name),
      clients: this.ioreqClients(name),
      console: vm.console.path,
      ...(this.opts.platform.execution ? { execution: this.opts.platform.execution() } : {}),
      ...(this.opts.platform.inspectVm
        ? { hypervisor: this.opts.platform.inspectVm(vm.vmid) }
        : {}),
    }
  }

  async console(
    name: string,
    offset = 0,
  ): Promise<{ name: string; path: string; offset: number; data: string }> {
    const vm = this.vm(name)
    await vm.console.flush()
    const size = vm.console.bytes
    const start = Math.min(Math.max(0, offset), size)
    const data = vm.console.read(start)
    return {
      name,
      path: vm.console.path,
      offset: start + data.byteLength,
      data: data.toString('latin1'),
    }
  }

  // --- specs ------------------------------------------------------------------------------

  /** A live VM's spec, or the journaled spec of one an earlier daemon held. */
  spec(name: string): VmSpec {
    if (!this.vms.has(name)) {
      const journaled = this.opts.journal.get(name)
      if (journaled?.spec) return journaled.spec
    }
    const vm = this.vm(name)
    return {
      name: vm.name,
      ...(vm.requestedVcpus !== undefined
        ? { vcpus: vm.requestedVcpus }
        : vm.cpuAffinity !== 0n
          ? { cpuAffinity: vm.cpuAffinity }
          : {}),
      flags: vm.flags,
      memory: vm.memsegs.map(({ vma: _vma, ...m }) => m),
      regs: vm.regs,
      ptdevs: vm.ptdevs.map((p) => ({ ...p })),
      mmiodevs: vm.mmiodevs.map((m) => ({ devName: m.devName, res: m.res.map((x) => ({ ...x })) })),
      vdevs: vm.vdevs.map((v) => ({ ...v })),
      ioeventfds: vm.ioeventfds.map(({ addr, len, pio, datamatch }) => ({
        addr,
        len,
        pio,
        ...(datamatch !== undefined ? { datamatch } : {}),
      })),
      irqfds: vm.irqfds.map(({ msiAddr, msiData }) => ({ msiAddr, msiData })),
      state: vm.state,
    }
  }

  private save(vm: ManagedVm) {
    if (this.applying.has(vm.name)) return // the spec as asked stays journaled until done
    this.opts.journal.save(this.spec(vm.name))
  }

  /**
   * Create a whole VM from a spec; on any failure the VM is destroyed again and its
   * journal entry is what it was before. While it is built, the journal holds the spec as
   * asked, marked incomplete: hsmd killed half-way leaves that, never a smaller VM that
   * looks whole.
   */
  async apply(spec: VmSpec, readPayload: ReadPayload): Promise<VmDetails> {
    // read payloads first: a missing file must not leave a half-built VM
    const payloads = spec.memory.map((m, i) =>
      m.file !== undefined
        ? readPayload(m.file, { flag: `memory[${i}].file`, maxBytes: m.size })
        : undefined,
    )
    if (this.vms.has(spec.name) || this.applying.has(spec.name)) {
      throw new ConflictError(
        `a VM named '${spec.name}' already exists`,
        'pick another name, or destroy it first',
      )
    }
    const previous = this.opts.journal.get(spec.name)
    this.opts.journal.save(spec, { incomplete: true })
    this.applying.add(spec.name)
    try {
      await this.create({
        name: spec.name,
        ...(spec.vcpus !== undefined ? { vcpus: spec.vcpus } : {}),
        ...(spec.cpuAffinity !== undefined ? { cpuAffinity: spec.cpuAffinity } : {}),
        flags: spec.flags,
      })
      for (const [i, seg] of spec.memory.entries())
        await this.memsegSet(spec.name, seg, payloads[i], { flag: `memory[${i}].size` })
      for (const regs of spec.regs) await this.setRegs(spec.name, regs)
      for (const { intr, ...ptdev } of spec.ptdevs) {
        await this.ptdevAssign(spec.name, ptdev)
        if (intr) {
          await this.ptdevIntr(spec.name, true, {
            type: intr.type,
            phys: ptdev.phys,
            virt: ptdev.virt,
            virtPin: intr.virtPin,
            physPin: intr.physPin,
            picPin: intr.picPin,
          })
        }
      }
      for (const m of spec.mmiodevs) await this.mmiodev(spec.name, true, m)
      for (const v of spec.vdevs) await this.vdev(spec.name, true, v)
      for (const e of spec.ioeventfds) await this.ioeventfdAdd(spec.name, e)
      for (const q of spec.irqfds) await this.irqfdAdd(spec.name, q)
      if (spec.state === 'running' || spec.state === 'paused') await this.start(spec.name)
      if (spec.state === 'paused') await this.pause(spec.name)
    } catch (e) {
      this.applying.delete(spec.name)
      if (this.vms.has(spec.name))
        await this.destroy(spec.name, { rollback: true, keepJournal: true }).catch(() => {})
      try {
        if (previous?.spec) this.opts.journal.restore(previous)
        else this.opts.journal.remove(spec.name)
      } catch {
        // the journal refuses writes now: the error that stopped the apply says more
      }
      throw e
    }
    this.applying.delete(spec.name)
    this.save(this.vms.get(spec.name)!)
    return this.show(spec.name)
  }

  /** A VM the journal holds that hsmd does not run: `vm start` recreates it. */
  journaledOnly(name: string): boolean {
    return (
      !this.vms.has(name) && !this.applying.has(name) && this.opts.journal.get(name) !== undefined
    )
  }

  /**
   * Recreate a journaled VM from its spec (`vm apply NAME`, `vm start NAME`, autostart),
   * an incomplete one from the spec as asked; `state` overrides the journaled state.
   */
  async recreate(
    name: string,
    readPayload: ReadPayload,
    options: { state?: VmRunState } = {},
  ): Promise<VmDetails> {
    if (this.vms.has(name) || this.applying.has(name)) {
      throw new ConflictError(
        `a VM named '${name}' already exists`,
        `it runs in hsmd: see \`hsmctl vm show ${name}\``,
      )
    }
    const entry = this.opts.journal.get(name)
    if (!entry) {
      throw new NotFoundError(
        `nothing is journaled as '${name}'`,
        'see `hsmctl vm list`; `hsmctl vm apply -f FILE` creates a VM from a spec file',
      )
    }
    if (!entry.spec) throw this.notRunning(name)
    return this.apply(
      { ...entry.spec, ...(options.state ? { state: options.state } : {}) },
      readPayload,
    )
  }

  /** Mark a VM, running or only journaled, to be recreated when hsmd starts (or not). */
  setAutostart(name: string, on: boolean): { name: string; autostart: boolean } {
    const entry = this.opts.journal.get(name)
    if (this.vms.has(name) && !this.applying.has(name)) {
      this.opts.journal.save(this.spec(name), { autostart: on })
    } else if (entry?.spec) {
      this.opts.journal.save(entry.spec, { autostart: on, incomplete: entry.incomplete ?? false })
    } else {
      throw this.notRunning(name)
    }
    return { name, autostart: on }
  }

  /** hsmd's start: recreate every VM marked autostart; each result is logged. */
  async autostart(readPayload: ReadPayload, log: (line: string) => void = () => {}): Promise<void> {
    let entries: JournalEntry[]
    try {
      entries = this.opts.journal.list()
    } catch (e) {
      // an unsafe journal dir: logged at load, refused by every command that needs it
      log(`autostart: skipped: ${(e as Error).message}`)
      return
    }
    for (const entry of entries) {
      if (!entry.autostart || this.vms.has(entry.name)) continue
      try {
        const vm = await this.recreate(entry.name, readPayload)
        log(`autostart: recreated ${entry.name} (${vm.state})`)
      } catch (e) {
        const hint = (e as { hint?: string }).hint
        log(
          `autostart: ${entry.name} could not be recreated: ${(e as Error).message}${hint ? ` (${hint})` : ''}`,
        )
      }
    }
  }
}

function journalState(e: JournalEntry): ForgottenVm['state'] {
  return e.error !== undefined ? 'corrupt' : e.incomplete ? 'incomplete' : 'journaled'
}
