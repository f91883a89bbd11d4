// The KVM CPU engine (engine.ts): each vCPU is a KVM vCPU run by its own native thread in
// helper/build/hsm_kvm.node (helper/hsm-kvm-addon.c). An exit reaches JavaScript through
// a 64-byte record per vCPU in memory shared with the addon; while exits keep coming the
// main thread polls those records (a bounded spin in C between event-loop turns, as the
// shim's rings are polled, src/core/native/ring.ts), and when they stop it sleeps until a
// vCPU wakes it (a uv_async).

import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { HELPER_DIR } from '../../../native/preflight.js'
import { spinAllowed } from '../../../native/spin.js'
import { LANE_SLOTS, monotonicToPerf, type IoreqLane } from '../../lane.js'
import type { CpuEngine, CpuExit, CpuVm, CpuVmOptions, MemoryRegion, VcpuStatus } from './engine.js'

/** The exit object of a vCPU, filled again for each of its exits. */
type ExitRecord = { -readonly [K in keyof CpuExit]: CpuExit[K] }

/** An opaque handle of the addon (a Node-API external). */
type VmHandle = { readonly __kvmVm: unique symbol }

interface KvmAddon {
  /** undefined when /dev/kvm is usable, else why not (one line). */
  open(): string | undefined
  /** As u32 words: [0] exits posted so far, [4] the main thread polls. */
  readonly control: ArrayBuffer
  setWake(fn: () => void): void
  setPolling(on: boolean): void
  wait(seen: number, ns: number): boolean
  createVm(vcpus: number): { vm: VmHandle; records: ArrayBuffer }
  setMemory(vm: VmHandle, regions: readonly MemoryRegion[]): void
  setRegs(vm: VmHandle, vcpu: number, regs: Uint8Array): void
  getRegs(vm: VmHandle, vcpu: number): Uint8Array
  run(vm: VmHandle, vcpu: number): void
  pause(vm: VmHandle, vcpu: number): void
  reset(vm: VmHandle): void
  complete(vm: VmHandle, vcpu: number, value: bigint): void
  fault(vm: VmHandle, vcpu: number): string
  injectMsi(vm: VmHandle, addr: bigint, data: number): number
  setIrqLine(vm: VmHandle, gsi: number, level: number): void
  status(vm: VmHandle): VcpuStatus[]
  destroy(vm: VmHandle): void
  /** The lane's page and the ioreq page; returns the completion log. */
  setLane(vm: VmHandle, lane: Uint8Array, ioreq: Uint8Array): ArrayBuffer
  setLaneDispatch(vm: VmHandle, on: boolean): void
  setLaneRoutes(vm: VmHandle, bits: Uint8Array): void
  setLaneJsWaiters(vm: VmHandle, on: boolean): void
  /** slot -1: the lane's bell; else done[slot]. */
  laneSignal(lane: Uint8Array, slot: number): void
}

export const kvmAddonPath = () => join(HELPER_DIR, 'build', 'hsm_kvm.node')

const KVM_DEVICE = '/dev/kvm'

// The exit record (hsm-kvm-addon.c, struct exit_record), in 32-bit words.
const RECORD_WORDS = 16
const REC_POSTED = 1
const REC_TAKEN = 2
const REC_FAULT = 4
const AT_STATE = 0
const AT_KIND = 1
const AT_WRITE = 2
const AT_SIZE = 3
const AT_ADDR = 4
const AT_VALUE64 = 3 // in 64-bit words

// The lane's completion log (hsm-kvm-addon.c): per slot a header of 64 bytes (u32 head,
// u32 tail, u32 lost, u32 armed), then per slot LOG_ENTRIES entries of LOG_ENTRY bytes:
// u64 posted ns, u64 done ns, u64 value, 8 free, the slot's first bytes.
const LOG_ENTRIES = 256
const LOG_ENTRY = 32 + 144
const LOG_HEADERS = LANE_SLOTS * 64
const LOG_SLOT_AT = 32
/** Control word (u32 index): a lane log has completions. */
const CONTROL_LOG_READY = 8
/** How soon after a drain that found completions the logs are drained again. */
const LOG_REDRAIN_MS = 3

let loaded: { addon: KvmAddon } | { reason: string } | undefined

