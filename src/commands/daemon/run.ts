import { resolve } from 'node:path'
import { HsmCommand } from '../../cli/base-command.js'
import {
  backendFlag,
  deviceFlag,
  metricsFlag,
  metricsPublicFlag,
  serveSimFlag,
} from '../../cli/flags.js'
import type { Backend } from '../../core/daemon/paths.js'

export default class DaemonRun extends HsmCommand {
  static override summary = 'Run hsmd, the daemon that holds the VMs, in the foreground.'

  static override description = `hsmd keeps the /dev/acrn_hsm file descriptors open so that VMs outlive a single
command, and serves the other hsmctl commands on a unix socket in the runtime directory
(HSMCTL_RUNTIME_DIR, else $XDG_RUNTIME_DIR/hsmctl). Commands start it on demand; run it in
the foreground to watch its log. Ctrl-C or SIGTERM stops it cleanly.

With --metrics it also serves Prometheus metrics over HTTP at /metrics (OpenMetrics to
scrapers that ask for it, the classic text format otherwise): hsmctl_vms{state,owner},
hsmctl_ioreqs_total{vm,vmid,type,dir,client}, hsmctl_ioreq_latency_seconds (histogram,
PENDING to COMPLETE), hsmctl_trace_records_total, hsmctl_trace_dropped_records_total,
hsmctl_daemon_start_time_seconds, hsmctl_daemon_uptime_seconds, hsmctl_daemon_connections.
It listens on loopback only (a PORT alone is 127.0.0.1:PORT); to listen on another
address, give it and add --metrics-public. A port in use exits 4, a bad address 2.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --backend sim',
    '<%= config.bin %> <%= command.id %> --backend native --device /dev/acrn_hsm',
    '<%= config.bin %> <%= command.id %> --serve-sim /tmp/hsm.sock',
    '<%= config.bin %> <%= command.id %> --metrics 9410',
    '<%= config.bin %> <%= command.id %> --metrics 0.0.0.0:9410 --metrics-public',
  ]

  static override flags = {
    backend: backendFlag,
    device: deviceFlag,
    'serve-sim': serveSimFlag,
    metrics: metricsFlag,
    'metrics-public': metricsPublicFlag,
  }

  static override enableJsonFlag = false

  async run(): Promise<void> {
    const { flags } = await this.parse(DaemonRun)
    const backend = flags.backend as Backend
    const { startVmmDaemon } = await import('../../core/daemon/vmm-daemon.js')
    // a command that started us on demand prints our own error (core/daemon/startup.ts)
    const { reportStartup } = await import('../../core/daemon/startup.js')
    let daemon
    try {
      const metrics =
        flags.metrics === undefined
          ? undefined
          : (await import('../../core/daemon/metrics-address.js')).parseMetricsAddress(
              flags.metrics,
              { allowPublic: flags['metrics-public'] },
            )
      daemon = await startVmmDaemon({
        ...(metrics ? { metrics } : {}),
        backend,
        ...(flags.device !== undefined ? { device: flags.device } : {}),
        ...(flags['serve-sim'] !== undefined ? { serveSim: resolve(flags['serve-sim']) } : {}),
        log: (line) => process.stderr.write(`hsmd: ${line}\n`),
      })
    } catch (e) {
      let error = e
      if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') {
        const { ConflictError } = await import('../../core/errors.js')
        error = new ConflictError((e as Error).message, 'stop it first with `hsmctl daemon stop`')
      }
      reportStartup(error)
      throw error
    }
    reportStartup(undefined)
    process.stderr.write(
      `hsmd (${backend}) pid ${process.pid} listening on ${daemon.server.path}\n`,
    )
    if (flags['serve-sim'] !== undefined) {
      process.stderr.write(`hsmd: serving the simulated platform on ${flags['serve-sim']}\n`)
    }
    if (daemon.metrics) process.stderr.write(`hsmd: serving metrics on ${daemon.metrics.url}\n`)
    const onSignal = (signal: string) => {
      process.stderr.write(`hsmd: ${signal}, stopping\n`)
      void daemon.stop()
    }
    process.once('SIGINT', () => onSignal('SIGINT'))
    process.once('SIGTERM', () => onSignal('SIGTERM'))
    await daemon.stopped
    process.stderr.write('hsmd: stopped\n')
    // The simulated hypervisor goes with hsmd: a VM that a shimmed program orphaned by
    // dying (§1.5) still runs on its vCPU threads, which would keep the process alive.
    process.exit(0)
  }
}
