import { Args, Flags } from '@oclif/core'
import { DaemonCommand, interactive } from '../../cli/daemon-command.js'
import { currentAbortSignal } from '../../cli/shell/host.js'
import { sourcedClient, traceFilterFlags, traceSourceFlag } from '../../cli/trace-flags.js'

export default class IoreqWatch extends DaemonCommand {
  static override summary =
    'Watch ioreq traffic live: a top-like table of requests, or a per-request log.'

  static override description = `On a terminal, a full-screen view of the stream, redrawn every --interval seconds, with
two views switched with o: a table of rows keyed by type, address and direction (PCI
config as BDF+register) with count, %, current rate, latency min/avg/p99/max from PENDING
to COMPLETE and the handling client, and a scrolling request log. The header shows the
VMs with their vmids, the elapsed time, the requests the log dropped and the filter.
Keys: q quit, h help, f edit the filter (e.g. "type pio dir write vm demo addr
0x3f0-0x3ff client default vcpu 0"; Enter applies, Esc cancels), s sort, r reset counts
and latencies, o switch view, space pause. A named VM that goes away is shown as gone,
and watched again when a VM of the same name comes back.

Off a terminal, or with --once, --count or --format, it prints samples instead: --once
prints one (rates over --interval), --interval S prints one every S seconds (--count N of
them), in table, csv or jsonl format. Counts are totals since the daemon started. csv and
jsonl have a column per field: PCI config rows carry their function (bdf, 00:03.0) and
register (reg) beside the packed addr.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> demo --type pio',
    '<%= config.bin %> <%= command.id %> --once --format csv',
    '<%= config.bin %> <%= command.id %> demo --interval 1 --count 5 --format jsonl --skip-zero',
  ]

  static override strict = false

  static override args = {
    names: Args.string({ description: 'VMs to watch (default: all).', required: false }),
  }

  static override flags = {
    ...traceFilterFlags,
    source: traceSourceFlag,
    once: Flags.boolean({ description: 'Print one sample and exit.' }),
    interval: Flags.string({ description: 'Seconds between samples.', default: '1' }),
    count: Flags.integer({ description: 'Stop after this many samples.', min: 1 }),
    format: Flags.string({
      description: 'Output format off the full-screen view.',
      options: ['table', 'csv', 'jsonl'],
    }),
    'skip-zero': Flags.boolean({
      description: 'Leave out rows with no requests in the last interval.',
    }),
    sort: Flags.string({
      description: 'Sort rows by.',
      options: ['count', 'rate', 'latency', 'address'],
      default: 'count',
    }),
    'by-vcpu': Flags.boolean({ description: 'One row per vCPU instead of per VM.' }),
  }

  async run(): Promise<unknown> {
    const { argv, flags } = await this.parse(IoreqWatch)
    const interval = Number(flags.interval)
    if (!Number.isFinite(interval) || interval <= 0 || interval > 3600) {
      const { UsageError } = await import('../../core/errors.js')
      throw new UsageError(`'${flags.interval}' is not a number of seconds`, { flag: '--interval' })
    }
    const names = argv as string[]
    const client = sourcedClient(await this.daemon(), flags.source)
    const live =
      interactive() &&
      process.stdout.isTTY &&
      !flags.once &&
      flags.format === undefined &&
      flags.count === undefined &&
      !this.jsonEnabled()
    // Ctrl-C: the shell's or the CLI's signal (in raw mode the view also sees it as a key)
    const signal = currentAbortSignal()
    if (live) {
      const { runWatchTui } = await import('../../ui/watch/tui.js')
      await runWatchTui({ client, names, flags, intervalMs: interval * 1000, signal })
      return { quit: true }
    }
    const { watchSamples } = await import('../../cli/watch-samples.js')
    return watchSamples({
      client,
      names,
      flags,
      intervalMs: interval * 1000,
      samples: flags.once ? 1 : flags.count,
      format: (flags.format ?? 'table') as 'table' | 'csv' | 'jsonl',
      json: this.jsonEnabled(),
      write: (text) => process.stdout.write(text + '\n'),
      signal,
    })
  }
}
