// `guest run|stop|replay` in the daemon: workloads and replays on the simulation's vCPUs,
// one per VM at a time, through VmManager's public operations.

import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { ConflictError, NotFoundError, UsageError } from '../errors.js'
import { RECORD_SIZE, readRecord, TYPE_NAMES } from '../trace/record.js'
import { unpackPciAddr } from '../trace/record.js'
import type { VmManager } from './manager.js'
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

  /**
   * Play recorded requests back as guest accesses, per vCPU in recorded order, with the
   * recorded spacing unless `fast`. A PCICFG record was a 0xCFC..0xCFF access made after
   * the 0xCF8 write that the recording also holds (§4.6), so it is replayed as that port.
   */
  async replay(
    name: string,
    records: Uint8Array,
    fast: boolean,
  ): Promise<{ name: string; replayed: number; skipped: number; errors: number }> {
    const t = this.target(name)
    this.claim(name)
    if (records.byteLength % RECORD_SIZE !== 0)
      throw new UsageError('records must be whole 32-byte records')
    const view = new DataView(records.buffer, records.byteOffset, records.byteLength)
    const perVcpu = new Map<number, { at: number; access: Access }[]>()
    let skipped = 0
    let first: number | undefined
    for (let off = 0; off < records.byteLength; off += RECORD_SIZE) {
      const e = readRecord(view, off)
      first ??= e.t
      const vcpu = e.vcpu < t.vcpuNum ? e.vcpu : 0
      let access: Access
      if (e.type === 'pcicfg') {
        access = {
          type: 'pio',
          dir: e.dir,
          addr: 0xcfcn + BigInt(unpackPciAddr(e.addr).reg & 3),
          size: e.size,
          value: e.value,
        }
      } else if (TYPE_NAMES.includes(e.type)) {
        access = {
          type: e.type,
          dir: e.dir,
          addr: e.addr,
          size: e.size,
          value: e.dir === 'write' ? e.value : 0n,
        }
      } else {
        skipped++
        continue
      }
      const list = perVcpu.get(vcpu) ?? []
      list.push({ at: e.t - first, access })
      perVcpu.set(vcpu, list)
    }
    let replayed = 0
    let errors = 0
    const start = performance.now()
    await Promise.all(
      [...perVcpu.entries()].map(async ([vcpu, list]) => {
        for (const { at, access } of list) {
          if (!fast) {
            const wait = start + at - performance.now()
            if (wait > 1) await sleep(wait)
          }
          try {
            await t.access({ vmid: t.vmid, vcpu, ...access })
            replayed++
          } catch {
            errors++
            return
          }
        }
      }),
    )
    return { name, replayed, skipped, errors }
  }
}
