import { HsmCommand } from '../../cli/base-command.js'
import { singleHost } from '../../cli/daemon-command.js'
import { backendFlag, hostFlag } from '../../cli/flags.js'
import type { Backend } from '../../core/daemon/paths.js'

export interface StopResult {
  backend: string
  wasRunning: boolean
  pid?: number
}

export default class DaemonStop extends HsmCommand {
  static override summary =
    'Stop hsmd: its VMs are paused and destroyed cleanly, their specs stay journaled.'

  static override examples = ['<%= config.bin %> <%= command.id %>']

  static override flags = { backend: backendFlag, host: hostFlag }

  async run(): Promise<StopResult> {
    const { flags } = await this.parse(DaemonStop)
    const backend = flags.backend as Backend
    const host = await singleHost(this.id, flags.host)
    const where = host ? ` on ${host.label}` : ''
    const { openIfRunning } = await import('../../core/daemon/target.js')
    const client = await openIfRunning({ backend, host })
    if (!client) {
      process.stderr.write(`hsmd (${backend}) is not running${where}\n`)
      return { backend, wasRunning: false }
    }
    const { pid } = await client.call<{ pid: number }>('daemon.stop')
    await client.closed // the daemon closes every connection once it has stopped
    process.stderr.write(`stopped hsmd (${backend}) pid ${pid}${where}\n`)
    return { backend, wasRunning: true, pid }
  }
}
