// `guest run|stop|replay` in the daemon: workloads and replays on the simulation's vCPUs,
// one per VM at a time, through VmManager's public operations.

import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { ConflictError, NotFoundError, UsageError } from '../errors.js'
import {
  flagType,
  RECORD_SIZE,
  readRecord,
  records as traceRecords,
  TYPE_PCICFG,
  unpackPciAddr,
} from '../trace/record.js'
import type { VmManager } from './manager.js'
import type { IoeventfdSpec } from './spec.js'
import {
  pattern,
  VIRTIO_NOTIFY_ADDR,
  WorkloadRun,
  WORKLOADS,
  type Access,
  type WorkloadName,
  type WorkloadStatus,
} from './workloads.js'

export interface RunOptions {
  workload: string
  rate?: number
  vcpus?: number[]
  count?: number
  durationMs?: number
}

export class GuestTraffic {
  private readonly runs = new Map<string, { run: WorkloadRun; cleanup: () => Promise<void> }>()

  constructor(private readonly manager: VmManager) {}

  private target(name: string) {
    const vm = this.manager.list().find((v) => v.name === name && v.owner === 'hsmd')
    if (!vm || vm.vmid === null)
      throw new NotFoundError(`no VM named '${name}'`, 'see `hsmctl vm list`')
    if (vm.state !== 'running') {
      throw new UsageError(`'${name}' is ${vm.state}, not running`, {
        hint: `start it first: hsmctl vm start ${name}`,
      })
    }
    const access = this.manager.platform.guestAccess
    if (!access) {
      throw new UsageError('guest traffic needs the simulation', {
        hint: 'run the daemon with --backend sim',
      })
    }
    return { vmid: vm.vmid, vcpuNum: vm.vcpus ?? 1, access: access.bind(this.manager.platform) }
  }

  private vcpuList(requested: number[] | undefined, vcpuNum: number): number[] {
    const vcpus = requested?.length ? [...new Set(requested)] : [0]
    const bad = vcpus.find((v) => !Number.isInteger(v) || v < 0 || v >= vcpuNum)
    if (bad !== undefined) {
      throw new UsageError(`vCPU ${bad} does not exist`, {
        flag: '--vcpus',
        hint: `the VM has vCPUs 0..${vcpuNum - 1}`,
      })
    }
    return vcpus
  }

  private claim(name: string) {
    const current = this.runs.get(name)
    if (current?.run.running) {
      throw new ConflictError(
        `'${name}' already runs the ${current.run.name} workload`,
        `stop it first: hsmctl guest stop ${name}`,
      )
    }
  }

  async run(name: string, options: RunOptions): Promise<WorkloadStatus> {
    if (!(WORKLOADS as readonly string[]).includes(options.workload)) {
      throw new UsageError(`unknown workload '${options.workload}'`, {
        flag: '--workload',
        hint: WORKLOADS.join(', '),
      })
    }
    const kind = options.workload as WorkloadName
    const t = this.target(name)
    this.claim(name)
    const vcpus = this.vcpuList(options.vcpus, t.vcpuNum)
    // virtio-notify rings a doorbell the kernel serves: register it as a device model would
    let cleanup = async () => {}
    if (kind === 'virtio-notify' || kind === 'mixed') {
      const present = (await this.manager.ioeventfdList(name)).some(
        (e) => !e.pio && e.addr === VIRTIO_NOTIFY_ADDR,
      )
      if (!present) {
        const added = await this.manager.ioeventfdAdd(name, {
          addr: VIRTIO_NOTIFY_ADDR,
          len: 2,
          pio: false,
        })
        cleanup = async () => {
          await this.manager.ioeventfdRemove(name, added.id).catch(() => {})
        }
      }
    }
    const streams = new Map(vcpus.map((v) => [v, pattern(kind, v)]))
    const run = new WorkloadRun(kind, t.access, streams, {
      vmid: t.vmid,
      vcpus,
      rate: options.rate ?? 1000,
      ...(options.count !== undefined ? { count: options.count } : {}),
      ...(options.durationMs !== undefined ? { durationMs: options.durationMs } : {}),
    })
    this.runs.set(name, { run, cleanup })
    void run.done.then(cleanup)
    return run.status()
  }

