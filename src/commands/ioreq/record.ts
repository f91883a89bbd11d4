import { Args, Flags } from '@oclif/core'
import { DaemonCommand } from '../../cli/daemon-command.js'
import { currentAbortSignal } from '../../cli/shell/host.js'
import {
  filterFromFlags,
  filterToWire,
  sourcedClient,
  traceFilterFlags,
  traceSourceFlag,
} from '../../cli/trace-flags.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { ReadReply } from '../../core/trace/methods.js'
import { RECORD_SIZE } from '../../core/trace/record.js'

export default class IoreqRecord extends DaemonCommand {
  static override summary =
    'Record I/O requests to a file (32 bytes each, versioned header) until Ctrl-C or --duration.'

  static override description = `The file holds exactly the requests that passed the filter flags, from the moment the
recorder starts to the moment it stops, in the daemon's 32-byte trace records after a
versioned header (the VMs seen, the filter, the time). If the daemon's trace ring overran
the recorder, the lost requests are counted, reported on stderr and in --json as
"dropped", and noted in the header. Requests still pending when it stops (on the
simulation) are noted in the header too, for \`ioreq report --format chrome-trace\`. Read the file with \`ioreq report\`, play it with
\`ioreq replay\`.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> trace.hsmtrace --duration 10',
    '<%= config.bin %> <%= command.id %> pio.hsmtrace --vm demo --type pio',
  ]

  static override args = {
    file: Args.string({ description: 'The file to write.', required: true }),
  }

  static override flags = {
    ...traceFilterFlags,
    source: traceSourceFlag,
    duration: Flags.string({ description: 'Seconds to record.' }),
  }

  async run(): Promise<{ file: string; records: number; dropped: number; seconds: number }> {
    const { args, flags } = await this.parse(IoreqRecord)
    const seconds = flags.duration === undefined ? undefined : Number(flags.duration)
    if (seconds !== undefined && !(seconds > 0 && seconds <= 86_400)) {
      const { UsageError } = await import('../../core/errors.js')
      throw new UsageError(`'${flags.duration}' is not a number of seconds`, { flag: '--duration' })
    }
    const client = sourcedClient(await this.daemon(), flags.source)
    const signal = currentAbortSignal()
    const first = await client.call<Wire<ReadReply>>('trace.read', { max: 0 })
    const filter = filterFromFlags(flags, [], first.vms)
    const wire = filterToWire(filter)
    const { TraceFileWriter } = await import('../../core/trace/file.js')
    const header = {
      createdAt: new Date().toISOString(),
      vms: first.vms,
      filter,
      source: `hsmctl ${this.config.version}`,
    }
    const writer = new TraceFileWriter(args.file, header)
    const vms = new Map(first.vms.map((v) => [`${v.vmid}:${v.name}`, v]))
    const started = Date.now()
    let cursor = first.cursor
    let dropped = 0
    let pending: Buffer | undefined
    let traceEnd: number | undefined
    process.stderr.write(
      `recording to ${args.file}${seconds ? ` for ${seconds}s` : '; Ctrl-C stops'}\n`,
    )
    const read = async (pending = false) => {
      const reply = await client.call<Wire<ReadReply>>('trace.read', {
        cursor,
        filter: wire,
        max: 1_000_000,
        ...(pending ? { pending: true } : {}),
      })
      cursor = reply.cursor
      dropped += reply.dropped
      for (const v of reply.vms) vms.set(`${v.vmid}:${v.name}`, v)
      writer.write(new Uint8Array(Buffer.from(reply.records, 'base64')))
      return reply
    }
    try {
      for (;;) {
        const end = seconds === undefined ? Infinity : started + seconds * 1000
        if (signal.aborted || Date.now() >= end) break
        const reply = await read()
        // caught up: wait a little (but not past the end) before the next read
        if (reply.cursor >= reply.published)
          await pause(Math.min(50, Math.max(0, end - Date.now())), signal)
      }
      // the recording ends at the head as of now: read up to it, however many replies;
      // the last reply caught up with the daemon, so that the requests outstanding at that
      // moment (which it also gives) are exactly those not in the file
      let last = await read(true)
      const head = last.published
      for (let n = 0; last.cursor < (n < 100 ? last.published : head) && last.count > 0; n++)
        last = await read(true)
      if (last.pending) {
        pending = Buffer.from(last.pending.records, 'base64')
        traceEnd = last.pending.now
      }
    } finally {
      const stopped = {
        ...header,
        vms: [...vms.values()],
        stoppedAt: new Date().toISOString(),
        dropped,
      }
      // requests still pending, as many as the header's room holds (a few dozen)
      let kept = pending ? pending.byteLength / RECORD_SIZE : 0
      const withPending = (n: number) =>
        pending && traceEnd !== undefined
          ? {
              ...stopped,
              traceEnd,
              pending: pending.subarray(0, n * RECORD_SIZE).toString('base64'),
              ...(n < pending.byteLength / RECORD_SIZE
                ? { pendingOmitted: pending.byteLength / RECORD_SIZE - n }
                : {}),
            }
          : stopped
      while (!writer.updateHeader(withPending(kept)) && kept > 0) kept = Math.floor(kept / 2)
      writer.close()
    }
    const result = {
      file: args.file,
      records: writer.records,
      dropped,
      seconds: (Date.now() - started) / 1000,
    }
    if (dropped)
      process.stderr.write(
        `warning: ${dropped} requests were lost: the daemon's trace ring overran the recorder\n`,
      )
    this.log(
      `recorded ${result.records} requests in ${result.seconds.toFixed(1)}s to ${args.file}${dropped ? ` (${dropped} dropped)` : ''}`,
    )
    return result
  }
}

/** Resolves after `ms`, or at once when the signal aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done)
  })
}
