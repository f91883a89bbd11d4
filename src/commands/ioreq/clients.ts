import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import type { IoreqClientInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'

export default class IoreqClients extends DaemonCommand {
  static override summary =
    'List a VM’s ioreq clients: the default one (hsmd) and the kernel’s ioeventfd client.'

  static override examples = ['<%= config.bin %> <%= command.id %> demo']

  static override args = { name: vmNameArg }

  async run(): Promise<Wire<IoreqClientInfo>[]> {
    const { args } = await this.parse(IoreqClients)
    const list = await this.call<Wire<IoreqClientInfo>[]>('ioreq.clients', { name: args.name })
    const { renderTable } = await import('../../ui/table.js')
    this.log(
      renderTable(
        [
          { header: 'CLIENT' },
          { header: 'KIND' },
          { header: 'OWNER' },
          { header: 'HANDLED', align: 'right' },
          { header: 'RANGES', align: 'right' },
        ],
        list.map((k) => [k.name, k.kind, k.owner, k.handled ?? '-', k.ranges ?? '-']),
      ),
    )
    return list
  }
}
