import { DaemonCommand } from '../../cli/daemon-command.js'
import type { HostInventoryView } from '../../core/vmm/platform.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { HostInventoryJson } from '../../ui/pci.js'

export default class HostDevices extends DaemonCommand {
  static override summary =
    'List the host’s PCI and MMIO devices (the simulated inventory on --backend sim).'

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json',
  ]

  async run(): Promise<HostInventoryJson> {
    await this.parse(HostDevices)
    const inventory = await this.call<Wire<HostInventoryView>>('host.devices')
    const { renderTable } = await import('../../ui/table.js')
    const { bdf, hex, size } = await import('../../ui/format.js')
    const pci = renderTable(
      [
        { header: 'BDF' },
        { header: 'ID' },
        { header: 'CLASS' },
        { header: 'NAME' },
        { header: 'BARS' },
        { header: 'INTX' },
      ],
      inventory.pci.map((d) => [
        bdf(d.bdf),
        `${d.vendor.toString(16).padStart(4, '0')}:${d.device.toString(16).padStart(4, '0')}`,
        d.classCode.toString(16).padStart(6, '0'),
        d.name + (d.bridge ? ' (bridge)' : ''),
        d.bars.map((b) => `${b.index}:${hex(b.base)}/${size(b.size)}`).join(' ') || '-',
        d.intxPin ? `INT${'ABCD'[d.intxPin - 1]}# gsi ${d.intxGsi}` : '-',
      ]),
    )
    const mmio = inventory.mmio.map((m) => `${m.name.padEnd(8)} ${hex(m.base)} (${size(m.size)})`)
    this.log(
      `${inventory.pcpus} pCPUs\n\n${pci}${mmio.length ? `\n\nMMIO devices\n${mmio.join('\n')}` : ''}`,
    )
    const { hostInventoryJson } = await import('../../ui/pci.js')
    return hostInventoryJson(inventory)
  }
}
