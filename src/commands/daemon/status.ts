import { HsmCommand } from '../../cli/base-command.js'
import { singleHost } from '../../cli/daemon-command.js'
import { backendFlag, hostFlag } from '../../cli/flags.js'
import type { DaemonStatus } from '../../core/daemon/hsmd.js'
import type { Backend } from '../../core/daemon/paths.js'

export type StatusResult =
  | ({ running: true } & DaemonStatus)
  | { running: false; backend: string; socket?: string; host?: string }

export default class DaemonStatusCommand extends HsmCommand {
  static override summary = 'Show whether hsmd runs, its pid, socket, uptime and connections.'

  static override description =
    'Exits 0 when hsmd runs and 3 when it does not, as `systemctl status` does.'

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json',
  ]

  static override flags = { backend: backendFlag, host: hostFlag }

  async run(): Promise<StatusResult> {
    const { flags } = await this.parse(DaemonStatusCommand)
    const backend = flags.backend as Backend
    const host = await singleHost(this.id, flags.host)
    const { openIfRunning } = await import('../../core/daemon/target.js')
    const { socketPath } = await import('../../core/daemon/paths.js')
    const client = await openIfRunning({ backend, host })
    if (!client) {
      // a remote host's socket path is its own (its environment): not known here
      this.log(
        host
          ? `hsmd (${backend}) on ${host.label}: not running`
          : `hsmd (${backend}): not running (socket ${socketPath(backend)})`,
      )
      // not an error, but a different answer: exit 3, as `systemctl status` does
      process.exitCode = 3
      return host
        ? { running: false, backend, host: host.label }
        : { running: false, backend, socket: socketPath(backend) }
    }
    try {
      const status = await client.call<DaemonStatus>('daemon.status')
      this.log(
        [
          `hsmd (${status.backend})${host ? ` on ${host.label}` : ''}: running`,
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
