import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { intFlag } from '../../cli/flags.js'
import type { IrqfdInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'

export default class IrqfdSignal extends DaemonCommand {
  static override summary =
    'Write to an irqfd’s eventfd: the kernel injects its MSI once per write.'

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo --id 2',
    '<%= config.bin %> <%= command.id %> demo --id 2 --count 10',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    id: intFlag('id', 1n)({ description: 'The id `irqfd list` shows.', required: true }),
    count: intFlag('count', 1n, 1_000_000n)({ description: 'Number of writes.', default: 1 }),
  }

  async run(): Promise<Wire<IrqfdInfo>> {
    const { args, flags } = await this.parse(IrqfdSignal)
    const info = await this.call<Wire<IrqfdInfo>>('irqfd.signal', {
      name: args.name,
      id: flags.id,
      count: flags.count,
    })
    this.log(`signalled irqfd #${info.id} ${flags.count}x (${info.signals} in all)`)
    return info
  }
}
