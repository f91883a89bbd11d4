import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { intFlag } from '../../cli/flags.js'
import type { IoeventfdInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'

export default class IoeventfdRemove extends DaemonCommand {
  static override summary = 'Remove an ioeventfd (IOEVENTFD with DEASSIGN) and close its eventfd.'

  static override examples = ['<%= config.bin %> <%= command.id %> demo --id 1']

  static override args = { name: vmNameArg }

  static override flags = {
    id: intFlag('id', 1n)({ description: 'The id `ioeventfd list` shows.', required: true }),
  }

  async run(): Promise<Wire<IoeventfdInfo>> {
    const { args, flags } = await this.parse(IoeventfdRemove)
    const info = await this.call<Wire<IoeventfdInfo>>('ioeventfd.remove', {
      name: args.name,
      id: flags.id,
    })
    this.log(`removed ioeventfd #${info.id} (${BigInt(info.signals)} signals)`)
    return info
  }
}
