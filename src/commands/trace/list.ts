import { DaemonCommand } from '../../cli/daemon-command.js'
import type { TapListReply } from '../../core/daemon/tap-service.js'

export default class TraceList extends DaemonCommand {
  static override summary = 'List the processes running under the tap, and those that ended.'

  static override description = `One row per traced process (\`hsmctl trace exec\`, or a launch script
with \`hsmctl trace env\`'s line): its pid and program, whether it is still connected,
the HSM ioctls and I/O requests it streamed, the records its tap dropped (its ring was
full: hsmd was slow or not there yet), and the VMs it holds. Ended processes are kept
(the last 32) until the daemon stops.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json',
  ]

  async run(): Promise<TapListReply> {
    await this.parse(TraceList)
    const reply = await this.call<TapListReply>('tap.list')
    if (!this.jsonEnabled()) {
      const { traceListText } = await import('../../ui/tap.js')
      process.stdout.write(traceListText(reply))
    }
    return reply
  }
}