  async stop(name: string): Promise<WorkloadStatus> {
    const entry = this.runs.get(name)
    if (!entry)
      throw new NotFoundError(
        `'${name}' runs no workload`,
        'start one with `hsmctl guest run NAME --workload mixed`',
      )
    await entry.run.stop()
    await entry.cleanup()
    this.runs.delete(name)
    return entry.run.status()
  }

  status(name?: string): (WorkloadStatus & { name: string })[] {
    return [...this.runs.entries()]
      .filter(([n]) => name === undefined || n === name)
      .map(([n, e]) => ({ name: n, ...e.run.status() }))
  }

  /** Wait for a VM's workload to end (count or duration reached, or stopped). */
  async wait(name: string): Promise<WorkloadStatus> {
    const entry = this.runs.get(name)
    if (!entry) throw new NotFoundError(`'${name}' runs no workload`)
    await entry.run.done
    return entry.run.status()
  }

  /** Per VM: the last 0xCF8 value a replay wrote from each vCPU (kept across chunks). */
  private readonly replayCf8 = new Map<number, Map<number, bigint>>()

  /**
   * Play recorded requests back as guest accesses, per vCPU in recorded order, with the
   * recorded spacing unless `fast`. A PCICFG record was a 0xCFC..0xCFF access made after
   * a 0xCF8 write (§4.6); that write is made first when the replay has not just made it
   * (a recording filtered to PCICFG, or one from before kernel-handled requests were
   * traced, does not hold it). Large recordings come in chunks: `origin` is the time of
   * the recording's first record and `startedAt` (returned by the first chunk) the daemon
   * time it was replayed at, so the timing carries on across chunks.
   */
  async replay(
    name: string,
    records: Uint8Array,
    options: { fast: boolean; origin?: number; startedAt?: number },
  ): Promise<ReplayResult> {
    const t = this.target(name)
    this.claim(name)
    if (records.byteLength % RECORD_SIZE !== 0)
      throw new UsageError('records must be whole 32-byte records')
    const view = new DataView(records.buffer, records.byteOffset, records.byteLength)
    const perVcpu = new Map<number, { at: number; access: Access; cf8?: bigint }[]>()
    let skipped = 0
    const origin = options.origin ?? (records.byteLength ? view.getFloat64(0, true) : 0)
    for (let off = 0; off < records.byteLength; off += RECORD_SIZE) {
      if (flagType(view.getUint8(off + 31)) > TYPE_PCICFG) {
        skipped++
        continue
      }
      const e = readRecord(view, off)
      const vcpu = e.vcpu < t.vcpuNum ? e.vcpu : 0
      const list = perVcpu.get(vcpu) ?? []
      perVcpu.set(vcpu, list)
      const at = e.t - origin
      if (e.type === 'pcicfg') {
        const p = unpackPciAddr(e.addr)
        const cf8 =
          0x8000_0000n |
          (BigInt((p.reg >> 8) & 0xf) << 24n) |
          (BigInt(p.bus) << 16n) |
          (BigInt(p.dev) << 11n) |
          (BigInt(p.func) << 8n) |
          BigInt(p.reg & 0xfc)
        const access: Access = {
          type: 'pio',
          dir: e.dir,
          addr: 0xcfcn + BigInt(p.reg & 3),
          size: e.size,
          value: e.dir === 'write' ? e.value : 0n,
        }
        list.push({ at, access, cf8 })
        continue
      }
      list.push({
        at,
        access: {
          type: e.type,
          dir: e.dir,
          addr: e.addr,
          size: e.size,
          value: e.dir === 'write' ? e.value : 0n,
        },
      })
    }
    if (options.startedAt === undefined) this.replayCf8.delete(t.vmid)
    const cf8State = this.replayCf8.get(t.vmid) ?? new Map<number, bigint>()
    this.replayCf8.set(t.vmid, cf8State)
    let replayed = 0
    let synthesized = 0
    let errors = 0
    let lastError: string | undefined
    const startedAt = options.startedAt ?? performance.now()
    await Promise.all(
      [...perVcpu.entries()].map(async ([vcpu, list]) => {
        for (const { at, access, cf8 } of list) {
          if (!options.fast) {
            const wait = startedAt + at - performance.now()
            if (wait > 1) await sleep(wait)
          }
          try {
            if (cf8 !== undefined && cf8State.get(vcpu) !== cf8) {
              await t.access({
                vmid: t.vmid,
                vcpu,
                type: 'pio',
                dir: 'write',
                addr: 0xcf8n,
                size: 4,
                value: cf8,
              })
              cf8State.set(vcpu, cf8)
              synthesized++
            }
            await t.access({ vmid: t.vmid, vcpu, ...access })
            if (access.type === 'pio' && access.addr === 0xcf8n && access.dir === 'write') {
              cf8State.set(vcpu, access.size === 4 ? access.value : -1n)
            }
            replayed++
          } catch (e) {
            errors++
            lastError = (e as Error).message
            return
          }
        }
      }),
    )
    return {
      name,
      replayed,
      skipped,
      errors,
      synthesized,
      startedAt,
      origin,
      ...(lastError ? { lastError } : {}),
    }
  }
}

