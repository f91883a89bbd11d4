import { Args, Flags } from '@oclif/core'
import { HsmCommand } from '../../cli/base-command.js'
import { filterFromFlags, traceFilterFlags } from '../../cli/trace-flags.js'
import { UsageError } from '../../core/errors.js'
import type { ChromeTraceSummary } from '../../core/trace/chrome-trace.js'
import type { DeviceReport } from '../../core/trace/devices.js'
import type { TopRecord } from '../../ui/trace.js'

/** Write to stdout, waiting while its buffer is full (a trace can be hundreds of MB). */
function writeStdout(chunk: string): Promise<void> {
  return new Promise((resolve) => {
    if (process.stdout.write(chunk)) resolve()
    else process.stdout.once('drain', resolve)
  })
}

export default class IoreqReport extends HsmCommand {
  static override summary = 'Summarise a recording: the table of `ioreq watch`, offline.'

  static override description = `Rates are requests over the recording's span: from the moment the recorder started to
the moment it stopped (for a recorder killed before it could note its stop, from the
first request to the last); --json gives that span as "seconds". Rows have one schema in
--json, jsonl and csv, that of \`ioreq watch\` (README, "Live ioreq tracing").

--format chrome-trace writes the recording as Trace Event JSON, which Perfetto's UI
(ui.perfetto.dev) and chrome://tracing open: a process per VM (named as the VM), a thread
per vCPU, and a complete slice per request from PENDING to COMPLETE, its args the
address, size, direction, value, client, type and latency. Times are microseconds on the
daemon's trace clock. Requests still pending when the recorder stopped (the simulation
notes them in the recording's header) have slices that end at the stop, with args
pending: true; the other formats count completed requests only. A latency over
4.29 s saturates the record's field: that slice's dur is a lower bound and its args say
latency_saturated. The filter flags select the requests exported.

--by device groups the requests by device instead of by address: a recording holds no
device table, so devices come from its requests. PCI functions by the BDF of their config
requests, named by the IDs and class the guest read from them; their BARs by the values
the guest read or wrote in the BAR registers (and their sizes when it sized them), so
that port and MMIO requests in a BAR count to their function; PC ports by their standard
names (COM1-4, PIT, RTC, PIC, 0xCF8/0xCFC, acrn-dm's PM1a, ...); anything else by port,
or by 4 KiB page of MMIO. Notes on stderr (and "notes" in --json) say where it guessed.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> trace.hsmtrace',
    '<%= config.bin %> <%= command.id %> trace.hsmtrace --format csv',
    '<%= config.bin %> <%= command.id %> trace.hsmtrace --format chrome-trace -o trace.json',
    '<%= config.bin %> <%= command.id %> boot.hsmtrace --by device',
  ]

  static override args = {
    file: Args.string({ description: 'A file written by `ioreq record`.', required: true }),
  }

  static override flags = {
    ...traceFilterFlags,
    format: Flags.string({
      description: 'Output format.',
      options: ['table', 'csv', 'jsonl', 'chrome-trace'],
      default: 'table',
    }),
    output: Flags.string({
      char: 'o',
      description: 'With --format chrome-trace: write the trace to this file (default: stdout).',
      helpValue: 'FILE',
    }),
    sort: Flags.string({
      description: 'Sort rows by.',
      options: ['count', 'latency', 'address'],
      default: 'count',
    }),
    'by-vcpu': Flags.boolean({ description: 'One row per vCPU.' }),
    by: Flags.string({
      description: 'Group the requests by address (the rows of `ioreq watch`) or by device.',
      options: ['address', 'device'],
      default: 'address',
    }),
  }

  async run(): Promise<
    | { file: string; records: number; seconds: number; rows: TopRecord[] }
    | ({ file: string; output: string; records: number } & ChromeTraceSummary)
    | ({ file: string; records: number; seconds: number } & DeviceReport)
  > {
    const { args, flags } = await this.parse(IoreqReport)
    const chrome = flags.format === 'chrome-trace'
    if (!chrome && flags.output !== undefined)
      throw new UsageError('only --format chrome-trace writes to a file', {
        flag: '--output',
        hint: 'the other formats print to stdout: redirect it (> FILE)',
      })
    if (chrome && flags['by-vcpu'])
      throw new UsageError('does not apply to --format chrome-trace', {
        flag: '--by-vcpu',
        hint: 'a chrome trace always has one track per vCPU',
      })
    const byDevice = flags.by === 'device'
    if (byDevice && (chrome || flags.format !== 'table'))
      throw new UsageError(`--by device prints a table (or --json), not ${flags.format}`, {
        flag: '--by',
        hint: 'leave out --format, or add --json for the devices as data',
      })
    if (byDevice && flags['by-vcpu'])
      throw new UsageError('does not apply to --by device', { flag: '--by-vcpu' })
    if (chrome && flags.output === undefined && this.jsonEnabled())
      throw new UsageError('would share stdout with --format chrome-trace', {
        flag: '--json',
        hint: 'give -o FILE for the trace; --json then prints its summary',
      })
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
    if (file.header.pending && !chrome) {
      const { pendingRecords } = await import('../../core/trace/file.js')
      const { count } = pendingRecords(file)
      if (count)
        process.stderr.write(
          `${args.file}: ${count} requests were still pending when the recorder stopped (not counted here; --format chrome-trace shows them)\n`,
        )
    }
    if (chrome) {
      const { chromeTraceChunks } = await import('../../core/trace/chrome-trace.js')
      const { compileRecordFilter } = await import('../../core/trace/filter.js')
      const summary: ChromeTraceSummary = {
        slices: 0,
        pending: 0,
        saturated: 0,
        vms: 0,
        vcpus: 0,
      }
      const chunks = chromeTraceChunks(file, compileRecordFilter(filter), summary)
      if (flags.output === undefined) {
        for (const chunk of chunks) await writeStdout(chunk)
      } else {
        const { closeSync, writeSync } = await import('node:fs')
        const { openUserFileForWrite } = await import('../../core/user-file.js')
        const fd = openUserFileForWrite(flags.output, { flag: '--output' })
        try {
          for (const chunk of chunks) writeSync(fd, chunk)
        } finally {
          closeSync(fd)
        }
        process.stderr.write(
          `wrote ${summary.slices} slices (${summary.vms} VMs, ${summary.vcpus} vCPUs) to ${flags.output}\n`,
        )
      }
      if (summary.saturated)
        process.stderr.write(
          `${args.file}: ${summary.saturated} requests waited over 4.29 s (the record's latency saturates): their slices' dur is a lower bound\n`,
        )
      return { file: args.file, output: flags.output ?? '-', records: file.count, ...summary }
    }
    if (byDevice) {
      const { devicesOfRecording } = await import('../../core/trace/devices.js')
      const { compileRecordFilter } = await import('../../core/trace/filter.js')
      const report = devicesOfRecording(file, compileRecordFilter(filter))
      if (!this.jsonEnabled()) {
        const { renderDevices } = await import('../../ui/devices.js')
        this.log(renderDevices(report))
        for (const note of report.notes) process.stderr.write(`note: ${note}\n`)
      }
      return {
        file: args.file,
        records: file.count,
        seconds: recordingSpanMs(file) / 1000,
        ...report,
      }
    }
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
