// Guest traffic for the simulation (`guest run`, `ioreq replay`): vCPUs make the accesses
// a real guest would, through the real trap and dispatch path. Each vCPU runs its own
// loop (a vCPU has at most one request outstanding, §4.1); a shared pace keeps the total
// rate.

import { setTimeout as sleep } from 'node:timers/promises'
import { performance } from 'node:perf_hooks'
import { UsageError } from '../errors.js'
import type { GuestAccessRequest } from './platform.js'

export const WORKLOADS = ['uart', 'virtio-notify', 'pci-scan', 'rtc', 'mixed'] as const
export type WorkloadName = (typeof WORKLOADS)[number]

/** Where the virtio-notify workload rings its doorbell (a virtio-pci notify BAR offset). */
export const VIRTIO_NOTIFY_ADDR = 0xfe00_3000n
const VIRTIO_ISR_ADDR = 0xfe00_1000n

export type Access = Omit<GuestAccessRequest, 'vmid' | 'vcpu'>

const pio = (dir: 'read' | 'write', addr: number, size: number, value = 0n): Access => ({
  type: 'pio',
  dir,
  addr: BigInt(addr),
  size,
  value,
})

/** An endless access pattern for one vCPU. */
export function* pattern(kind: WorkloadName, vcpu: number): Generator<Access> {
  switch (kind) {
    case 'uart': {
      // a guest's serial driver: wait for THR empty (LSR), then write the byte
      const text = `hsmctl uart workload, vCPU ${vcpu}\r\n`
      for (;;) {
        for (const ch of text) {
          yield pio('read', 0x3fd, 1)
          yield pio('write', 0x3f8, 1, BigInt(ch.charCodeAt(0)))
        }
      }
    }
    case 'virtio-notify':
      // doorbell writes (ioeventfd hits, handled in the kernel), now and then the ISR read
      for (let i = 0; ; i++) {
        yield {
          type: 'mmio',
          dir: 'write',
          addr: VIRTIO_NOTIFY_ADDR,
          size: 2,
          value: BigInt(i & 1),
        }
        if (i % 16 === 15)
          yield { type: 'mmio', dir: 'read', addr: VIRTIO_ISR_ADDR, size: 1, value: 0n }
      }
    case 'pci-scan':
      // configuration mechanism #1 (§4.6): address to 0xCF8, data at 0xCFC
      for (;;) {
        for (let dev = 0; dev < 32; dev++) {
          for (const reg of [0x00, 0x08, 0x0c]) {
            yield pio('write', 0xcf8, 4, BigInt(0x8000_0000 | (dev << 11) | reg))
            yield pio('read', 0xcfc, 4)
          }
        }
      }
    case 'rtc':
      // CMOS clock: index to 0x70, data from 0x71
      for (;;) {
        for (const index of [0x0a, 0x00, 0x02, 0x04, 0x07, 0x08, 0x09]) {
          yield pio('write', 0x70, 1, BigInt(index))
          yield pio('read', 0x71, 1)
        }
      }
    case 'mixed': {
      const parts = (['uart', 'virtio-notify', 'pci-scan', 'rtc'] as const).map((k) =>
        pattern(k, vcpu),
      )
      for (let i = 0; ; i++) {
        const part = parts[i % parts.length]!
        // a few steps of each, keeping paired accesses (index then data) together
        for (let j = 0; j < 4; j++) yield part.next().value as Access
      }
    }
  }
}

export interface WorkloadOptions {
  vmid: number
  vcpus: number[]
  /** Accesses per second over all vCPUs; 0 for as fast as the path allows. */
  rate: number
  /** Stop after this many accesses (over all vCPUs). */
  count?: number
  durationMs?: number
}

export interface WorkloadStatus {
  workload: string
  vcpus: number[]
  rate: number
  accesses: number
  errors: number
  running: boolean
  lastError?: string
  elapsedMs: number
}

type Access_ = (request: GuestAccessRequest) => Promise<bigint>

/** Runs access streams on some vCPUs of a VM until stopped, counted or timed out. */
export class WorkloadRun {
  accesses = 0
  errors = 0
  lastError: string | undefined
  private stopped = false
  private readonly started = performance.now()
  readonly done: Promise<void>

  constructor(
    readonly name: string,
    private readonly access: Access_,
    private readonly streams: Map<number, Iterator<Access>>,
    private readonly options: WorkloadOptions,
  ) {
    if (options.vcpus.length === 0) throw new UsageError('no vCPUs to run on', { flag: '--vcpus' })
    this.done = Promise.all([...streams.keys()].map((vcpu) => this.loop(vcpu))).then(() => {
      this.stopped = true
    })
  }

  stop(): Promise<void> {
    this.stopped = true
    return this.done
  }

  get running(): boolean {
    return !this.stopped
  }

  status(): WorkloadStatus {
    return {
      workload: this.name,
      vcpus: this.options.vcpus,
      rate: this.options.rate,
      accesses: this.accesses,
      errors: this.errors,
      running: this.running,
      ...(this.lastError ? { lastError: this.lastError } : {}),
      elapsedMs: Math.round(performance.now() - this.started),
    }
  }

  /** Accesses started (some may still be in flight): what --count limits, exactly. */
  private issued = 0

  private finished(): boolean {
    const { count, durationMs } = this.options
    return (
      this.stopped ||
      (count !== undefined && this.issued >= count) ||
      (durationMs !== undefined && performance.now() - this.started >= durationMs)
    )
  }

  private async loop(vcpu: number) {
    const stream = this.streams.get(vcpu)!
    const perVcpuRate = this.options.rate > 0 ? this.options.rate / this.streams.size : 0
    let mine = 0
    while (!this.finished()) {
      const step = stream.next()
      if (step.done) return
      // counted before the await, so that vCPUs running side by side stop at --count
      this.issued++
      try {
        await this.access({ vmid: this.options.vmid, vcpu, ...step.value })
        this.accesses++
      } catch (e) {
        // a VM paused, reset or destroyed under the workload ends it
        this.errors++
        this.lastError = (e as Error).message
        this.stopped = true
        return
      }
      mine++
      if (perVcpuRate > 0) {
        const due = this.started + (mine * 1000) / perVcpuRate
        const wait = due - performance.now()
        if (wait > 1) await sleep(wait)
      } else if ((mine & 1023) === 0) {
        await new Promise((r) => setImmediate(r)) // let the daemon answer its socket
      }
    }
  }
}
