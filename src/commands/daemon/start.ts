import { resolve } from 'node:path'
import { HsmCommand } from '../../cli/base-command.js'
import { singleHost } from '../../cli/daemon-command.js'
import {
  backendFlag,
  deviceFlag,
  hostFlag,
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
    host: hostFlag,
  }

  async run(): Promise<DaemonStatus> {
    const { flags } = await this.parse(DaemonStart)
    // --device, --serve-sim and --metrics set up a daemon here: a remote hsmd starts with
    // its own (run `daemon start` there)
    const remoteOnly =
      flags.device !== undefined || flags['serve-sim'] !== undefined || flags.metrics !== undefined
        ? 'with --device, --serve-sim or --metrics sets up hsmd on this machine'
        : undefined
    const host = await singleHost(
      this.id,
      flags.host,
      remoteOnly && flags.host ? remoteOnly : undefined,
    )
    if (host) return this.startRemote(host, flags.backend as Backend)
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

  /** On a remote host: dial-stdio starts hsmd there as any command would. */
  private async startRemote(
    host: import('../../core/daemon/ssh/hosts.js').SshHost,
    backend: Backend,
  ): Promise<DaemonStatus> {
    const { connectSsh } = await import('../../core/daemon/ssh/transport.js')
    const client = connectSsh(host, { backend })
    try {
      const [notice, status] = await Promise.all([
        client.ready,
        client.call<DaemonStatus>('daemon.status'),
      ])
      process.stderr.write(
        notice.started !== undefined
          ? `started hsmd (${status.backend}) pid ${status.pid} on ${host.label}\n`
          : `hsmd (${status.backend}) is already running on ${host.label}, pid ${status.pid}\n`,
      )
      return status
    } finally {
      client.close()
    }
  }
}
