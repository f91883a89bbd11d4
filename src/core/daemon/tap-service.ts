// hsmd's tracing of processes it does not hold (helper/TAP.md): the tap socket, the ioctl
// log, and the methods `trace exec|env|list` and `ioctl log` call.
//
// I/O requests a tap reports go into a trace hub of their own (`--source tap`), and into
// the daemon's trace as well when the platform cannot see them itself (hardware): there
// the traced VMs' traffic shows in `ioreq watch` like any other. On the simulation every
// request is in the daemon's trace already (the simulation sees them all), so the tap's
// copy stays apart, where it can be compared with what the simulation saw.

import { join } from 'node:path'
import { NotFoundError, UsageError } from '../errors.js'
import { Ioctl, ioctlByRequest } from '../abi/ioctls.js'
import { ArgKind } from '../native/protocol.js'
import type { ServedIoctl } from '../native/sim-server.js'
import { decodeIoctlEntry, pmReplySize, type IoctlCall } from '../trace/ioctl-call.js'
import { IoctlLog, IoctlSource, SOURCE_NAMES, type IoctlEntry } from '../trace/ioctl-log.js'
import { TraceHub } from '../trace/hub.js'
import { traceMethods, type TraceVm } from '../trace/methods.js'
import { TapServer, type TapSessionInfo, type TapVm } from '../native/tap-server.js'
import type { Handler } from './server.js'
import { runtimeDir, type Backend } from './paths.js'

/** The tap socket of a backend's daemon, beside its RPC socket. */
export function tapSocketPath(backend: Backend, env: NodeJS.ProcessEnv = process.env): string {
  return join(runtimeDir(env), `hsmd-${backend}-tap.sock`)
}

/** Most calls one `ioctl.read` reply carries (a decoded call is a few hundred bytes). */
export const IOCTL_READ_MAX = 2000

export interface TapListReply {
  /** Where taps connect (HSM_TAP_SOCKET). */
  socket: string
  sessions: TapSessionInfo[]
}

export interface IoctlReadReply {
  cursor: number
  /** Calls the log no longer held when this reader got to them. */
  dropped: number
  /** The log's head when it answered: a reader is caught up when cursor >= it. */
  published: number
  calls: IoctlCall[]
}

export interface TapServiceOptions {
  backend: Backend
  env: NodeJS.ProcessEnv
  /** The daemon's trace. */
  trace: TraceHub
  /** Whether the platform publishes every request itself (the simulation). */
  platformTraces: boolean
  log?: (line: string) => void
}

export class TapService {
  private constructor(
    readonly server: TapServer,
    /** Every traced (and, on the simulation, shimmed) process's ioctls. */
    readonly ioctls: IoctlLog,
    /** What the taps reported, alone. */
    readonly tapTrace: TraceHub,
    private readonly forgetVm: (vmid: number) => void,
  ) {}

  /** Ready to answer; taps connect once `listen()` resolves. */
  static create(options: TapServiceOptions): TapService {
    const ioctls = new IoctlLog()
    const tapTrace = new TraceHub(1 << 16)
    const own = options.platformTraces
    const server = new TapServer(tapSocketPath(options.backend, options.env), {
      ioctls,
      publish: (r) => {
        tapTrace.publish(r)
        if (!own) options.trace.publish(r)
      },
      // On the simulation its own CREATE_VM (simIoctl) already started the daemon's
      // statistics afresh, in order; the tap's report of it comes in a later batch, after
      // the new VM's first requests, and would wipe them. The tap's own hub is in order.
      vmCreated: (vmid) => (own ? tapTrace.forgetVm(vmid) : forget(vmid)),
      ...(options.log ? { log: options.log } : {}),
    })
    // a VM another process made may have the vmid of one destroyed since: its requests
    // start from zero (hsmd's own VMs: the VM manager does this when it destroys them)
    const forget = (vmid: number) => {
      options.trace.forgetVm(vmid)
      tapTrace.forgetVm(vmid)
    }
    return new TapService(server, ioctls, tapTrace, forget)
  }

  /** Listen on the tap socket (the runtime directory exists: hsmd's socket is there). */
  listen(): Promise<void> {
    return this.server.listen()
  }

  /**
   * An ioctl a shimmed program asked the simulation for, logged as the tap would log it:
   * for the read-back requests the bytes the kernel reads, then, on success, those it
   * wrote back; for the others the bytes passed.
   */
  simIoctl(c: ServedIoctl): void {
    const info = ioctlByRequest(c.request)
    let bytes: Uint8Array = new Uint8Array(0)
    let unreadable = false
    if (info?.kind === 'struct') {
      const pm = info.name === 'PM_GET_CPU_STATE'
      const size = pm ? 8 : info.bufferSize
      // the shim sends what it could read: nothing at all for a bad pointer
      const passed = c.kind === ArgKind.BUFFER && c.before ? c.before : new Uint8Array(0)
      const input = passed.subarray(0, size)
      unreadable = input.byteLength < size
      if (info.dir === 'rw' && c.result >= 0 && c.after && !unreadable) {
        const cmd = new DataView(input.buffer, input.byteOffset).getBigUint64(0, true)
        if (c.request === Ioctl.CREATE_VM)
          this.forgetVm(new DataView(c.after.buffer, c.after.byteOffset).getUint16(0, true))
        const out = c.after.subarray(0, pm ? pmReplySize(cmd) : info.bufferSize)
        bytes = new Uint8Array(input.byteLength + out.byteLength)
        bytes.set(input)
        bytes.set(out, input.byteLength)
      } else {
        bytes = input
      }
    }
    this.ioctls.append({
      source: IoctlSource.SIM,
      flags: unreadable ? 1 : 0,
      errno: c.result < 0 ? c.errno : 0,
      t: c.t,
      durationNs: c.durationNs,
      pid: c.pid,
      tid: 0,
      fd: c.fd,
      request: c.request,
      result: c.result,
      value: c.kind === ArgKind.VALUE ? c.value : 0n,
      bytes,
    })
  }

