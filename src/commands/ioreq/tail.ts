import { Args, Flags } from '@oclif/core'
import { DaemonCommand } from '../../cli/daemon-command.js'
import { currentAbortSignal, shellHost } from '../../cli/shell/host.js'
import {
  filterFromFlags,
  filterToWire,
  sourcedClient,
  traceFilterFlags,
  traceSourceFlag,
} from '../../cli/trace-flags.js'
import type { DaemonClient } from '../../core/daemon/client.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { ReadReply } from '../../core/trace/methods.js'

interface Follow {
  client: DaemonClient
  cursor: number
  filter: Record<string, unknown>
  names: Map<number, string>
  count: number | undefined
  signal: AbortSignal
  line: (text: string) => void
  dropped: (n: number) => void
}

/** Print requests from the cursor on until the signal aborts or `count` are printed. */
async function follow(f: Follow): Promise<{ printed: number; dropped: number }> {
  const { records } = await import('../../core/trace/record.js')
  const { eventText } = await import('../../core/trace/format.js')
  let cursor = f.cursor
  let printed = 0
  let dropped = 0
  while (!f.signal.aborted && (f.count === undefined || printed < f.count)) {
    const reply = await f.client.call<Wire<ReadReply>>('trace.read', {
      cursor,
      filter: f.filter,
    })
    cursor = reply.cursor
    for (const v of reply.vms) f.names.set(v.vmid, v.name)
    if (reply.dropped) {
      dropped += reply.dropped
      f.dropped(reply.dropped)
    }
    for (const e of records(new Uint8Array(Buffer.from(reply.records, 'base64')))) {
      if (f.count !== undefined && printed >= f.count) break
      f.line(eventText(e, (id) => f.names.get(id) ?? String(id)))
      printed++
    }
    if (reply.cursor >= reply.published) await new Promise((r) => setTimeout(r, 100))
  }
  return { printed, dropped }
}

export default class IoreqTail extends DaemonCommand {
  static override summary = 'Print I/O requests as they happen, one line each, until Ctrl-C.'

  static override description = `Each line: time, VM, vCPU, type, direction, address (or BDF and register), size, value,
handling client and latency. Requests the daemon's trace ring no longer holds when the
reader catches up are counted as dropped. In the interactive shell the lines are printed
above the prompt while you type other commands (without --count); Ctrl-C at the prompt
stops them.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo',
    '<%= config.bin %> <%= command.id %> --type pcicfg --count 20',
  ]

  static override strict = false

  static override args = {
    names: Args.string({ description: 'VMs to follow (default: all).', required: false }),
  }

  static override flags = {
    ...traceFilterFlags,
    source: traceSourceFlag,
    count: Flags.integer({ description: 'Stop after this many requests.', min: 1 }),
  }

  async run(): Promise<{ printed: number; dropped: number; background?: boolean }> {
    const { argv, flags } = await this.parse(IoreqTail)
    const client = sourcedClient(await this.daemon(), flags.source)
    const first = await client.call<Wire<ReadReply>>('trace.read', { max: 0 })
    const filter = filterToWire(filterFromFlags(flags, argv as string[], first.vms))
    const names = new Map(first.vms.map((v) => [v.vmid, v.name]))
    const host = shellHost()
    if (host && flags.count === undefined && !this.jsonEnabled()) {
      // in the shell: keep following on a connection of our own after run() returns
      const { openIfRunning } = await import('../../core/daemon/target.js')
      const connected = await openIfRunning(await this.target())
      const own = connected && sourcedClient(connected, flags.source)
      if (!own) {
        const { DaemonUnreachableError } = await import('../../core/errors.js')
        throw new DaemonUnreachableError('hsmd went away', 'see `hsmctl daemon status`')
      }
      host.background('ioreq tail', async (signal) => {
        try {
          await follow({
            client: own,
            cursor: first.cursor,
            filter,
            names,
            count: undefined,
            signal,
            line: (text) => host.print(text),
            dropped: (n) => host.print(`(${n} requests dropped)`, 'stderr'),
          })
        } finally {
          own.close()
        }
      })
      process.stderr.write('ioreq tail: printing requests above the prompt; Ctrl-C stops it\n')
      return { printed: 0, dropped: 0, background: true }
    }
    const json = this.jsonEnabled()
    // on stderr, so scripts know the tail is in place before they make traffic
    process.stderr.write(
      `following I/O requests${flags.count ? ` (${flags.count})` : ''}; Ctrl-C stops\n`,
    )
    return follow({
      client,
      cursor: first.cursor,
      filter,
      names,
      count: flags.count,
      signal: currentAbortSignal(),
      line: (text) => {
        if (!json) process.stdout.write(text + '\n')
      },
      dropped: (n) => process.stderr.write(`(${n} requests dropped)\n`),
    })
  }
}
