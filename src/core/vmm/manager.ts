// The VM manager inside hsmd: the daemon's methods (methods.ts) call it by verb, and it
// hands each verb to the module of its concern, as the kernel's drivers/virt/acrn splits
// them. Every operation is one or a few ioctls through the HsmProcess interface, so it
// behaves the same on both backends; a failed operation rolls back what it did, so
// nothing is left half-made.
//
//   owners/        who holds a VM: hsmd (hsmd.ts), only the journal (journaled.ts),
//                  another process such as acrn-dm (outside.ts), behind owner.ts
//   lifecycle.ts   create, start, pause, reset, destroy, forget, shutdown   (vm.c)
//   memory.ts      memsegSet, memsegUnset, memsegList                       (mm.c)
//   assigned-devices.ts  ptdevAssign/Deassign/Intr/List, mmiodev, vdev     (hsm.c)
//   ioeventfd.ts   ioeventfdAdd, ioeventfdRemove, ioeventfdList             (ioeventfd.c)
//   irqfd.ts       irqfdAdd, irqfdRemove, irqfdSignal, irqfdList            (irqfd.c)
//   interrupts.ts  injectMsi, setIrqline, intrMonitor                       (hsm.c)
//   ioreq.ts       ioreqClear, ioreqClients                                 (ioreq.c)
//   vcpus.ts       setRegs, pm                                              (hsm.c)
//   guest-access.ts  guestAccess (simulation)
//   listing.ts     list, show, hypervisorView, console
//   apply.ts       spec, apply, recreate, journaledOnly, setAutostart, autostart

import * as apply from './apply.js'
import type { ReadPayload } from './apply.js'
import * as devices from './assigned-devices.js'
import type { MmiodevInfo, PtdevInfo, VdevInfo } from './assigned-devices.js'
import { guestAccess } from './guest-access.js'
import * as interrupts from './interrupts.js'
import type { GsiOpName } from './interrupts.js'
import * as ioeventfd from './ioeventfd.js'
import type { IoeventfdInfo } from './ioeventfd.js'
import * as ioreq from './ioreq.js'
import type { IoreqClientInfo } from './ioreq.js'
import * as irqfd from './irqfd.js'
import type { IrqfdInfo } from './irqfd.js'
import * as lifecycle from './lifecycle.js'
import type { CreateOptions, ForgottenVm } from './lifecycle.js'
import * as listing from './listing.js'
import type { HypervisorView, VmDetails, VmSummary } from './listing.js'
import * as memory from './memory.js'
import type { MemsegInfo } from './memory.js'
import { HsmdVms, type VmManagerOptions } from './owners/hsmd.js'
import { JournaledVms } from './owners/journaled.js'
import { OutsideVms } from './owners/outside.js'
import type { VmOwners } from './owners/owner.js'
import type { VmmPlatform } from './platform.js'
import type {
  IoeventfdSpec,
  IrqfdSpec,
  MemsegSpec,
  PtdevSpec,
  RegsSpec,
  VmRunState,
  VmSpec,
} from './spec.js'
import * as vcpus from './vcpus.js'

// the types callers knew from here
export type {
  CreateOptions,
  ForgottenVm,
  GsiOpName,
  HypervisorView,
  IoeventfdInfo,
  IoreqClientInfo,
  IrqfdInfo,
  MemsegInfo,
  MmiodevInfo,
  PtdevInfo,
  ReadPayload,
  VdevInfo,
  VmDetails,
  VmManagerOptions,
  VmSummary,
}

export class VmManager {
  private readonly hsmd: HsmdVms
  private readonly owners: VmOwners

  constructor(opts: VmManagerOptions) {
    const hsmd = new HsmdVms(opts)
    this.hsmd = hsmd
    this.owners = {
      hsmd,
      journaled: new JournaledVms(opts.journal, hsmd),
      outside: new OutsideVms(opts.platform, opts.journal, hsmd),
    }
  }

  get platform(): VmmPlatform {
    return this.hsmd.platform
  }

  // --- lifecycle ------------------------------------------------------------------

  create(options: CreateOptions): Promise<VmDetails> {
    return lifecycle.create(this.hsmd, options)
  }

  start(name: string): Promise<VmDetails> {
    return lifecycle.start(this.hsmd, name)
  }

  pause(name: string): Promise<VmDetails> {
    return lifecycle.pause(this.hsmd, name)
  }

  reset(name: string): Promise<VmDetails> {
    return lifecycle.reset(this.hsmd, name)
  }

  destroy(
    name: string,
    options: { keepJournal?: boolean; rollback?: boolean } = {},
  ): Promise<{ name: string; vmid: number } | ForgottenVm> {
    return lifecycle.destroy(this.hsmd, name, options)
  }

  forget(name: string): ForgottenVm {
    return lifecycle.forget(this.hsmd, name)
  }

  shutdown(): Promise<void> {
    return lifecycle.shutdown(this.hsmd)
  }

  // --- vCPUs ----------------------------------------------------------------------

  setRegs(name: string, regs: RegsSpec): Promise<VmDetails> {
    return vcpus.setRegs(this.hsmd, name, regs)
  }

  pm(name: string, kind: 'px' | 'cx', vcpu: number, index?: number) {
    return vcpus.pm(this.hsmd, name, kind, vcpu, index)
  }

  // --- memory ---------------------------------------------------------------------

