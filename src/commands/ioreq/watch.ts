import { Args, Flags } from '@oclif/core'
import { DaemonCommand, interactive } from '../../cli/daemon-command.js'
import { currentAbortSignal } from '../../cli/shell/host.js'
import { sourcedClient, traceFilterFlags, traceSourceFlag } from '../../cli/trace-flags.js'
import type { FleetSampleOptions } from '../../cli/watch-fleet.js'

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
register (reg) beside the packed addr.

With several hosts (--host a,b or @FILE; --once or --interval) every host is sampled in
parallel and a HOST column comes first (csv, jsonl and --json: a host field); a host that
does not answer is one row with its error (csv: an error column), and the exit code is 8.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> demo --type pio',
    '<%= config.bin %> <%= command.id %> --once --format csv',
    '<%= config.bin %> <%= command.id %> demo --interval 1 --count 5 --format jsonl --skip-zero',
  ]

  static override strict = false

  static override fleet = true

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
    if ((await this.hosts()).length > 1) return this.watchFleet(names, flags, interval)
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

  /** Several hosts: samples only (the full-screen view shows one host). */
  private async watchFleet(
    names: string[],
    flags: FleetSampleOptions['flags'] & {
      source?: string
      once?: boolean
      count?: number | undefined
      format?: string | undefined
    },
    interval: number,
  ): Promise<unknown> {
    const { UsageError } = await import('../../core/errors.js')
    if (!flags.once && flags.count === undefined && flags.format === undefined && interactive())
      throw new UsageError('the full-screen view shows one host', {
        flag: '--host',
        hint: 'name one host, or print samples of all of them: --once, or --interval S (--count N)',
      })
    const members = (await this.fleet()).map((m) => ({
      ...m,
      client: sourcedClient(m.client, flags.source),
    }))
    const { watchFleetSamples } = await import('../../cli/watch-fleet.js')
    const result = await watchFleetSamples({
      members,
      names,
      flags,
      intervalMs: interval * 1000,
      samples: flags.once ? 1 : flags.count,
      format: (flags.format ?? 'table') as 'table' | 'csv' | 'jsonl',
      json: this.jsonEnabled(),
      write: (text) => process.stdout.write(text + '\n'),
      signal: currentAbortSignal(),
    })
    if (result.failed) process.exitCode = 8
    return { samples: result.samples }
  }
}
