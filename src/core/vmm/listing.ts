// What hsmd says of its VMs: `vm list` (every owner's rows), `vm show` of its own, the
// simulated hypervisor's view of any VM it runs, and a VM's console.

import type { MmiodevInfo, PtdevInfo, VdevInfo } from './assigned-devices.js'
import { vmFlagNames } from './flags.js'
import { ioeventfdList, type IoeventfdInfo } from './ioeventfd.js'
import { ioreqClients, type IoreqClientInfo } from './ioreq.js'
import { irqfdList, type IrqfdInfo } from './irqfd.js'
import type { MemsegInfo } from './memory.js'
import type { HsmdVms } from './owners/hsmd.js'
import { findRunning, inLookupOrder, type VmOwners } from './owners/owner.js'
import type { RegsSpec, VmRunState } from './spec.js'

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

/** Every VM hsmd knows of, by name: its own, the journal's, other processes'. */
export function list(owners: VmOwners): VmSummary[] {
  // the journal is read from disk (it may change there): once per list
  const entries = owners.hsmd.journal.list()
  return inLookupOrder(owners)
    .flatMap((owner) => owner.rows(entries))
    .sort((a, b) => a.name.localeCompare(b.name))
}

/**
 * The simulated hypervisor's view of a VM the platform runs, hsmd's own or another
 * program's (acrn-dm under `sim exec`): its vCPUs, interrupt lines and MSIs.
 */
export function hypervisorView(owners: VmOwners, name: string): HypervisorView {
  const vmid = findRunning(inLookupOrder(owners), name)?.vmid
  if (vmid === undefined) throw owners.journaled.notRunning(name)
  const platform = owners.hsmd.platform
  return {
    name,
    vmid,
    ...(platform.execution ? { execution: platform.execution() } : {}),
    ...(platform.inspectVm ? { hypervisor: platform.inspectVm(vmid) } : {}),
  }
}

export async function show(hsmd: HsmdVms, name: string): Promise<VmDetails> {
  const vm = hsmd.get(name)
  const platform = hsmd.platform
  await vm.console.flush()
  const summary = hsmd.summary(vm, hsmd.journal.get(name)?.autostart === true)
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
    ioeventfds: await ioeventfdList(hsmd, name),
    irqfds: irqfdList(hsmd, name),
    clients: ioreqClients(hsmd, name),
    console: vm.console.path,
    ...(platform.execution ? { execution: platform.execution() } : {}),
    ...(platform.inspectVm ? { hypervisor: platform.inspectVm(vm.vmid) } : {}),
  }
}

export async function readConsole(
  hsmd: HsmdVms,
  name: string,
  offset = 0,
): Promise<{ name: string; path: string; offset: number; data: string }> {
  const vm = hsmd.get(name)
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