  memsegSet(
    name: string,
    seg: MemsegSpec,
    payload?: Uint8Array,
    options: { flag?: string } = {},
  ): Promise<MemsegInfo> {
    return memory.memsegSet(this.hsmd, name, seg, payload, options)
  }

  memsegUnset(
    name: string,
    seg: { gpa: bigint; size: bigint; type: 'ram' | 'mmio' },
  ): Promise<MemsegInfo> {
    return memory.memsegUnset(this.hsmd, name, seg)
  }

  memsegList(name: string) {
    return memory.memsegList(this.hsmd, name)
  }

  // --- devices --------------------------------------------------------------------

  ptdevAssign(name: string, ptdev: PtdevSpec): Promise<PtdevInfo> {
    return devices.ptdevAssign(this.hsmd, name, ptdev)
  }

  ptdevDeassign(name: string, phys: number): Promise<PtdevInfo> {
    return devices.ptdevDeassign(this.hsmd, name, phys)
  }

  ptdevIntr(
    name: string,
    set: boolean,
    intr: Parameters<typeof devices.ptdevIntr>[3],
  ): Promise<PtdevInfo | { phys: number }> {
    return devices.ptdevIntr(this.hsmd, name, set, intr)
  }

  ptdevList(name?: string) {
    return devices.ptdevList(this.hsmd, name)
  }

  mmiodev(name: string, assign: boolean, dev: MmiodevInfo): Promise<MmiodevInfo> {
    return devices.mmiodev(this.hsmd, name, assign, dev)
  }

  vdev(name: string, create: boolean, dev: VdevInfo & { args?: Uint8Array }): Promise<VdevInfo> {
    return devices.vdev(this.hsmd, name, create, dev)
  }

  // --- ioeventfd and irqfd -------------------------------------------------------------

  ioeventfdAdd(name: string, spec: IoeventfdSpec): Promise<IoeventfdInfo> {
    return ioeventfd.ioeventfdAdd(this.hsmd, name, spec)
  }

  ioeventfdRemove(name: string, id: number): Promise<IoeventfdInfo> {
    return ioeventfd.ioeventfdRemove(this.hsmd, name, id)
  }

  ioeventfdList(name: string): Promise<IoeventfdInfo[]> {
    return ioeventfd.ioeventfdList(this.hsmd, name)
  }

  irqfdAdd(name: string, spec: IrqfdSpec): Promise<IrqfdInfo> {
    return irqfd.irqfdAdd(this.hsmd, name, spec)
  }

  irqfdRemove(name: string, id: number): Promise<IrqfdInfo> {
    return irqfd.irqfdRemove(this.hsmd, name, id)
  }

  irqfdSignal(name: string, id: number, count = 1): Promise<IrqfdInfo> {
    return irqfd.irqfdSignal(this.hsmd, name, id, count)
  }

  irqfdList(name: string): IrqfdInfo[] {
    return irqfd.irqfdList(this.hsmd, name)
  }

  // --- interrupts -------------------------------------------------------------------

  injectMsi(name: string, msi: { addr: bigint; data: bigint }) {
    return interrupts.injectMsi(this.hsmd, name, msi)
  }

  setIrqline(name: string, gsi: number, op: GsiOpName) {
    return interrupts.setIrqline(this.hsmd, name, gsi, op)
  }

  intrMonitor(name: string, delayMs?: number) {
    return interrupts.intrMonitor(this.hsmd, name, delayMs)
  }

  // --- I/O requests -----------------------------------------------------------------

  ioreqClear(name: string) {
    return ioreq.ioreqClear(this.hsmd, name)
  }

  ioreqClients(name: string): IoreqClientInfo[] {
    return ioreq.ioreqClients(this.hsmd, name)
  }

  // --- guest (simulation) -------------------------------------------------------------

  guestAccess(name: string, access: Parameters<typeof guestAccess>[2]) {
    return guestAccess(this.owners, name, access)
  }

  // --- views ---------------------------------------------------------------------------

  list(): VmSummary[] {
    return listing.list(this.owners)
  }

  hypervisorView(name: string): HypervisorView {
    return listing.hypervisorView(this.owners, name)
  }

  show(name: string): Promise<VmDetails> {
    return listing.show(this.hsmd, name)
  }

  console(
    name: string,
    offset = 0,
  ): Promise<{ name: string; path: string; offset: number; data: string }> {
    return listing.readConsole(this.hsmd, name, offset)
  }

  // --- specs ------------------------------------------------------------------------------

  spec(name: string): VmSpec {
    return apply.spec(this.hsmd, name)
  }

  apply(spec: VmSpec, readPayload: ReadPayload): Promise<VmDetails> {
    return apply.apply(this.hsmd, spec, readPayload)
  }

  journaledOnly(name: string): boolean {
    return apply.journaledOnly(this.hsmd, name)
  }

  recreate(
    name: string,
    readPayload: ReadPayload,
    options: { state?: VmRunState } = {},
  ): Promise<VmDetails> {
    return apply.recreate(this.hsmd, name, readPayload, options)
  }

  setAutostart(name: string, on: boolean): { name: string; autostart: boolean } {
    return apply.setAutostart(this.hsmd, name, on)
  }

  autostart(readPayload: ReadPayload, log: (line: string) => void = () => {}): Promise<void> {
    return apply.autostart(this.hsmd, readPayload, log)
  }
}
