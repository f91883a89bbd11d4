import { Args, Flags } from '@oclif/core'
import { DaemonCommand } from '../../cli/daemon-command.js'
import { currentAbortSignal } from '../../cli/shell/host.js'
import type { IoctlReadReply } from '../../core/daemon/tap-service.js'
import type { IoctlCall } from '../../core/trace/ioctl-call.js'

export default class IoctlLog extends DaemonCommand {
  static override summary = 'The decoded HSM ioctls of a process, strace-like, one line each.'

  static override description = `Every HSM ioctl of the processes run under the tap (\`hsmctl trace exec\`, or a
launch script with \`hsmctl trace env\`'s line) and, on the sim backend, of every program
under the device shim: its name, the struct it passed decoded with the ABI tables (for
CREATE_VM and PM_GET_CPU_STATE, after =>, what the kernel wrote back), the result, the
errno and how long it took:

  CREATE_VM {vmid=0, vcpu_num=0, uuid="vm1", ...} => {vmid=1, vcpu_num=1} = 0 <2.8ms>

Reserved fields show only when they are not zero, and nested structs only their fields
that are not zero; --json has every field (64-bit values as hex strings). NAME picks the
process that holds that VM, --pid a process by its id; without either, every process,
each line starting with [pid N]. The daemon keeps the last 8 MiB of calls; --follow
prints what it holds, then each new call until Ctrl-C (with --json, one JSON object per
line). On the simulation a shimmed program under the tap is logged twice, once by each
--source: tap (what the tap saw) and sim (what the simulation was asked).`

  static override examples = [
    '<%= config.bin %> <%= command.id %> vm1',
    '<%= config.bin %> <%= command.id %> --pid 4242 --follow',
    '<%= config.bin %> <%= command.id %> vm1 --source tap --json',
  ]

  static override args = {
    name: Args.string({ description: 'The VM whose holding process to show.', required: false }),
  }

  static override flags = {
    pid: Flags.integer({ description: 'The process to show.', min: 1, exclusive: ['name'] }),
    source: Flags.string({
      description: 'Only calls seen by the tap, or only those the simulation served.',
      options: ['tap', 'sim'],
    }),
    follow: Flags.boolean({ char: 'f', description: 'Keep printing new calls until Ctrl-C.' }),
    count: Flags.integer({ description: 'Stop after this many calls.', min: 1 }),
  }

  async run(): Promise<IoctlCall[] | { printed: number; dropped: number }> {
    const { args, flags } = await this.parse(IoctlLog)
    const client = await this.daemon()
    const { ioctlLine } = await import('../../core/trace/ioctl-call.js')
    const json = this.jsonEnabled()
    const params = {
      ...(args.name !== undefined ? { vm: args.name } : {}),
      ...(flags.pid !== undefined ? { pid: flags.pid } : {}),
      ...(flags.source !== undefined ? { source: flags.source } : {}),
    }
    const oneProcess = args.name !== undefined || flags.pid !== undefined
    const text = (c: IoctlCall) => (oneProcess ? '' : `[pid ${c.pid}] `) + ioctlLine(c)
    const signal = currentAbortSignal()
    const calls: IoctlCall[] = []
    let cursor = 0
    let printed = 0
    let dropped = 0
    const done = () => flags.count !== undefined && printed >= flags.count
    while (!signal.aborted && !done()) {
      const reply = await client.call<IoctlReadReply>('ioctl.read', { ...params, cursor })
      cursor = reply.cursor
      if (reply.dropped) {
        dropped += reply.dropped
        process.stderr.write(`(${reply.dropped} calls dropped: the daemon no longer held them)\n`)
      }
      for (const c of reply.calls) {
        if (done()) break
        printed++
        if (!json) process.stdout.write(text(c) + '\n')
        else if (flags.follow) process.stdout.write(JSON.stringify(c) + '\n')
        else calls.push(c)
      }
      if (reply.cursor >= reply.published) {
        if (!flags.follow) break
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    this.streamed = json && flags.follow
    return json ? calls : { printed, dropped }
  }

  /** --follow --json printed JSON Lines as the calls came: no document after them. */
  private streamed = false

  override logJson(json: unknown): void {
    if (!this.streamed) super.logJson(json)
  }
}
