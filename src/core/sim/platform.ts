// The simulated platform: one ACRN hypervisor on a described host, a Service-VM kernel
// with the HSM module loaded, and processes to drive /dev/acrn_hsm from.
//
//   const platform = createSimPlatform()
//   const proc = platform.spawn()
//   const fd = await proc.open('/dev/acrn_hsm')
//   ...
//   const value = await platform.guestAccess({ vmid, vcpu: 0, type: 'pio', dir: 'read', addr: 0x3f8, size: 1 })
//
// Timing model: a guest access fills its slot and raises the upcall synchronously; the
// upcall queues HSM's dispatch work item, which runs as a microtask. Kernel clients
// (ioeventfd) handle their requests inside that run, and the hypervisor's completion
// (slot FREE, vCPU resumed) happens inside the NOTIFY hypercall, so a write that hits an
// ioeventfd has completed by the time the microtask queue drains. In polling mode the
// vCPU checks its slot once per macrotask. `settle()` waits for all of that.

import type { CpuEngine } from './hypervisor/cpu/engine.js'
import { kvmEngine } from './hypervisor/cpu/kvm.js'
import { Hypervisor } from './hypervisor/hypervisor.js'
import { defineInventory, type HostInventory } from './hypervisor/inventory.js'
import { SLOT_SIZE, type CompletionObserver, type GuestAccess } from './hypervisor/io.js'
import { HsmModule } from './hsm/hsm.js'
import { createInspector, type SimInspector } from './inspect.js'
import { SimKernel } from './kernel/kernel.js'
import { SimProcess, type SpawnOptions } from './kernel/process.js'
import type { CpuChoice } from './hypervisor/vm-execution.js'

function chooseCpu(cpu: 'auto' | 'none' | CpuEngine): CpuChoice {
  if (typeof cpu === 'object') return { engine: cpu }
  if (cpu === 'none') return { reason: 'guest code execution is off (cpu: none)' }
  if (process.env.HSMCTL_CPU === 'none')
    return { reason: 'guest code execution is off (HSMCTL_CPU=none)' }
  return kvmEngine()
}

export interface SimPlatformOptions {
  /** Host inventory fields replacing those of DEFAULT_INVENTORY. */
  readonly inventory?: Partial<HostInventory>
  /**
   * Owner and mode of /dev/acrn_hsm (default root, 0600: what devtmpfs creates, §1.3).
   * A udev rule can change them; HSM itself checks no privilege (§11.2).
   */
  readonly hsmNode?: { readonly uid?: number; readonly mode?: number }
  /**
   * What executes guest code (issue 10): 'auto' (the default) takes KVM where /dev/kvm
   * works, 'none' executes nothing (vCPUs only make the accesses `guestAccess` asks for).
   * `HSMCTL_CPU=none` in the environment makes 'auto' mean 'none'.
   */
  readonly cpu?: 'auto' | 'none' | CpuEngine
}

export interface SimPlatform {
  readonly inventory: HostInventory
  /** A new Service-VM process (root by default). */
  spawn(options?: SpawnOptions): SimProcess
  /**
   * Make a vCPU perform a trapped access. Resolves with the value the guest sees (reads;
   * 0n for writes) once the request has completed and the slot is FREE again. Rejects
   * with GuestAccessError if the VM is not running, the vCPU does not exist or already
   * has a request outstanding, the access is malformed, or the VM is reset or destroyed
   * before it completes. MMIO that hits EPT-mapped memory is served by the hypervisor
   * directly, without an I/O request (A.4).
   */
  guestAccess(access: GuestAccess): Promise<bigint>
  /**
   * A pass-through device raises host GSI `pirq`: counted for the interrupt monitor and
   * pulsed on the owner VM's virtual line. False if no VM has that pin remapped.
   */
  physicalInterrupt(pirq: number): boolean
  /** Wait until queued work has run: dispatch, irqfd shutdowns, one polling round. */
  settle(): Promise<void>
  /** Read-only views of hypervisor state. */
  readonly inspect: SimInspector
  /**
   * Tap every completed I/O request (one observer; null removes it): the daemon's trace.
   * The observer sees the slot before it goes FREE and must not change anything.
   */
  observeCompletions(observer: CompletionObserver | null): void
  /**
   * The requests outstanding now (a vCPU waiting for its slot to complete), each shown to
   * `visit` as a completion observer sees one (the value is 0 for a read): the trace's
   * requests still pending when a recorder stops.
   */
  outstandingRequests(visit: CompletionObserver): void
}

export function createSimPlatform(options: SimPlatformOptions = {}): SimPlatform {
  const inventory = defineInventory(options.inventory)
  const hv = new Hypervisor(inventory, chooseCpu(options.cpu ?? 'auto'))
  const kernel = new SimKernel(hv)
  new HsmModule(kernel, hv, options.hsmNode)
  return Object.freeze({
    inventory,
    spawn: (spawnOptions?: SpawnOptions) => new SimProcess(kernel, spawnOptions),
    guestAccess: (access: GuestAccess) => hv.io.access(access),
    physicalInterrupt: (pirq: number) => hv.passthrough.physicalInterrupt(pirq),
    settle: () => new Promise<void>((resolve) => setImmediate(resolve)),
    inspect: createInspector(hv),
    observeCompletions: (observer: CompletionObserver | null) => {
      hv.io.observer = observer
    },
    outstandingRequests: (visit: CompletionObserver) => {
      for (const vm of hv.userVms()) {
        const page = vm.ioreq
        if (!page) continue
        for (const vcpu of vm.vcpus)
          if (vcpu.busy || vm.lane?.owns(vcpu.id)) visit(vm, vcpu, page.dv, vcpu.id * SLOT_SIZE, 0n)
      }
    },
  })
}
