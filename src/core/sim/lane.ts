// The lane (helper/hsm-lane.h; helper/SHIM.md, "The lane"): a page hsmd shares with a
// shimmed program for one VM whose default ioreq client is that program and whose vCPUs
// execute on KVM. Through it a vCPU's port I/O reaches the program, and the program's
// NOTIFY the vCPU, with no JavaScript on the way: the vCPU thread fills the slot and
// dispatches it to the default client as HSM would (§4.3), and the shim serves ATTACH
// and NOTIFY from the page (§4.7). The model stays the authority: while the lane is on,
// the default client's pending bits (ioreqs_map) live in the page, so the model's
// dispatch, NOTIFY and CLEAR_VM_IOREQ act on the same bits; the model decides which ports
// the lane may take (none a kernel client's range or HSM's PCI ports hold) and when (not
// while CLEAR_VM_IOREQ runs); and a completion the model makes of a lane request (a
// NOTIFY that came over the ring) wakes the vCPU thread, which finishes it. Completions
// reach the model's observers (the trace) from the engine's log, a few ms late.

/** struct hsm_lane, in 32-bit words. */
const STATE = 2
const PENDING = 3
const BELL = 4
const SLEEPERS = 5
const VCPU_NUM = 6
const OWNER = 8

export const LANE_MAGIC = 0x454e414c
export const LANE_VERSION = 1
export const LANE_SIZE = 65536
/** Slots the lane covers: the ioreq page's 16. */
export const LANE_SLOTS = 16
const ON = 1
const OFF = 0
const GONE = 2

const CALLS_HEAD = 56
const CALLS_TAIL = 57
const CALLS_WANTED = 59
const CALLS_AT = 1024
const CALLS = 1024
const CALL_SIZE = 48

/** CLOCK_MONOTONIC ns (the C side's clock) minus performance.now() in ns: both are uv_hrtime's clock. */
const MONOTONIC_OFFSET_NS = Number(process.hrtime.bigint()) - performance.now() * 1e6

/** A CLOCK_MONOTONIC time in ns as a performance.now() time. */
export function monotonicToPerf(ns: number): number {
  return (ns - MONOTONIC_OFFSET_NS) / 1e6
}

/** A call the shim answered through the lane (hsm-lane.h, struct hsm_lane_call). */
export interface LaneCall {
  readonly request: number
  readonly result: number
  readonly errno: number
  /** NOTIFY's argument as the program passed it. */
  readonly arg: Uint8Array
  /** performance.now() time. */
  readonly t: number
  readonly durationNs: number
}

/** What the engine does for the lane: futex wakes, and the vCPU threads' side. */
export interface LaneEngine {
  /** Wake the program's ATTACH sleepers (slot -1), or slot's vCPU thread. */
  signal(lane: Uint8Array, slot: number): void
}

/** The vCPU side of a lane, once the VM's vCPUs exist on the engine. */
export interface LaneBinding {
  setDispatch(on: boolean): void
  setRoutes(bits: Uint8Array): void
  /** Whether a request the lane dispatches must also wake this thread (rang()). */
  setWatched(on: boolean): void
}

export class IoreqLane {
  private readonly i32: Int32Array
  private readonly dv: DataView
  private binding: LaneBinding | null = null
  private clearing = false
  private routes: Uint8Array
  private watched = false
  /** Told (on the main thread) when the lane dispatched while watched. */
  onRang: (() => void) | null = null

