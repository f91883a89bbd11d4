import { resolve } from 'node:path'
import { HsmCommand } from '../../cli/base-command.js'
import { backendFlag, deviceFlag, serveSimFlag } from '../../cli/flags.js'
import type { Backend } from '../../core/daemon/paths.js'

export default class DaemonRun extends HsmCommand {
  static override summary = 'Run hsmd, the daemon that holds the VMs, in the foreground.'

  static override description = `hsmd keeps the /dev/acrn_hsm file descriptors open so that VMs outlive a single
command, and serves the other hsmctl commands on a unix socket in the runtime directory
(HSMCTL_RUNTIME_DIR, else $XDG_RUNTIME_DIR/hsmctl). Commands start it on demand; run it in
the foreground to watch its log. Ctrl-C or SIGTERM stops it cleanly.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --backend sim',
    '<%= config.bin %> <%= command.id %> --backend native --device /dev/acrn_hsm',
    '<%= config.bin %> <%= command.id %> --serve-sim /tmp/hsm.sock',
  ]

  static override flags = { backend: backendFlag, device: deviceFlag, 'serve-sim': serveSimFlag }

  static override enableJsonFlag = false

  async run(): Promise<void> {
    const { flags } = await this.parse(DaemonRun)
    const backend = flags.backend as Backend
    const { startVmmDaemon } = await import('../../core/daemon/vmm-daemon.js')
    // a command that started us on demand prints our own error (core/daemon/startup.ts)
    const { reportStartup } = await import('../../core/daemon/startup.js')
    let daemon
    try {
      daemon = await startVmmDaemon({
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
