// The simulation as a VM-manager platform: one simulated host per daemon, the daemon as
// its Service-VM process.

import { ConflictError, UsageError } from '../errors.js'
import { createSimPlatform, type SimPlatform, type SimPlatformOptions } from '../sim/platform.js'
import { GuestAccessError } from '../sim/hypervisor/io.js'
import type { GuestAccessRequest, HostInventoryView, VmmPlatform } from './platform.js'

export interface SimVmmPlatform extends VmmPlatform {
  readonly sim: SimPlatform
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
  return {
    backend: 'sim',
    sim,
    process: sim.spawn(),
    inventory: () => Promise.resolve(view),
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
    inspectVm(vmid: number) {
      const inspect = sim.inspect
      const vm = inspect.vm(vmid)
      if (!vm) return undefined
      return {
        state: vm.state,
        pollingMode: vm.pollingMode,
        vcpus: vm.vcpus,
        ept: inspect.ept(vmid),
        gsi: inspect.gsi(vmid),
        msi: inspect.msi(vmid),
        slots: inspect.ioreqSlots(vmid),
      }
    },
  }
}