function load(): { addon: KvmAddon } | { reason: string } {
  if (loaded) return loaded
  const path = kvmAddonPath()
  if (process.env.HSMCTL_KVM === '0') loaded = { reason: 'disabled by HSMCTL_KVM=0' }
  else if (!existsSync(KVM_DEVICE))
    loaded = { reason: `${KVM_DEVICE} does not exist (no KVM on this host)` }
  else if (!existsSync(path))
    loaded = { reason: `${path} is not built (make -C helper needs Node.js's node_api.h)` }
  else {
    try {
      const addon = createRequire(import.meta.url)(path) as KvmAddon
      const why = addon.open()
      loaded = why ? { reason: why } : { addon }
    } catch (e) {
      loaded = { reason: `${path} does not load: ${(e as Error).message}` }
    }
  }
  return loaded
}

/** KVM's in-kernel IOAPIC (linux/kvm.h, KVM_IOAPIC_NUM_PINS); the addon routes GSIs 0-23. */
const KVM_IOAPIC_NUM_PINS = 24

/** The KVM engine, or in one line why this host cannot have it. */
export function kvmEngine(): { engine: CpuEngine } | { reason: string } {
  const l = load()
  if ('reason' in l) return l
  const addon = l.addon
  return {
    engine: {
      name: 'kvm',
      ioapicPins: KVM_IOAPIC_NUM_PINS,
      createVm: (options) => new KvmVm(addon, options),
      lanes: { signal: (lane, slot) => addon.laneSignal(lane, slot) },
    },
  }
}

class KvmVm implements CpuVm {
  private readonly handle: VmHandle
  private readonly words: Int32Array
  private readonly longs: BigUint64Array
  /** One exit object per vCPU, filled again for each exit. */
  private readonly exits: ExitRecord[]
  private readonly vcpus: number
  private readonly onExit: CpuVmOptions['onExit']
  private readonly onFault: CpuVmOptions['onFault']
  private readonly onLaneDone: CpuVmOptions['onLaneDone']
  private destroyed = false
  /** The lane's completion log, once a lane is attached. */
  private log: { u32: Uint32Array; dv: DataView } | null = null
  private lane: IoreqLane | null = null

  constructor(
    private readonly addon: KvmAddon,
    options: CpuVmOptions,
  ) {
    if (!Number.isInteger(options.vcpus) || options.vcpus < 1)
      throw new RangeError(`a VM needs at least one vCPU (got ${options.vcpus})`)
    const { vm, records } = addon.createVm(options.vcpus)
    this.handle = vm
    this.words = new Int32Array(records)
    this.longs = new BigUint64Array(records)
    this.vcpus = options.vcpus
    this.onExit = options.onExit
    this.onFault = options.onFault
    this.onLaneDone = options.onLaneDone
    this.exits = Array.from({ length: options.vcpus }, (): ExitRecord => ({
      kind: 'pio',
      write: false,
      addr: 0,
      size: 0,
      value: 0n,
    }))
    poller.add(this, addon)
  }

  /** Hand posted exits and faults to the callbacks: DELIVERED and/or WAITING_ON_JS. */
  deliver(): number {
    let found = 0
    const w = this.words
    for (let v = 0; v < this.vcpus && !this.destroyed; v++) {
      const at = v * RECORD_WORDS
      const state = Atomics.load(w, at + AT_STATE)
      if (state === REC_POSTED) {
        found |= DELIVERED
        const exit = this.exits[v]!
        exit.kind = w[at + AT_KIND] === 0 ? 'pio' : 'mmio'
        exit.write = w[at + AT_WRITE] !== 0
        exit.size = w[at + AT_SIZE]!
        exit.addr = (w[at + AT_ADDR]! >>> 0) + (w[at + AT_ADDR + 1]! >>> 0) * 2 ** 32
        exit.value = exit.write ? this.longs[v * (RECORD_WORDS / 2) + AT_VALUE64]! : 0n
        Atomics.store(w, at + AT_STATE, REC_TAKEN)
        try {
          this.onExit(v, exit)
        } catch (e) {
          rethrow(e)
        }
        if (Atomics.load(w, at + AT_STATE) === REC_TAKEN) found |= WAITING_ON_JS
      } else if (state === REC_FAULT) {
        found |= DELIVERED
        const reason = this.addon.fault(this.handle, v)
        try {
          this.onFault?.(v, reason)
        } catch (e) {
          rethrow(e)
        }
      } else if (state === REC_TAKEN) {
        found |= WAITING_ON_JS
      }
    }
    return found
  }

  attachLane(lane: IoreqLane, ioreq: Uint8Array): void {
    const handle = this.vm
    const log = this.addon.setLane(handle, lane.bytes, ioreq)
    this.log = { u32: new Uint32Array(log), dv: new DataView(log) }
    lane.bind({
      setDispatch: (on) => {
        if (!this.destroyed) this.addon.setLaneDispatch(handle, on)
      },
      setRoutes: (bits) => {
        if (!this.destroyed) this.addon.setLaneRoutes(handle, bits)
      },
      setWatched: (on) => {
        if (!this.destroyed) this.addon.setLaneJsWaiters(handle, on)
      },
    })
    this.lane = lane
    poller.watchLog(this)
  }