export interface ReplayResult {
  name: string
  /** Recorded requests made again. */
  replayed: number
  /** Records of no known type. */
  skipped: number
  /** vCPUs that stopped on a failed access (the VM paused or went away). */
  errors: number
  /** Why the first failed access failed. */
  lastError?: string
  /** 0xCF8 writes made before PCI config reads the recording did not hold them for. */
  synthesized: number
  /** Daemon time (ms) the record at `origin` was replayed at: pass it with the next chunk. */
  startedAt: number
  origin: number
}

/** An ioeventfd a replay adds to its VM while it runs, and the recorded requests it serves. */
export interface ReplayIoeventfd extends IoeventfdSpec {
  requests: number
}

/**
 * What a replay needs so that the requests the kernel's ioeventfd client handled at record
 * time (client `ioeventfd`, §5.5) are handled in the kernel again rather than by the
 * default client: a wildcard ioeventfd at each recorded address, as long as the largest
 * access made there, unless one of the VM's own ioeventfds already covers that access
 * (§4.3: a request goes to a client only when it lies fully inside one of its ranges).
 * The recording keeps neither an ioeventfd's length nor its datamatch; a wildcard of the
 * accessed length catches every recorded request and nothing the default client had.
 */
export function replayIoeventfds(
  records: Uint8Array,
  existing: readonly Omit<IoeventfdSpec, 'datamatch'>[],
): { kernelHandled: number; add: ReplayIoeventfd[] } {
  const wanted = new Map<string, ReplayIoeventfd>()
  let kernelHandled = 0
  for (const { client, type, addr, size: len } of traceRecords(records)) {
    if (client !== 'ioeventfd' || type === 'pcicfg') continue
    kernelHandled++
    const pio = type === 'pio'
    const key = `${pio}:${addr}`
    const entry = wanted.get(key)
    if (entry) {
      entry.len = Math.max(entry.len, len)
      entry.requests++
    } else wanted.set(key, { addr, len, pio, requests: 1 })
  }
  const covered = (w: ReplayIoeventfd) =>
    existing.some(
      (e) =>
        e.pio === w.pio && e.addr <= w.addr && w.addr + BigInt(w.len) <= e.addr + BigInt(e.len),
    )
  return { kernelHandled, add: [...wanted.values()].filter((w) => !covered(w)) }
}
