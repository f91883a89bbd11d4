import { resolve } from 'node:path'
import { Flags } from '@oclif/core'
import { HsmCommand } from '../../cli/base-command.js'

export default class SimServe extends HsmCommand {
  static override summary =
    'Serve a simulated platform on a unix socket, for programs under the device shim.'

  static override description = `Programs written for the real /dev/acrn_hsm run against it unchanged with the device shim
preloaded (helper/SHIM.md):

  LD_PRELOAD=helper/build/libhsm-shim.so HSM_SHIM_SOCKET=PATH program

Each connection is one process: its VMs are released when it exits, as when a process closes /dev/acrn_hsm. It runs
until Ctrl-C or SIGTERM. To have the shimmed programs' VMs in \`hsmctl vm list\` and reachable
by \`hsmctl guest access\`, serve the daemon's own platform instead: \`hsmctl daemon run
--serve-sim PATH\`.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> --socket /tmp/hsm.sock',
    'LD_PRELOAD=helper/build/libhsm-shim.so HSM_SHIM_SOCKET=/tmp/hsm.sock helper/build/vm-sample',
  ]

  static override flags = {
    socket: Flags.string({
      description: 'The unix socket to listen on (created with mode 0600).',
      helpValue: 'PATH',
      required: true,
    }),
  }

  static override enableJsonFlag = false

  async run(): Promise<void> {
    const { flags } = await this.parse(SimServe)
    const socket = resolve(flags.socket)
    const [{ serveSimPlatform }, { shimPath }, { ringStatus }] = await Promise.all([
      import('../../core/native/sim-server.js'),
      import('../../core/native/preflight.js'),
      import('../../core/native/ring.js'),
    ])
    const server = await serveSimPlatform(socket, {
      flag: '--socket',
      log: (line) => process.stderr.write(`sim serve: ${line}\n`),
    })
    process.stderr.write(
      `sim serve: pid ${process.pid} serving a simulated platform on ${socket}\n` +
        `sim serve: run programs with LD_PRELOAD=${shimPath()} HSM_SHIM_SOCKET=${socket}\n` +
        `sim serve: ${ringStatus()}\n`,
    )
    await new Promise<void>((done) => {
      const stop = (signal: string) => {
        process.stderr.write(`sim serve: ${signal}, stopping\n`)
        done()
      }
      process.once('SIGINT', () => stop('SIGINT'))
      process.once('SIGTERM', () => stop('SIGTERM'))
    })
    await server.close()
  }
}
