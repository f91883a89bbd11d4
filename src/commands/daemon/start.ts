import { resolve } from 'node:path'
import { HsmCommand } from '../../cli/base-command.js'
import { backendFlag, deviceFlag, serveSimFlag } from '../../cli/flags.js'
import type { DaemonStatus } from '../../core/daemon/hsmd.js'
import type { Backend } from '../../core/daemon/paths.js'

export default class DaemonStart extends HsmCommand {
  static override summary = 'Start hsmd in the background (if it is not running already).'

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json',
    '<%= config.bin %> <%= command.id %> --backend native --device /dev/acrn_hsm',
  ]

  static override flags = { backend: backendFlag, device: deviceFlag, 'serve-sim': serveSimFlag }

  async run(): Promise<DaemonStatus> {
    const { flags } = await this.parse(DaemonStart)
    const { ensureDaemon } = await import('../../core/daemon/autostart.js')
    let started = false
    // the daemon reads them from its environment (its own --device and --serve-sim flags)
    const env: NodeJS.ProcessEnv = { ...process.env }
    if (flags.device !== undefined) env.HSMCTL_DEVICE = flags.device
    if (flags['serve-sim'] !== undefined) env.HSMCTL_SERVE_SIM = resolve(flags['serve-sim'])
    const client = await ensureDaemon({
      backend: flags.backend as Backend,
      env,
      onStart: () => (started = true),
    })
    try {
      const status = await client.call<DaemonStatus>('daemon.status')
      process.stderr.write(
        started
          ? `started hsmd (${status.backend}) pid ${status.pid} on ${status.socket}\n`
          : `hsmd (${status.backend}) is already running, pid ${status.pid}\n`,
      )
      return status
    } finally {
      client.close()
    }
  }
}
