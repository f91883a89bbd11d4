import { resolve } from 'node:path'
import { HsmCommand } from '../../cli/base-command.js'
import {
  backendFlag,
  deviceFlag,
  metricsFlag,
  metricsPublicFlag,
  serveSimFlag,
} from '../../cli/flags.js'
import type { DaemonStatus } from '../../core/daemon/hsmd.js'
import type { Backend } from '../../core/daemon/paths.js'

export default class DaemonStart extends HsmCommand {
  static override summary = 'Start hsmd in the background (if it is not running already).'

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json',
    '<%= config.bin %> <%= command.id %> --backend native --device /dev/acrn_hsm',
    '<%= config.bin %> <%= command.id %> --metrics 9410',
  ]

  static override flags = {
    backend: backendFlag,
    device: deviceFlag,
    'serve-sim': serveSimFlag,
    metrics: metricsFlag,
    'metrics-public': metricsPublicFlag,
  }

  async run(): Promise<DaemonStatus> {
    const { flags } = await this.parse(DaemonStart)
    const { ensureDaemon } = await import('../../core/daemon/autostart.js')
    let started = false
    // the daemon reads them from its environment (its own --device and --serve-sim flags)
    const env: NodeJS.ProcessEnv = { ...process.env }
    if (flags.device !== undefined) env.HSMCTL_DEVICE = flags.device
    if (flags['serve-sim'] !== undefined) env.HSMCTL_SERVE_SIM = resolve(flags['serve-sim'])
    if (flags.metrics !== undefined) {
      // said here, before a daemon is started with it (its own parse says it again)
      const { parseMetricsAddress } = await import('../../core/daemon/metrics-address.js')
      parseMetricsAddress(flags.metrics, { allowPublic: flags['metrics-public'] })
      env.HSMCTL_METRICS = flags.metrics
      env.HSMCTL_METRICS_PUBLIC = flags['metrics-public'] ? '1' : '0'
    }
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
      if (status.metrics) process.stderr.write(`hsmd serves metrics on ${status.metrics}\n`)
      else if (!started && flags.metrics !== undefined) {
        process.stderr.write(
          'hsmctl: warning: the running hsmd serves no metrics; stop it (`hsmctl daemon stop`) and start it again with --metrics\n',
        )
      }
      return status
    } finally {
      client.close()
    }
  }
}
