// hsmd's end of the tap (helper/TAP.md): a unix socket in its runtime dir where traced
// programs (libhsm-tap.so preloaded) stream their HSM ioctls and completed I/O requests.
// Ioctls go into the daemon's ioctl log raw (decoded when read); I/O requests are decoded
// from their slot bytes with the ABI layout and published like any other. The VMs a
// traced program creates are known by the name and vmid CREATE_VM gave them.

import { unlink } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { IoreqType } from '../abi/constants.js'
import { Ioctl } from '../abi/ioctls.js'
import { offsetOf } from '../abi/layout.js'
import { acrn_io_request, acrn_vm_creation } from '../abi/structs.js'
import type { PublishedRequest } from '../trace/hub.js'
import { IoctlSource, type IoctlLog } from '../trace/ioctl-log.js'
import { CLIENT_DEFAULT, pciAddr, TYPE_MMIO, TYPE_PCICFG, TYPE_PIO } from '../trace/record.js'
import {
  TapDecoder,
  type TapHello,
  type TapIoctl,
  type TapIoreq,
  TapStreamError,
  type TapTotals,
} from './tap-protocol.js'
import { listenPrivate } from './listen.js'

const TYPE = offsetOf(acrn_io_request, 'type')
const DIRECTION = offsetOf(acrn_io_request, 'reqs.pio_request.direction')
const ADDRESS = offsetOf(acrn_io_request, 'reqs.pio_request.address')
const SIZE = offsetOf(acrn_io_request, 'reqs.pio_request.size')
const PCI_BUS = offsetOf(acrn_io_request, 'reqs.pci_request.bus')
const PCI_DEV = offsetOf(acrn_io_request, 'reqs.pci_request.dev')
const PCI_FUNC = offsetOf(acrn_io_request, 'reqs.pci_request.func')
const PCI_REG = offsetOf(acrn_io_request, 'reqs.pci_request.reg')
const CREATION_SIZE = acrn_vm_creation.size
const CREATION_VMID = offsetOf(acrn_vm_creation, 'vmid')
const CREATION_UUID = offsetOf(acrn_vm_creation, 'uuid')

/**
 * CLOCK_MONOTONIC (the tap's clock, and process.hrtime's) as the daemon's trace clock
 * (performance.now() ms): both count from the same instants, offset by when this
 * process started.
 */
const MONO_AT_ORIGIN = process.hrtime.bigint() - BigInt(Math.round(performance.now() * 1e6))
export function monotonicToTrace(ns: bigint): number {
  return Number(ns - MONO_AT_ORIGIN) / 1e6
}

export interface TapVm {
  vmid: number
  /** The 16 "uuid" bytes of CREATE_VM, read as a name (A.1); '' if none. */
  name: string
  pid: number
  program: string
}

export interface TapSessionInfo {
  pid: number
  program: string
  /** ISO time the tap connected. */
  connectedAt: string
  /** Whether the process is still connected. */
  connected: boolean
  ioctls: number
  ioreqs: number
  /** Records the tap could not send (its ring was full, or hsmd was not there yet). */
  dropped: number
  vms: { vmid: number; name: string }[]
}

export interface TapServerOptions {
  /** Where the ioctls go. */
  readonly ioctls: IoctlLog
  /** Where the I/O requests go. */
  readonly publish: (request: PublishedRequest) => void
  /** Told about streams that make no sense and lost connections, one line each. */
  readonly log?: (line: string) => void
  /** A traced program created a VM: its vmid's old statistics must go (before its requests). */
  readonly vmCreated?: (vmid: number) => void
  /** Sessions of processes that exited kept for `trace list` (default 32). */
  readonly keepEnded?: number
}

class TapSession {
  pid = 0
  program = ''
  readonly connectedAt = new Date()
  connected = true
  ioctls = 0
  ioreqs = 0
  dropped = 0
  /** The VM each fd holds, as CREATE_VM and DESTROY_VM said. */
  private readonly fdVm = new Map<number, number>()
  readonly vms = new Map<number, string>()
  private readonly decoder: TapDecoder