  /**
   * Hand the lane's logged completions to onLaneDone; how many there were. `arm`: first
   * ask the vCPU threads to wake this thread at their next entry.
   */
  drainLaneLog(arm = false): number {
    const log = this.log
    if (!log || this.destroyed) return 0
    let n = 0
    for (let v = 0; v < Math.min(this.vcpus, LANE_SLOTS); v++) {
      const h = v * 16
      if (arm) Atomics.store(log.u32, h + 3, 1)
      const head = Atomics.load(log.u32, h)
      let tail = log.u32[h + 1]!
      for (; tail !== head; tail = (tail + 1) >>> 0) {
        const at = LOG_HEADERS + (v * LOG_ENTRIES + (tail % LOG_ENTRIES)) * LOG_ENTRY
        const since = monotonicToPerf(Number(log.dv.getBigUint64(at, true)))
        const done = monotonicToPerf(Number(log.dv.getBigUint64(at + 8, true)))
        try {
          this.onLaneDone?.(
            v,
            log.dv,
            at + LOG_SLOT_AT,
            log.dv.getBigUint64(at + 16, true),
            since,
            done,
          )
        } catch (e) {
          rethrow(e)
        }
        n++
      }
      Atomics.store(log.u32, h + 1, tail)
    }
    return n
  }

  /** The lane may have dispatched: the model's own ATTACH waiters look. */
  laneRang(): void {
    this.lane?.rang()
  }

  /** Does an exit wait for complete()? */
  waiting(): boolean {
    for (let v = 0; v < this.vcpus && !this.destroyed; v++)
      if (Atomics.load(this.words, v * RECORD_WORDS + AT_STATE) === REC_TAKEN) return true
    return false
  }

  private get vm(): VmHandle {
    if (this.destroyed) throw new Error('the VM was destroyed')
    return this.handle
  }

  setMemory(regions: readonly MemoryRegion[]): void {
    this.addon.setMemory(this.vm, regions)
  }

  setRegs(vcpu: number, regs: Uint8Array): void {
    this.addon.setRegs(this.vm, vcpu, regs)
  }

  getRegs(vcpu: number): Uint8Array {
    return this.addon.getRegs(this.vm, vcpu)
  }

  run(vcpu?: number): void {
    this.addon.run(this.vm, vcpu ?? -1)
  }

  pause(vcpu?: number): void {
    this.addon.pause(this.vm, vcpu ?? -1)
  }

  reset(): void {
    this.addon.reset(this.vm)
  }

  complete(vcpu: number, value: bigint): void {
    this.addon.complete(this.vm, vcpu, value)
    // Its next exit is likely soon: poll for it rather than be woken.
    poller.kick()
  }

  injectMsi(addr: bigint, data: number): number {
    return this.addon.injectMsi(this.vm, addr, data)
  }

  setIrqLine(gsi: number, level: 0 | 1): void {
    this.addon.setIrqLine(this.vm, gsi, level)
  }

  status(): VcpuStatus[] {
    return this.addon.status(this.vm)
  }

  destroy(): void {
    if (this.destroyed) return
    this.drainLaneLog()
    this.addon.destroy(this.handle)
    this.destroyed = true
    poller.remove(this)
  }
}

/** How long the main thread polls after the last exit before it sleeps (HSMCTL_KVM_POLL_US). */
const SPIN_WINDOW_NS = (() => {
  const us = Number(process.env.HSMCTL_KVM_POLL_US ?? 200)
  return Number.isFinite(us) && us >= 0 ? us * 1000 : 200_000
})()
/**
 * The longest single spin in C. A guest takes a while between two exits (some 10 µs on a
 * nested KVM): shorter slices would hand the event loop a turn between most of them.
 */
const WAIT_SLICE_NS = 50_000
/** While the main thread polls, the event loop still gets a turn this often. */
const TURN_NS = 200_000
/** Microtask turns after an exit left waiting, for a completion that comes through a promise chain. */
const MICROTASK_HOPS = 2
/** deliver(): exits or faults were handed over. */
const DELIVERED = 1
/** deliver(): an exit waits for complete(), which only this thread can call: spinning in C is no use. */
const WAITING_ON_JS = 2

