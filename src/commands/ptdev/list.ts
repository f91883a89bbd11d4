import { Args } from '@oclif/core'
import { DaemonCommand } from '../../cli/daemon-command.js'
import type { PtdevInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { PciText } from '../../ui/pci.js'

type PtdevListEntry = Wire<PtdevInfo> & { vm: string }

export default class PtdevList extends DaemonCommand {
  static override summary = 'List pass-through PCI functions, of one VM or all.'

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> demo --json',
  ]

  static override args = { name: Args.string({ description: 'Only this VM.', required: false }) }

  async run(): Promise<PciText<PtdevListEntry>[]> {
    const { args } = await this.parse(PtdevList)
    const list = await this.call<PtdevListEntry[]>(
      'ptdev.list',
      args.name ? { name: args.name } : {},
    )
    const { renderTable } = await import('../../ui/table.js')
    const { bdf } = await import('../../ui/format.js')
    this.log(
      list.length === 0
        ? 'No pass-through devices.'
        : renderTable(
            [{ header: 'VM' }, { header: 'PHYS' }, { header: 'VIRT' }, { header: 'INTERRUPT' }],
            list.map((p) => [
              p.vm,
              bdf(p.phys),
              bdf(p.virt),
              p.intr ? `${p.intr.type} ${p.intr.physPin}->${p.intr.virtPin}` : '-',
            ]),
          ),
    )
    const { pciText } = await import('../../ui/pci.js')
    return list.map(pciText)
  }
}
