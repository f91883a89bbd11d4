import { Args, Flags } from '@oclif/core'
import { DaemonCommand } from '../../cli/daemon-command.js'
import { currentAbortSignal } from '../../cli/shell/host.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { ReplayIoeventfd, ReplayResult } from '../../core/vmm/guest-traffic.js'
import type { IoeventfdInfo } from '../../core/vmm/manager.js'

/** Records per `guest.replay` call: base64 of them stays well under the 1 MiB line limit. */
const CHUNK = 16_384

export default class IoreqReplay extends DaemonCommand {
  static override summary =
    'Play a recording back as guest traffic of a VM (simulation), with its timing or --fast.'

  static override description = `Every recorded access is made again by the same vCPU (vCPU 0 if the VM has fewer),
in recorded order, through the real trap and dispatch path, so the VM's trace shows the
same rows and counts as the recording. PCI config requests are replayed as the 0xCFC port
accesses they came from, each after the 0xCF8 write that selects its register (made by the
replay when the recording does not hold it: those writes are counted as "synthesized").
Requests the kernel's ioeventfd client handled when they were recorded are handled by it
again: for the replay's duration the VM gets a wildcard ioeventfd at each such address
that its own ioeventfds do not cover (said on stderr), removed when the replay ends.
The VM must be running; a workload running on it must be stopped first.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> trace.hsmtrace --vm demo --fast',
    '<%= config.bin %> <%= command.id %> trace.hsmtrace --vm demo',
  ]

  static override args = {
    file: Args.string({ description: 'A file written by `ioreq record`.', required: true }),
  }

  static override flags = {
    vm: Flags.string({ description: 'The VM to play it into.', required: true }),
    fast: Flags.boolean({ description: 'As fast as possible instead of the recorded timing.' }),
  }

  async run(): Promise<
    Omit<ReplayResult, 'startedAt' | 'origin' | 'lastError'> & {
      records: number
      /** Ioeventfds the VM had for the replay's duration (removed after it). */
      ioeventfds: ReplayIoeventfd[]
    }
  > {
    const { args, flags } = await this.parse(IoreqReplay)
    const { readTraceFile } = await import('../../core/trace/file.js')
    const { RECORD_SIZE } = await import('../../core/trace/record.js')
    const { replayIoeventfds } = await import('../../core/vmm/guest-traffic.js')
    const file = readTraceFile(args.file)
    if (file.partialTail)
      process.stderr.write(
        `${args.file}: ignoring a partial last record (${file.partialTail} bytes)\n`,
      )
    const own = await this.call<Wire<IoeventfdInfo[]>>('ioeventfd.list', { name: flags.vm })
    const plan = replayIoeventfds(
      file.records,
      own.map(({ addr, len, pio }) => ({ addr: BigInt(addr), len, pio })),
    )
    const signal = currentAbortSignal()
    const total = { name: flags.vm, replayed: 0, skipped: 0, errors: 0, synthesized: 0 }
    const origin = file.count ? new DataView(file.records.buffer).getFloat64(0, true) : 0
    let startedAt: number | undefined
    let lastError: string | undefined
    const added: number[] = []
    try {
      for (const { addr, len, pio } of plan.add) {
        const params = { name: flags.vm, addr, len, pio }
        added.push((await this.call<Wire<IoeventfdInfo>>('ioeventfd.add', params)).id)
      }
      if (added.length) this.sayIoeventfds(flags.vm, plan.kernelHandled, plan.add)
      for (let i = 0; i < file.count && !signal.aborted && total.errors === 0; i += CHUNK) {
        const chunk = file.records.subarray(
          i * RECORD_SIZE,
          Math.min(file.count, i + CHUNK) * RECORD_SIZE,
        )
        const r = await this.call<ReplayResult>('guest.replay', {
          name: flags.vm,
          records: Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('base64'),
          fast: flags.fast,
          origin,
          ...(startedAt !== undefined ? { startedAt } : {}),
        })
        startedAt = r.startedAt
        total.replayed += r.replayed
        total.skipped += r.skipped
        total.errors += r.errors
        total.synthesized += r.synthesized
        lastError ??= r.lastError
      }
    } finally {
      // the VM is left with the ioeventfds it had, after an error or Ctrl-C too
      for (const id of added)
        await this.call('ioeventfd.remove', { name: flags.vm, id }).catch(() => {})
    }
    if (lastError) {
      const { ConflictError } = await import('../../core/errors.js')
      throw new ConflictError(
        `the replay into ${flags.vm} stopped after ${total.replayed} requests: ${lastError}`,
        `is ${flags.vm} still running? see \`hsmctl vm show ${flags.vm}\``,
      )
    }
    const notes = [
      ...(total.synthesized ? [`${total.synthesized} 0xCF8 writes synthesized`] : []),
      ...(added.length
        ? [`${added.length} ioeventfd${added.length === 1 ? '' : 's'} added for it and removed`]
        : []),
      ...(total.skipped ? [`${total.skipped} skipped`] : []),
      ...(signal.aborted ? ['interrupted'] : []),
    ]
    this.log(
      `replayed ${total.replayed} of ${file.count} requests into ${flags.vm}${notes.length ? ` (${notes.join(', ')})` : ''}`,
    )
    return { ...total, records: file.count, ioeventfds: plan.add }
  }

  /** On stderr: which requests the replay's ioeventfds are for (the kernel handled them). */
  private sayIoeventfds(vm: string, requests: number, added: ReplayIoeventfd[]): void {
    const ranges = added.map(
      (e) => `${e.pio ? 'PIO' : 'MMIO'} 0x${e.addr.toString(16)} len ${e.len}`,
    )
    const what = added.length === 1 ? 'an ioeventfd' : `${added.length} ioeventfds`
    process.stderr.write(
      `${requests} recorded requests were handled in the kernel by ioeventfds (which complete them without hsmd); ${vm} has ${what} for them while the replay runs: ${ranges.join(', ')}\n`,
    )
  }
}
