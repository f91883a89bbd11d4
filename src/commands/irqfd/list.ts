import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import type { IrqfdInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'

export default class IrqfdList extends DaemonCommand {
  static override summary = 'List a VM’s irqfds.'

  static override examples = ['<%= config.bin %> <%= command.id %> demo']

  static override args = { name: vmNameArg }

  async run(): Promise<Wire<IrqfdInfo>[]> {
    const { args } = await this.parse(IrqfdList)
    const list = await this.call<Wire<IrqfdInfo>[]>('irqfd.list', { name: args.name })
    const { renderTable } = await import('../../ui/table.js')
    const { hex } = await import('../../ui/format.js')
    this.log(
      list.length === 0
        ? `No irqfds in ${args.name}.`
        : renderTable(
            [
              { header: 'ID', align: 'right' },
              { header: 'MSI ADDR' },
              { header: 'MSI DATA' },
              { header: 'SIGNALS', align: 'right' },
            ],
            list.map((q) => [q.id, hex(q.msiAddr), hex(q.msiData), q.signals]),
          ),
    )
    return list
  }
}