  constructor(
    readonly bytes: Uint8Array,
    private readonly engine: LaneEngine,
  ) {
    this.i32 = new Int32Array(bytes.buffer, bytes.byteOffset, LANE_SIZE / 4)
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, LANE_SIZE)
    this.routes = new Uint8Array(65536 / 8)
  }

  /** Why these bytes are not a lane page the shim made, or undefined. */
  static invalid(bytes: Uint8Array): string | undefined {
    if (bytes.byteLength < LANE_SIZE) return `a lane is ${LANE_SIZE} bytes, not ${bytes.byteLength}`
    const dv = new DataView(bytes.buffer, bytes.byteOffset, 8)
    if (dv.getUint32(0, true) !== LANE_MAGIC) return 'the page does not start with the lane magic'
    if (dv.getUint32(4, true) !== LANE_VERSION)
      return `lane version ${dv.getUint32(4, true)}; this server speaks ${LANE_VERSION}`
    return undefined
  }

  get on(): boolean {
    return Atomics.load(this.i32, STATE) === ON
  }

  /** The client is served through the lane from now on, with these bits pending. */
  turnOn(vcpuNum: number, pending: number): void {
    Atomics.store(this.i32, PENDING, pending)
    for (let i = 0; i < LANE_SLOTS; i++) Atomics.store(this.i32, OWNER + i, 0)
    Atomics.store(this.i32, VCPU_NUM, vcpuNum)
    Atomics.store(this.i32, STATE, ON)
    this.applyDispatch()
  }

  /** The client is gone: the program's calls go over the ring again, sleepers woken to see it. */
  turnOff(): void {
    Atomics.compareExchange(this.i32, STATE, ON, OFF)
    this.binding?.setDispatch(false)
    this.ring()
  }

  /** The program's session ends (the server closes): sleepers see EIO, not a client gone. */
  disconnect(): void {
    Atomics.store(this.i32, STATE, GONE)
    this.binding?.setDispatch(false)
    this.ring()
  }

  /** The default client's ioreqs_map. */
  get pending(): number {
    return Atomics.load(this.i32, PENDING)
  }

  setPending(vcpu: number): void {
    Atomics.or(this.i32, PENDING, 1 << vcpu)
  }

  clearPending(vcpu: number): void {
    Atomics.and(this.i32, PENDING, ~(1 << vcpu))
  }

  /** wake_up on the client's queue: the program's ATTACH sleepers. */
  ring(): void {
    Atomics.add(this.i32, BELL, 1)
    if (Atomics.load(this.i32, SLEEPERS) !== 0) this.engine.signal(this.bytes, -1)
  }

  /** Slot `vcpu`'s request went out through the lane (its vCPU thread finishes it). */
  owns(vcpu: number): boolean {
    return vcpu < LANE_SLOTS && Atomics.load(this.i32, OWNER + vcpu) !== 0
  }

  /** The model completed slot `vcpu`: if the lane sent it, its vCPU thread finishes it. */
  finish(vcpu: number): void {
    if (this.owns(vcpu)) this.engine.signal(this.bytes, vcpu)
  }

  /** The vCPU threads' side (the engine's VM): may be bound once they exist. */
  bind(binding: LaneBinding): void {
    this.binding = binding
    binding.setRoutes(this.routes)
    binding.setWatched(this.watched)
    this.applyDispatch()
  }

  /**
   * The model has ATTACH waiters of its own (a call that came over the ring, before the
   * program's side of the lane was ready): requests the lane dispatches must wake them.
   */
  watch(on: boolean): void {
    if (this.watched === on) return
    this.watched = on
    this.binding?.setWatched(on)
  }

  /** The lane dispatched while watched (from the engine, on the main thread). */
  rang(): void {
    if (this.watched) this.onRang?.()
  }

  /** CLEAR_VM_IOREQ runs: every request goes through the model's dispatch meanwhile. */
  setClearing(on: boolean): void {
    this.clearing = on
    this.applyDispatch()
  }

  /** Ports the lane must leave to the model (bit p: port p), as kernel clients change. */
  setRoutes(bits: Uint8Array): void {
    this.routes = bits
    this.binding?.setRoutes(bits)
  }

  /** The server keeps an ioctl log (`hsmctl ioctl log`): the shim logs the calls it answers. */
  logCalls(): void {
    Atomics.store(this.i32, CALLS_WANTED, 1)
  }

  /** Each call the shim logged since the last read, oldest first. */
  readCalls(visit: (call: LaneCall) => void): void {
    const head = Atomics.load(this.i32, CALLS_HEAD) >>> 0
    let tail = Atomics.load(this.i32, CALLS_TAIL) >>> 0
    // The program owns the page: never more than a ring's worth, whatever head says.
    if ((head - tail) >>> 0 > CALLS) tail = (head - CALLS) >>> 0
    const dv = this.dv
    for (; tail !== head; tail = (tail + 1) >>> 0) {
      const at = CALLS_AT + (tail % CALLS) * CALL_SIZE
      visit({
        request: dv.getUint32(at, true),
        result: dv.getInt32(at + 4, true),
        errno: dv.getUint32(at + 8, true),
        arg: this.bytes.slice(at + 16, at + 24),
        t: monotonicToPerf(Number(dv.getBigUint64(at + 24, true))),
        durationNs: Number(dv.getBigUint64(at + 32, true)),
      })
    }
    Atomics.store(this.i32, CALLS_TAIL, tail | 0)
  }

  private applyDispatch(): void {
    this.binding?.setDispatch(this.on && !this.clearing)
  }
}
