// VMs hsmd does not make but sees come and go, for the event stream: acrn-dm processes
// (found, as `vm list` finds them, by their monitor sockets `NAME.monitor.PID.socket`
// whose pid is still that acrn-dm) and the VMs of programs under the device shim (the
// simulation names the process holding each). Nothing tells hsmd about them, so it looks:
// at once when the monitor-socket directory changes (inotify), and every POLL_MS in any
// case (the directory may not exist yet, a crashed acrn-dm leaves its socket behind, a
// shimmed program's VM has no file). An outside VM's state changes are reported as seen
// (`created` carries the state it was first seen in); what comes and goes between two
// looks is not seen.

import { watch, type FSWatcher } from 'node:fs'
import { acrnDmProcess } from '../acrn-dm/process.js'
import { holderPid, monitorSockets } from '../acrn-dm/vms.js'
import type { HypervisorVm } from '../vmm/platform.js'
import type { EventBus } from './events.js'

export const POLL_MS = 500

/** An outside VM's new state, as an event's action (A.3: RESET leaves it created). */
const STATE_ACTION: Record<HypervisorVm['state'], string> = {
  running: 'started',
  paused: 'paused',
  created: 'reset',
}

export interface DiscoveryOptions {
  bus: EventBus
  /** acrn-dm's monitor-socket directory (acrnPaths().mngrDir). */
  mngrDir: string
  /** Simulation: every VM the hypervisor has, with the process holding it when known. */
  hypervisorVms?: () => HypervisorVm[]
  pollMs?: number
}

interface SeenDm {
  name: string
  pid: number
  path: string
  /** The VM it holds, once the simulation has said (kept for `gone`: the VM goes first). */
  vmid?: number
}

export class Discovery {
  private readonly dms = new Map<string, SeenDm>()
  /** Outside VMs by vmid: those first seen held by a process (an orphan stays until it goes). */
  private readonly outside = new Map<number, HypervisorVm>()
  private timer: NodeJS.Timeout | undefined
  private watcher: FSWatcher | undefined

  constructor(private readonly o: DiscoveryOptions) {}

  /** Take what is there now as known (not reported), then watch. */
  start(): void {
    this.timer = setInterval(() => this.safely(), this.o.pollMs ?? POLL_MS)
    this.timer.unref()
    this.look(false)
  }

  stop(): void {
    clearInterval(this.timer)
    this.watcher?.close()
    this.watcher = undefined
  }

  /** A look from the timer or the watcher: a failure waits for the next one, hsmd goes on. */
  private safely(): void {
    try {
      this.look(true)
    } catch {
      // /proc or the simulation could not be read this time
    }
  }

  /** One look at acrn-dm's sockets and the hypervisor's VMs; `report` emits the changes. */
  look(report = true): void {
    this.watchDir()
    const listed = this.o.hypervisorVms?.()
    const dms = new Map<string, SeenDm>()
    for (const s of monitorSockets(this.o.mngrDir)) {
      // a socket whose pid is gone, or is another program now, is a crashed acrn-dm's
      if (acrnDmProcess(s.pid, s.name)) dms.set(s.path, s)
    }
    for (const [path, dm] of this.dms) {
      if (dms.has(path)) {
        dm.vmid ??= this.heldBy(dm.pid, listed)
        continue
      }
      this.dms.delete(path)
      if (report) this.emitDm('gone', dm, listed)
    }
    for (const [path, dm] of dms) {
      if (this.dms.has(path)) continue
      this.dms.set(path, dm)
      if (report) this.emitDm('appeared', dm, listed)
    }
    if (!listed) return
    const now = new Map(listed.map((vm) => [vm.vmid, vm]))
    for (const [vmid, vm] of this.outside) {
      const seen = now.get(vmid)
      if (seen) {
        // its state as the hypervisor has it now: one event for where it went, as seen
        const now = {
          ...seen,
          ...((seen.holder ?? vm.holder) ? { holder: seen.holder ?? vm.holder } : {}),
        }
        this.outside.set(vmid, now)
        if (seen.state !== vm.state && report) this.emitVm(STATE_ACTION[seen.state], now)
        continue
      }
      this.outside.delete(vmid)
      if (report) this.emitVm('destroyed', vm)
    }
    for (const [vmid, vm] of now) {
      // hsmd's own VMs have no holder (the manager reports them); an orphan is reported
      // from when it was held
      if (this.outside.has(vmid) || vm.holder === undefined) continue
      this.outside.set(vmid, { ...vm }) // a copy: the next look compares with it
      if (report) this.emitVm('created', vm)
    }
  }

  private heldBy(pid: number, listed: HypervisorVm[] | undefined): number | undefined {
    return listed?.find((vm) => holderPid(vm.holder) === pid)?.vmid
  }

  /** The VM an acrn-dm holds, when the simulation says (acrn-dm under `sim exec`). */
  private emitDm(action: 'appeared' | 'gone', dm: SeenDm, listed?: HypervisorVm[]): void {
    dm.vmid ??= this.heldBy(dm.pid, listed)
    this.o.bus.emit({
      type: 'acrn-dm',
      action,
      vm: dm.name,
      vmid: dm.vmid ?? null,
      attributes: { pid: dm.pid, socket: dm.path },
    })
  }

  private emitVm(action: string, vm: HypervisorVm): void {
    this.o.bus.emit({
      type: 'vm',
      action,
      vm: vm.name === '' ? `outside-${vm.vmid}` : vm.name,
      vmid: vm.vmid,
      attributes: {
        owner: 'outside process',
        ...(vm.holder ? { holder: vm.holder } : {}),
        ...(action === 'created' ? { state: vm.state } : {}),
      },
    })
  }

  /** inotify on the socket directory once it exists: a look at every change in it. */
  private watchDir(): void {
    if (this.watcher || this.timer === undefined) return
    try {
      this.watcher = watch(this.o.mngrDir, { persistent: false }, () => this.safely())
      this.watcher.on('error', () => {
        this.watcher?.close()
        this.watcher = undefined // gone: the poll looks again, and watches it when it is back
      })
    } catch {
      // not there (yet): the poll looks again
    }
  }
}
