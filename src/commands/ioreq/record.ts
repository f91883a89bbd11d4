import { Args, Flags } from '@oclif/core'
import { DaemonCommand } from '../../cli/daemon-command.js'
import { filterFromFlags, filterToWire, traceFilterFlags } from '../../cli/trace-flags.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { ReadReply } from '../../core/trace/methods.js'

export default class IoreqRecord extends DaemonCommand {
  static override summary =
    'Record I/O requests to a file (32 bytes each, versioned header) until Ctrl-C or --duration.'

  static override examples = [
    '<%= config.bin %> <%= command.id %> trace.hsmtrace --duration 10',
    '<%= config.bin %> <%= command.id %> pio.hsmtrace --vm demo --type pio',
  ]

  static override args = {
    file: Args.string({ description: 'The file to write.', required: true }),
  }

  static override flags = {
    ...traceFilterFlags,
    duration: Flags.string({ description: 'Seconds to record.' }),
  }

  async run(): Promise<{ file: string; records: number; dropped: number; seconds: number }> {
    const { args, flags } = await this.parse(IoreqRecord)
    const seconds = flags.duration === undefined ? undefined : Number(flags.duration)
    if (seconds !== undefined && !(seconds > 0)) {
      const { UsageError } = await import('../../core/errors.js')
      throw new UsageError(`'${flags.duration}' is not a number of seconds`, { flag: '--duration' })
    }
    const client = await this.daemon()
    const first = await client.call<Wire<ReadReply>>('trace.read', { max: 0 })
    const filter = filterFromFlags(flags, [], first.vms)
    const { TraceFileWriter } = await import('../../core/trace/file.js')
    const writer = new TraceFileWriter(args.file, {
      createdAt: new Date().toISOString(),
      vms: first.vms,
      filter,
      source: `hsmctl ${this.config.version}`,
    })
    const started = Date.now()
    let cursor = first.cursor
    let dropped = 0
    let stop = false
    const onSigint = () => (stop = true)
    process.once('SIGINT', onSigint)
    process.stderr.write(
      `recording to ${args.file}${seconds ? ` for ${seconds}s` : '; Ctrl-C stops'}\n`,
    )
    try {
      for (;;) {
        const last = stop || (seconds !== undefined && Date.now() - started >= seconds * 1000)
        const reply = await client.call<Wire<ReadReply>>('trace.read', {
          cursor,
          filter: filterToWire(filter),
          max: 200_000,
        })
        cursor = reply.cursor
        dropped += reply.dropped
        writer.write(new Uint8Array(Buffer.from(reply.records, 'base64')))
        if (last) break
        if (reply.count < 1000) await new Promise((r) => setTimeout(r, 50))
      }
    } finally {
      writer.close()
      process.off('SIGINT', onSigint)
    }
    const result = {
      file: args.file,
      records: writer.records,
      dropped,
      seconds: (Date.now() - started) / 1000,
    }
    this.log(
      `recorded ${result.records} requests in ${result.seconds.toFixed(1)}s to ${args.file}${dropped ? ` (${dropped} dropped)` : ''}`,
    )
    return result
  }
}
