import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import type { IoeventfdInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'

export default class IoeventfdList extends DaemonCommand {
  static override summary = 'List a VM’s ioeventfds with their signal counts.'

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo',
    '<%= config.bin %> <%= command.id %> demo --json',
  ]

  static override args = { name: vmNameArg }

  async run(): Promise<Wire<IoeventfdInfo>[]> {
    const { args } = await this.parse(IoeventfdList)
    const list = await this.call<Wire<IoeventfdInfo>[]>('ioeventfd.list', { name: args.name })
    const { renderTable } = await import('../../ui/table.js')
    const { hex } = await import('../../ui/format.js')
    this.log(
      list.length === 0
        ? `No ioeventfds in ${args.name}.`
        : renderTable(
            [
              { header: 'ID', align: 'right' },
              { header: 'TYPE' },
              { header: 'ADDR' },
              { header: 'LEN', align: 'right' },
              { header: 'DATAMATCH' },
              { header: 'SIGNALS', align: 'right' },
            ],
            list.map((e) => [
              e.id,
              e.pio ? 'PIO' : 'MMIO',
              hex(e.addr),
              e.len,
              e.datamatch === undefined ? 'any' : hex(e.datamatch),
              String(BigInt(e.signals)),
            ]),
          ),
    )
    return list
  }
}
