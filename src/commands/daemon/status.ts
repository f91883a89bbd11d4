import { HsmCommand } from '../../cli/base-command.js'
import { backendFlag } from '../../cli/flags.js'
import type { DaemonStatus } from '../../core/daemon/hsmd.js'
import type { Backend } from '../../core/daemon/paths.js'

export type StatusResult =
  ({ running: true } & DaemonStatus) | { running: false; backend: string; socket: string }

export default class DaemonStatusCommand extends HsmCommand {
  static override summary = 'Show whether hsmd runs, its pid, socket, uptime and connections.'

  static override description =
    'Exits 0 when hsmd runs and 3 when it does not, as `systemctl status` does.'

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json',
  ]

  static override flags = { backend: backendFlag }

  async run(): Promise<StatusResult> {
    const { flags } = await this.parse(DaemonStatusCommand)
    const backend = flags.backend as Backend
    const { connectIfRunning } = await import('../../core/daemon/autostart.js')
    const { socketPath } = await import('../../core/daemon/paths.js')
    const client = await connectIfRunning(backend)
    if (!client) {
      this.log(`hsmd (${backend}): not running (socket ${socketPath(backend)})`)
      // not an error, but a different answer: exit 3, as `systemctl status` does
      process.exitCode = 3
      return { running: false, backend, socket: socketPath(backend) }
    }
    try {
      const status = await client.call<DaemonStatus>('daemon.status')
      this.log(
        [
          `hsmd (${status.backend}): running`,
          `  pid          ${status.pid}`,
          `  socket       ${status.socket}`,
          `  version      ${status.version}`,
          `  started      ${status.startedAt} (${status.uptimeSeconds}s ago)`,
          `  connections  ${status.connections}`,
          ...(status.metrics ? [`  metrics      ${status.metrics}`] : []),
          ...(status.execution
            ? [
                'engine' in status.execution
                  ? `  guest code   executes on ${status.execution.engine}`
                  : `  guest code   does not execute: ${status.execution.reason}`,
              ]
            : []),
        ].join('\n'),
      )
      return { running: true, ...status }
    } finally {
      client.close()
    }
  }
}
