// hsmd's own VMs: one /dev/acrn_hsm fd each, held by the daemon, which is each VM's
// default ioreq client; their specs are journaled as they change. Every verb's module
// (lifecycle.ts, memory.ts, assigned-devices.ts, ioeventfd.ts, irqfd.ts, interrupts.ts,
// ...) finds a VM here by name and runs its ioctls through `ioctl`, which hints at why
// the HSM refused.

import { UsageError } from '../../errors.js'
import type { EventBus } from '../../daemon/events.js'
import type { HsmProcess } from '../../hsm-process.js'
import type { TraceHub } from '../../trace/hub.js'
import type { PtdevInfo, MmiodevInfo, VdevInfo } from '../assigned-devices.js'
import type { ConsoleLog } from '../console-log.js'
import type { DeviceModels } from '../devices/models.js'
import { withHint } from '../hints.js'
import type { DefaultIoreqClient } from '../ioreq-client.js'
import type { IoeventfdInfo } from '../ioeventfd.js'
import type { IrqfdInfo } from '../irqfd.js'
import type { Journal, JournalEntry } from '../journal.js'
import type { VmSummary } from '../listing.js'
import type { MemsegInfo } from '../memory.js'
import type { VmmPlatform } from '../platform.js'
import type { RegsSpec, VmRunState, VmSpec } from '../spec.js'
import { VmEvents } from '../vm-events.js'
import { notRunning } from './journaled.js'
import type { RunningVm, VmOwner } from './owner.js'

export interface VmManagerOptions {
  platform: VmmPlatform
  journal: Journal
  /** Where the default clients publish what they handle; none when the platform traces. */
  trace?: TraceHub
  stateDir: string
  /** Told when a VM is destroyed: its vmid may be reused (the trace forgets its rows). */
  onVmDestroyed?: (vmid: number) => void
  /** Where every change is told (`hsmctl events`). */
  events?: EventBus
}

/** One of hsmd's VMs: its fd, what the hypervisor gave it, and what was done to it. */
export interface HsmdVm {
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

export class HsmdVms implements VmOwner {
  readonly kind = 'hsmd'
  private readonly vms = new Map<string, HsmdVm>()
  /** VMs `apply` is building: their journal entry is the spec as asked, until done. */
  readonly applying = new Set<string>()
  readonly proc: HsmProcess
  /** One call per change, after its ioctl succeeded (vm-events.ts). */
  readonly events: VmEvents

  constructor(readonly opts: VmManagerOptions) {
    this.proc = opts.platform.process
    this.events = new VmEvents(opts.events)
  }

  get platform(): VmmPlatform {
    return this.opts.platform
  }

  get journal(): Journal {
    return this.opts.journal
  }

  has(name: string): boolean {
    return this.vms.has(name)
  }

  find(name: string): HsmdVm | undefined {
    return this.vms.get(name)
  }

  /** The VM named so, or the error saying why no such VM runs in hsmd. */
  get(name: string): HsmdVm {
    const vm = this.vms.get(name)
    if (vm) return vm
    throw notRunning(this.opts.journal, name)
  }

  add(vm: HsmdVm) {
    this.vms.set(vm.name, vm)
  }

  delete(name: string) {
    this.vms.delete(name)
  }

  names(): string[] {
    return [...this.vms.keys()]
  }

  all(): HsmdVm[] {
    return [...this.vms.values()]
  }

  /** Run one ioctl on a VM's fd; a refusal carries the hint for its ioctl and errno. */
  async ioctl(vm: HsmdVm | number, request: number, arg?: Uint8Array | bigint, name?: string) {
    const fd = typeof vm === 'number' ? vm : vm.fd
    try {
      return await this.proc.ioctl(fd, request, arg)
    } catch (e) {
      if (typeof vm === 'number') throw withHint(e, name)
      throw withHint(e, name ?? vm.name, vm.state)
    }
  }

  /**
   * Give back memory the daemon mapped for a VM, once the VM no longer pins it (it was
   * destroyed, or never got it): hsmd lives long, and a mapping is host memory.
   */
  async unmap(address: bigint | undefined, size: bigint | number): Promise<void> {
    if (address === undefined) return
    await this.proc.munmap(address, Math.max(Number(size), 1)).catch(() => {})
  }

  /** Journal a VM's spec as it is now, unless `apply` is still building it. */
  save(vm: HsmdVm) {
    if (this.applying.has(vm.name)) return // the spec as asked stays journaled until done
    this.opts.journal.save(this.spec(vm))
  }

  /** A live VM's spec: what `vm dump` prints and the journal keeps. */
  spec(vm: HsmdVm): VmSpec {
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

  /** RAM mapped into the guest. */
  memory(vm: HsmdVm): bigint {
    return vm.memsegs.filter((m) => m.type === 'ram').reduce((n, m) => n + m.size, 0n)
  }

  summary(vm: HsmdVm, autostart: boolean): VmSummary {
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

  rows(entries: readonly JournalEntry[]): VmSummary[] {
    const autostart = new Set(entries.filter((e) => e.autostart).map((e) => e.name))
    return this.all().map((vm) => this.summary(vm, autostart.has(vm.name)))
  }

  running(name: string): RunningVm | undefined {
    const vm = this.vms.get(name)
    if (!vm) return undefined
    return {
      vmid: vm.vmid,
      checkGuestAccess: (vcpu) => {
        if (vm.state !== 'running') {
          throw new UsageError(`'${name}' is ${vm.state}, not running`, {
            hint:
              vm.state === 'created'
                ? `start it first: hsmctl vm start ${name}`
                : `a paused VM runs again only after a reset: hsmctl vm reset ${name} --yes, then hsmctl vm start ${name}`,
          })
        }
        checkVcpu(vm, vcpu)
      },
    }
  }
}

/** A vCPU the VM has, else the error naming --vcpu and the VM's vCPUs. */
export function checkVcpu(vm: HsmdVm, vcpu: number) {
  if (vcpu >= vm.vcpuNum) {
    throw new UsageError(`vCPU ${vcpu} does not exist`, {
      flag: '--vcpu',
      hint: `'${vm.name}' has ${vm.vcpuNum} vCPU${vm.vcpuNum === 1 ? '' : 's'} (0..${vm.vcpuNum - 1})`,
    })
  }
}
