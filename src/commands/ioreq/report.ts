import { Args, Flags } from '@oclif/core'
import { HsmCommand } from '../../cli/base-command.js'
import { filterFromFlags, traceFilterFlags } from '../../cli/trace-flags.js'
import type { TopRecord } from '../../ui/trace.js'

export default class IoreqReport extends HsmCommand {
  static override summary = 'Summarise a recording: the table of `ioreq watch`, offline.'

  static override description = `Rates are requests over the recording's span: from the moment the recorder started to
the moment it stopped (for a recorder killed before it could note its stop, from the
first request to the last); --json gives that span as "seconds". Rows have one schema in
--json, jsonl and csv, that of \`ioreq watch\` (README, "Live ioreq tracing").`

  static override examples = [
    '<%= config.bin %> <%= command.id %> trace.hsmtrace',
    '<%= config.bin %> <%= command.id %> trace.hsmtrace --format csv',
  ]

  static override args = {
    file: Args.string({ description: 'A file written by `ioreq record`.', required: true }),
  }

  static override flags = {
    ...traceFilterFlags,
    format: Flags.string({
      description: 'Output format.',
      options: ['table', 'csv', 'jsonl'],
      default: 'table',
    }),
    sort: Flags.string({
      description: 'Sort rows by.',
      options: ['count', 'latency', 'address'],
      default: 'count',
    }),
    'by-vcpu': Flags.boolean({ description: 'One row per vCPU.' }),
  }

  async run(): Promise<{ file: string; records: number; seconds: number; rows: TopRecord[] }> {
    const { args, flags } = await this.parse(IoreqReport)
    const { readTraceFile, recordingSpanMs } = await import('../../core/trace/file.js')
    const { TraceStats } = await import('../../core/trace/stats.js')
    const { TopModel } = await import('../../core/trace/view.js')
    const { compileFilter } = await import('../../core/trace/filter.js')
    const { renderTop, topRecord } = await import('../../ui/trace.js')
    const file = readTraceFile(args.file)
    if (file.partialTail)
      process.stderr.write(
        `${args.file}: ignoring a partial last record (${file.partialTail} bytes)\n`,
      )
    if (file.header.dropped)
      process.stderr.write(
        `${args.file}: the recorder lost ${file.header.dropped} requests (the daemon's ring overran it)\n`,
      )
    const filter = filterFromFlags(flags, [], file.header.vms)
    const stats = new TraceStats()
    stats.ingest(file.records)
    const model = new TopModel({ filter, sort: flags.sort as 'count' })
    const names = new Map(file.header.vms.map((v) => [v.vmid, v.name]))
    const spanMs = recordingSpanMs(file)
    // two samples: nothing at the recording's start, everything at its end, so that each
    // rate is requests over the recording's span
    model.update([], 0)
    // filtered before the vCPUs are merged, as the daemon does for `ioreq watch`
    model.update(
      stats.rows(compileFilter(filter), flags['by-vcpu']),
      spanMs,
      (id) => names.get(id) ?? String(id),
    )
    const rows = model.rows()
    if (!this.jsonEnabled()) {
      const text = renderTop(rows, model.totals, flags.format as 'table', file.header.createdAt)
      if (text !== '') this.log(text)
    }
    return {
      file: args.file,
      records: file.count,
      seconds: spanMs / 1000,
      rows: rows.map(topRecord),
    }
  }
}