/**
 * Polls every live VM's exit records while exits keep coming; after the spin window with
 * none it tells the vCPU threads so (they then wake it with the uv_async) and sleeps.
 */
class ExitPoller {
  private readonly vms = new Set<KvmVm>()
  private addon: KvmAddon | undefined
  private control: Uint32Array | undefined
  private polling = false
  private lastActive = 0
  /** VMs with a lane, whose completion logs are drained. */
  private readonly logs = new Set<KvmVm>()
  private redrain: NodeJS.Timeout | undefined
  /** control.posted when the poller last went to sleep. */
  private sleptAt = -1

  add(vm: KvmVm, addon: KvmAddon): void {
    if (!this.addon) {
      this.addon = addon
      this.control = new Uint32Array(addon.control)
      addon.setWake(() => this.woken())
    }
    this.vms.add(vm)
  }

  remove(vm: KvmVm): void {
    this.vms.delete(vm)
    this.logs.delete(vm)
  }

  watchLog(vm: KvmVm): void {
    this.logs.add(vm)
  }

  /** A vCPU woke this thread: an exit was posted, or a lane log wants draining. */
  private woken(): void {
    const control = this.control!
    if (Atomics.exchange(control, CONTROL_LOG_READY, 0) !== 0) this.drainLogs()
    if (this.polling || Atomics.load(control, 0) !== this.sleptAt) this.kick()
  }

  /**
   * Lane completions to the observers: again on a timer while they keep coming (one
   * wake-up per LOG_REDRAIN_MS, not per request), else the logs are armed: the next
   * entry wakes this thread. Entries logged while arming are drained by the second pass.
   */
  private drainLogs(): void {
    let n = 0
    for (const vm of this.logs) {
      vm.laneRang()
      n += vm.drainLaneLog()
    }
    if (n === 0) for (const vm of this.logs) n += vm.drainLaneLog(true)
    if (n > 0 && !this.redrain) {
      this.redrain = setTimeout(() => {
        this.redrain = undefined
        this.drainLogs()
      }, LOG_REDRAIN_MS)
      this.redrain.unref()
    }
  }

  kick(): void {
    this.lastActive = now()
    if (this.polling) return
    this.polling = true
    this.addon!.setPolling(true)
    // Not inside the caller (complete(), most often): its reply goes out first.
    queueMicrotask(() => void this.poll())
  }

  private async poll(): Promise<void> {
    const addon = this.addon!
    const control = this.control!
    let turnStarted = now()
    for (;;) {
      if (this.vms.size === 0) {
        addon.setPolling(false)
        this.polling = false
        return
      }
      const seen = Atomics.load(control, 0)
      let found = 0
      for (const vm of this.vms) found |= vm.deliver()
      let t = now()
      if (found & DELIVERED) this.lastActive = t
      if (found & WAITING_ON_JS) {
        // Completed a few promise turns away: give it those.
        for (let hop = 0; hop < MICROTASK_HOPS; hop++) await undefined
        // Completed later (by the event loop, by a client in another process): complete()
        // kicks this poller again, so it sleeps meanwhile rather than spin the event loop,
        // which would hold the CPU the answer is waiting for (the client's, on a machine
        // with more runnable threads than CPUs). Other vCPUs' exits wake it.
        if ([...this.vms].some((vm) => vm.waiting())) {
          if (this.sleep(seen)) return
          continue
        }
      }
      if (found & DELIVERED) {
        // More may have come meanwhile: look again at once.
      } else if (t - this.lastActive < SPIN_WINDOW_NS && spinAllowed(t)) {
        if (addon.wait(seen, WAIT_SLICE_NS)) this.lastActive = now()
        t = now()
      } else if (this.sleep(seen)) {
        return
      }
      if (t - turnStarted >= TURN_NS) {
        await new Promise<void>((resolve) => setImmediate(resolve))
        turnStarted = now()
      }
    }
  }

  /** Stop polling (vCPUs then wake this thread); false if an exit came meanwhile. */
  private sleep(seen: number): boolean {
    const addon = this.addon!
    addon.setPolling(false)
    // A vCPU that posted before it could see that must not be missed.
    if (Atomics.load(this.control!, 0) === seen) {
      this.polling = false
      this.sleptAt = seen
      return true
    }
    addon.setPolling(true)
    this.lastActive = now()
    return false
  }
}

const poller = new ExitPoller()

/** A callback that threw must not stop the other vCPUs' exits: it is thrown again apart. */
function rethrow(e: unknown): void {
  setImmediate(() => {
    throw e
  })
}

/** Nanoseconds, as a double (no BigInt per turn). */
function now(): number {
  return performance.now() * 1e6
}