  constructor(
    private readonly server: TapServer,
    private readonly socket: Socket,
  ) {
    this.decoder = new TapDecoder({
      hello: (h) => this.hello(h),
      ioctl: (r) => this.ioctl(r),
      ioreq: (r) => this.ioreq(r),
      totals: (t) => this.totals(t),
    })
    socket.on('data', (chunk: Buffer) => {
      try {
        this.decoder.push(chunk)
      } catch (e) {
        if (!(e instanceof TapStreamError)) throw e
        this.server.log(`tap ${this.who()}: ${e.message}; closing its connection`)
        socket.destroy()
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => this.end())
  }

  who(): string {
    return this.pid ? `pid ${this.pid} (${this.program})` : 'before its hello'
  }

  private hello(h: TapHello): void {
    this.pid = h.pid
    this.program = h.program
    this.dropped = Number(h.droppedBefore)
  }

  private ioctl(r: TapIoctl): void {
    this.ioctls++
    this.server.options.ioctls.append({
      source: IoctlSource.TAP,
      flags: r.flags,
      errno: r.errno,
      t: monotonicToTrace(r.start),
      durationNs: r.durationNs,
      pid: this.pid,
      tid: r.tid,
      fd: r.fd,
      request: r.request,
      result: r.result,
      value: r.value,
      bytes: r.bytes,
    })
    if (r.result < 0) return
    if (r.request === Ioctl.CREATE_VM && r.bytes.byteLength >= 2 * CREATION_SIZE) {
      // before the call: the name; after: the vmid the hypervisor gave (A.2)
      const v = new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength)
      const vmid = v.getUint16(CREATION_SIZE + CREATION_VMID, true)
      const uuid = r.bytes.subarray(CREATION_UUID, CREATION_UUID + 16)
      const end = uuid.indexOf(0)
      const name = new TextDecoder().decode(uuid.subarray(0, end < 0 ? 16 : end))
      this.fdVm.set(r.fd, vmid)
      this.vms.set(vmid, name)
      this.server.options.vmCreated?.(vmid)
    } else if (r.request === Ioctl.DESTROY_VM) {
      const vmid = this.fdVm.get(r.fd)
      this.fdVm.delete(r.fd)
      if (vmid !== undefined) this.vms.delete(vmid)
    }
  }

  private ioreq(r: TapIoreq): void {
    this.ioreqs++
    const v = new DataView(r.slot.buffer, r.slot.byteOffset, r.slot.byteLength)
    const type = v.getUint32(TYPE, true)
    const write = v.getUint32(DIRECTION, true) === 1
    let traceType: number
    let addr: bigint
    let value: bigint
    if (type === IoreqType.MMIO) {
      traceType = TYPE_MMIO
      addr = v.getBigUint64(ADDRESS, true)
      value = r.value
    } else if (type === IoreqType.PCICFG) {
      traceType = TYPE_PCICFG
      addr = pciAddr(
        v.getUint32(PCI_BUS, true),
        v.getUint32(PCI_DEV, true),
        v.getUint32(PCI_FUNC, true),
        v.getUint32(PCI_REG, true),
      )
      value = r.value & 0xffff_ffffn // PIO and PCI values are u32 (§4.1)
    } else {
      traceType = TYPE_PIO
      addr = v.getBigUint64(ADDRESS, true)
      value = r.value & 0xffff_ffffn
    }
    const done = r.notifyStart + BigInt(r.notifyNs)
    // from ATTACH handing it over to NOTIFY's return, as hsmd's own client counts it
    const from = r.seen !== 0n ? r.seen : r.notifyStart
    this.server.options.publish({
      t: monotonicToTrace(from),
      vmid: r.vmid,
      vcpu: r.vcpu,
      type: traceType,
      write,
      client: CLIENT_DEFAULT,
      size: Number(v.getBigUint64(SIZE, true)),
      addr,
      value,
      latencyNs: Number(done - from),
    })
  }

  private totals(t: TapTotals): void {
    this.dropped = Number(t.dropped)
  }

  private end(): void {
    if (!this.connected) return
    this.connected = false
    // the process is gone: its fds closed, which released its VMs (§1.5)
    this.vms.clear()
    this.fdVm.clear()
    this.server.ended(this)
  }

  info(): TapSessionInfo {
    return {
      pid: this.pid,
      program: this.program,
      connectedAt: this.connectedAt.toISOString(),
      connected: this.connected,
      ioctls: this.ioctls,
      ioreqs: this.ioreqs,
      dropped: this.dropped,
      vms: [...this.vms].map(([vmid, name]) => ({ vmid, name })),
    }
  }

  close(): void {
    this.socket.destroy()
  }
}

/** Listens for taps; see the file comment. */
export class TapServer {
  private readonly live = new Set<TapSession>()
  private readonly past: TapSession[] = []

  private readonly net: Server
  private listening = false

  constructor(
    readonly path: string,
    /** @internal */
    readonly options: TapServerOptions,
  ) {
    this.net = createServer((socket) => this.live.add(new TapSession(this, socket)))
  }

  /** Listen on the path (mode 0600); a stale socket is replaced, a live one is a conflict. */
  async listen(): Promise<void> {
    await listenPrivate(this.net, this.path, {
      notSocket: 'move it away; hsmd keeps its sockets in its runtime directory',
      inUse: 'is another hsmd running? see `hsmctl daemon status`',
      inUseText: 'something already listens on',
    })
    this.listening = true
  }

  /** @internal */
  log(line: string): void {
    this.options.log?.(line)
  }

  /** @internal */
  ended(session: TapSession): void {
    this.live.delete(session)
    if (session.pid === 0) return
    this.past.push(session)
    if (this.past.length > (this.options.keepEnded ?? 32)) this.past.shift()
  }

  /** Traced processes, connected ones first, then those that ended (newest last). */
  sessions(): TapSessionInfo[] {
    return [...[...this.live].filter((s) => s.pid !== 0), ...this.past].map((s) => s.info())
  }

  /** The VMs traced processes hold now. */
  vms(): TapVm[] {
    return [...this.live].flatMap((s) =>
      [...s.vms].map(([vmid, name]) => ({ vmid, name, pid: s.pid, program: s.program })),
    )
  }

  async close(): Promise<void> {
    for (const s of [...this.live]) s.close()
    if (!this.listening) return
    this.listening = false
    await new Promise<void>((resolve) => this.net.close(() => resolve()))
    await unlink(this.path).catch(() => {})
  }
}