  /** The VMs traced processes hold, for the trace's VM names. */
  vms(): TapVm[] {
    return this.server.vms()
  }

  /**
   * The daemon's VM names (`known`) and, after them, traced VMs it does not list, by the
   * name CREATE_VM gave them when it is free, else `outside-VMID`.
   */
  traceVms(known: TraceVm[]): TraceVm[] {
    const vmids = new Set(known.map((v) => v.vmid))
    const names = new Set(known.map((v) => v.name))
    const out = [...known]
    for (const vm of this.vms()) {
      if (vmids.has(vm.vmid)) continue
      const name = vm.name !== '' && !names.has(vm.name) ? vm.name : `outside-${vm.vmid}`
      vmids.add(vm.vmid)
      names.add(name)
      out.push({ vmid: vm.vmid, name })
    }
    return out
  }

  /**
   * The daemon's trace methods with `source`: 'tap' reads what the taps reported alone;
   * 'hsmd' (the default) the daemon's own trace.
   */
  sourced(methods: Record<string, Handler>, vms: () => TraceVm[]): Record<string, Handler> {
    const tap = traceMethods(this.tapTrace, vms)
    const pick =
      (name: string): Handler =>
      (params, context) => {
        const p = (params ?? {}) as { source?: unknown }
        if (p.source === undefined || p.source === 'hsmd') return methods[name]!(params, context)
        if (p.source === 'tap') return tap[name]!(params, context)
        throw new UsageError(`param 'source': expected hsmd or tap, got ${String(p.source)}`, {
          flag: '--source',
        })
      }
    return { ...methods, 'trace.stats': pick('trace.stats'), 'trace.read': pick('trace.read') }
  }

  methods(options: {
    /** The daemon's VMs, to turn a VM name into the process that holds it. */
    vms: () => TraceVm[]
    /** The pid of the process holding a VM on the simulation, if a shimmed one does. */
    simHolder?: (vmid: number) => number | undefined
  }): Record<string, Handler> {
    return {
      'tap.list': (): TapListReply => ({
        socket: this.server.path,
        sessions: this.server.sessions(),
      }),
      'ioctl.read': (params): IoctlReadReply => {
        const p = (params ?? {}) as {
          cursor?: unknown
          max?: unknown
          pid?: unknown
          vm?: unknown
          source?: unknown
        }
        const cursor = p.cursor === undefined ? this.ioctls.head : Number(p.cursor)
        if (!Number.isSafeInteger(cursor) || cursor < 0)
          throw new UsageError("param 'cursor': expected a call number")
        const max = p.max === undefined ? IOCTL_READ_MAX : Number(p.max)
        if (!Number.isSafeInteger(max) || max < 0)
          throw new UsageError("param 'max': expected a number of calls")
        const source = this.sourceParam(p.source)
        const pid = p.vm !== undefined ? this.holderOf(p.vm, options) : this.pidParam(p.pid)
        // a program under the tap on the simulation is seen twice: the tap's view by default
        const traced = new Set(this.server.sessions().map((t) => t.pid))
        const keep = (e: IoctlEntry) =>
          (pid === undefined || e.pid === pid) &&
          (source === undefined
            ? e.source === IoctlSource.TAP || !traced.has(e.pid)
            : e.source === source)
        const read = this.ioctls.read(cursor, Math.min(max, IOCTL_READ_MAX), keep)
        return {
          cursor: read.cursor,
          dropped: read.dropped,
          published: this.ioctls.head,
          calls: read.entries.map(decodeIoctlEntry),
        }
      },
    }
  }

  private sourceParam(s: unknown): number | undefined {
    if (s === undefined) return undefined
    const i = SOURCE_NAMES.indexOf(s as 'tap')
    if (i < 0) {
      throw new UsageError(`'${String(s)}' is not an ioctl source`, {
        flag: '--source',
        hint: `use ${SOURCE_NAMES.join(' or ')}`,
      })
    }
    return i
  }

  private pidParam(p: unknown): number | undefined {
    if (p === undefined) return undefined
    const pid = Number(p)
    if (!Number.isSafeInteger(pid) || pid <= 0)
      throw new UsageError(`'${String(p)}' is not a process id`, { flag: '--pid' })
    return pid
  }

  /** The process that holds VM `name`: a traced one, or a shimmed one on the simulation. */
  private holderOf(
    name: unknown,
    options: { vms: () => TraceVm[]; simHolder?: (vmid: number) => number | undefined },
  ): number {
    const vm = this.traceVms(options.vms()).find((v) => v.name === name)
    if (!vm) throw new NotFoundError(`no VM named '${String(name)}'`, 'see `hsmctl vm list`')
    const traced = this.vms().find((v) => v.vmid === vm.vmid)
    const pid = traced?.pid ?? options.simHolder?.(vm.vmid)
    if (pid === undefined) {
      throw new NotFoundError(
        `no traced process holds '${String(name)}'`,
        'run its program with `hsmctl trace exec -- PROGRAM`, or name it with --pid',
      )
    }
    return pid
  }

  async close(): Promise<void> {
    await this.server.close()
  }
}
