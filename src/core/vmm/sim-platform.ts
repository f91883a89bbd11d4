// The simulation as a VM-manager platform: one simulated host per daemon, the daemon as
// its Service-VM process.

import { ConflictError, UsageError } from '../errors.js'
import { createSimPlatform, type SimPlatform, type SimPlatformOptions } from '../sim/platform.js'
import { performance } from 'node:perf_hooks'
import {
  GuestAccessError,
  type LaneTiming,
  PCI_BUS,
  PCI_DEV,
  PCI_FUNC,
  PCI_REG,
  REQ_ADDRESS,
  REQ_DIRECTION,
  REQ_SIZE,
  REQ_VALUE,
  SLOT_KERNEL_HANDLED,
  SLOT_TYPE,
} from '../sim/hypervisor/io.js'
import {
  CLIENT_DEFAULT,
  CLIENT_IOEVENTFD,
  CLIENT_KERNEL,
  pciAddr,
  TYPE_MMIO,
  TYPE_PCICFG,
  TYPE_PIO,
} from '../trace/record.js'
import { MemType } from '../abi/constants.js'
import type { HvVcpu, HvVm } from '../sim/hypervisor/vm.js'
import type { PublishedRequest } from '../trace/hub.js'
import type {
  GuestAccessRequest,
  HostInventoryView,
  HypervisorVm,
  VmmPlatform,
} from './platform.js'

export interface SimVmmPlatform extends VmmPlatform {
  readonly sim: SimPlatform
}

export function isSimPlatform(platform: VmmPlatform): platform is SimVmmPlatform {
  return platform.backend === 'sim' && 'sim' in platform
}

export function simVmmPlatform(options: SimPlatformOptions = {}): SimVmmPlatform {
  const sim = createSimPlatform(options)
  const view: HostInventoryView = {
    pcpus: sim.inventory.pcpus,
    userVmAffinity: sim.inventory.postLaunchedAffinity,
    pci: sim.inventory.pci.map((d) => ({
      bdf: d.bdf,
      vendor: d.vendor,
      device: d.device,
      classCode: d.classCode,
      name: d.name,
      bars: d.bars.map((b) => ({ index: b.index, kind: b.kind, base: b.base, size: b.size })),
      intxPin: d.intxPin,
      intxGsi: d.intxGsi,
      bridge: d.bridge ?? false,
    })),
    mmio: sim.inventory.mmio.map((m) => ({ name: m.name, base: m.base, size: m.size })),
  }
  /** A request in its slot as the trace keeps it (`readValue`: what a read returned). */
  const describe = (
    vm: HvVm,
    vcpu: HvVcpu,
    slot: DataView,
    base: number,
    readValue: bigint,
    lane?: LaneTiming,
  ): PublishedRequest => {
    const type = slot.getUint32(base + SLOT_TYPE, true) // PORTIO/MMIO/PCICFG = TYPE_PIO/MMIO/PCICFG
    const write = slot.getUint32(base + REQ_DIRECTION, true) === 1
    let addr: bigint
    let client = CLIENT_DEFAULT
    if (type === TYPE_PCICFG) {
      addr = pciAddr(
        slot.getUint32(base + PCI_BUS, true),
        slot.getUint32(base + PCI_DEV, true),
        slot.getUint32(base + PCI_FUNC, true),
        slot.getUint32(base + PCI_REG, true),
      )
    } else {
      addr = slot.getBigUint64(base + REQ_ADDRESS, true)
      if (slot.getUint32(base + SLOT_KERNEL_HANDLED, true) !== 0) client = CLIENT_IOEVENTFD
      // 0xCF8, and 0xCFC..0xCFF while config access is off, stay PORTIO: HSM completed them (§4.6)
      else if (type === TYPE_PIO && (addr === 0xcf8n || (addr >= 0xcfcn && addr <= 0xcffn)))
        client = CLIENT_KERNEL
    }
    const written =
      type === TYPE_MMIO
        ? slot.getBigUint64(base + REQ_VALUE, true)
        : BigInt(slot.getUint32(base + REQ_VALUE, true))
    return {
      vmid: vm.vmid,
      vcpu: vcpu.id,
      type,
      write,
      client,
      // A lane request's size is its slot's (the model never held it).
      size: lane ? slot.getUint32(base + REQ_SIZE, true) : vcpu.busySize,
      addr,
      value: write ? written : readValue,
      latencyNs: lane ? (lane.done - lane.since) * 1e6 : (performance.now() - vcpu.busySince) * 1e6,
      t: lane ? lane.since : vcpu.busySince,
    }
  }
  const hsmd = sim.spawn()
  return {
    backend: 'sim',
    sim,
    process: hsmd,
    inventory: () => Promise.resolve(view),
    mmapLimit: () => BigInt(hsmd.mm.available()),
    async guestAccess(request: GuestAccessRequest): Promise<bigint> {
      try {
        return await sim.guestAccess(request)
      } catch (e) {
        if (!(e instanceof GuestAccessError)) throw e
        if (e.reason === 'busy') {
          throw new ConflictError(
            e.message,
            'the vCPU is waiting for an earlier request; see `hsmctl vm show`',
          )
        }
        throw new UsageError(e.message, {
          hint: e.reason === 'not-running' ? 'start the VM first: hsmctl vm start NAME' : undefined,
        })
      }
    },
    traceRequests(sink) {
      sim.observeCompletions((vm, vcpu, slot, base, readValue, lane) =>
        sink(describe(vm, vcpu, slot, base, readValue, lane)),
      )
    },
    outstandingRequests() {
      const pending: PublishedRequest[] = []
      sim.outstandingRequests((vm, vcpu, slot, base) =>
        pending.push({ ...describe(vm, vcpu, slot, base, 0n), latencyNs: 0 }),
      )
      return pending
    },
    execution: () => sim.inspect.cpu(),
    inspectVm(vmid: number) {
      const inspect = sim.inspect
      const vm = inspect.vm(vmid)
      if (!vm) return undefined
      const execution = inspect.vcpuExecution(vmid)
      const positions = inspect.vcpuPositions(vmid)
      const executionError = inspect.executionError(vmid)
      return {
        state: vm.state,
        pollingMode: vm.pollingMode,
        vcpus: vm.vcpus.map((v, i) => ({
          ...v,
          execution: execution[i] && {
            ...execution[i],
            ...(positions[i] ? { at: positions[i] } : {}),
          },
        })),
        ...(executionError ? { executionError } : {}),
        ...(inspect.lane(vmid) ? { lane: true } : {}),
        ept: inspect.ept(vmid),
        gsi: inspect.gsi(vmid),
        msi: inspect.msi(vmid),
        slots: inspect.ioreqSlots(vmid),
      }
    },
    hypervisorVms(): HypervisorVm[] {
      return sim.inspect.vms().flatMap((vm) =>
        vm.state === 'powered-off'
          ? []
          : [
              {
                vmid: vm.vmid,
                name: vm.name,
                state: vm.state,
                vcpus: vm.vcpuNum,
                // RAM is mapped write-back (§3.4), MMIO uncached (§3.3)
                memory: sim.inspect
                  .ept(vm.vmid)
                  .filter((r) => (r.attr & MemType.WB) !== 0)
                  .reduce((n, r) => n + r.size, 0n),
              },
            ],
      )
    },
  }
}
