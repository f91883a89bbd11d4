import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { intFlag } from '../../cli/flags.js'
import type { IrqfdInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'

export default class IrqfdRemove extends DaemonCommand {
  static override summary = 'Remove an irqfd (IRQFD with DEASSIGN) and close its eventfd.'

  static override examples = ['<%= config.bin %> <%= command.id %> demo --id 2']

  static override args = { name: vmNameArg }

  static override flags = {
    id: intFlag('id', 1n)({ description: 'The id `irqfd list` shows.', required: true }),
  }

  async run(): Promise<Wire<IrqfdInfo>> {
    const { args, flags } = await this.parse(IrqfdRemove)
    const info = await this.call<Wire<IrqfdInfo>>('irqfd.remove', { name: args.name, id: flags.id })
    this.log(`removed irqfd #${info.id}`)
    return info
  }
}
