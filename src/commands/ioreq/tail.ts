import { Args, Flags } from '@oclif/core'
import { DaemonCommand } from '../../cli/daemon-command.js'
import { filterFromFlags, filterToWire, traceFilterFlags } from '../../cli/trace-flags.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { ReadReply } from '../../core/trace/methods.js'

export default class IoreqTail extends DaemonCommand {
  static override summary = 'Print I/O requests as they happen, one line each, until Ctrl-C.'

  static override description = `Each line: time, VM, vCPU, type, direction, address (or BDF and register), size, value,
handling client and latency. Requests the daemon's trace ring no longer holds when the
reader catches up are counted as dropped.`

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
    count: Flags.integer({ description: 'Stop after this many requests.', min: 1 }),
  }

  async run(): Promise<{ printed: number; dropped: number }> {
    const { argv, flags } = await this.parse(IoreqTail)
    const client = await this.daemon()
    const first = await client.call<Wire<ReadReply>>('trace.read', { max: 0 })
    const filter = filterToWire(filterFromFlags(flags, argv as string[], first.vms))
    const { records } = await import('../../core/trace/record.js')
    const { eventText } = await import('../../core/trace/format.js')
    const names = new Map(first.vms.map((v) => [v.vmid, v.name]))
    let cursor = first.cursor
    let printed = 0
    let dropped = 0
    let stop = false
    process.once('SIGINT', () => (stop = true))
    while (!stop && (flags.count === undefined || printed < flags.count)) {
      const reply = await client.call<Wire<ReadReply>>('trace.read', {
        cursor,
        filter,
        max: 10_000,
      })
      cursor = reply.cursor
      dropped += reply.dropped
      for (const v of reply.vms) names.set(v.vmid, v.name)
      if (reply.dropped) process.stderr.write(`(${reply.dropped} requests dropped)\n`)
      for (const e of records(new Uint8Array(Buffer.from(reply.records, 'base64')))) {
        if (flags.count !== undefined && printed >= flags.count) break
        if (!this.jsonEnabled())
          process.stdout.write(eventText(e, (id) => names.get(id) ?? String(id)) + '\n')
        printed++
      }
      if (reply.count === 0) await new Promise((r) => setTimeout(r, 100))
    }
    return { printed, dropped }
  }
}
