import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { bdfFlag, yesFlag } from '../../cli/flags.js'
import type { PtdevInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { PciText } from '../../ui/pci.js'

export default class PtdevDeassign extends DaemonCommand {
  static override summary = 'Take a pass-through PCI function back from a VM (DEASSIGN_PCIDEV).'

  static override examples = ['<%= config.bin %> <%= command.id %> demo --phys 00:14.0 --yes']

  static override args = { name: vmNameArg }

  static override flags = {
    phys: bdfFlag('phys')({ description: 'Host PCI function.', required: true }),
    yes: yesFlag,
  }

  async run(): Promise<PciText<Wire<PtdevInfo>>> {
    const { args, flags } = await this.parse(PtdevDeassign)
    const { bdf } = await import('../../ui/format.js')
    await this.confirm(`Take ${bdf(flags.phys)} away from '${args.name}'?`, flags.yes)
    const info = await this.call<Wire<PtdevInfo>>('ptdev.deassign', {
      name: args.name,
      phys: flags.phys,
    })
    this.log(`deassigned ${bdf(info.phys)} from ${args.name}`)
    const { pciText } = await import('../../ui/pci.js')
    return pciText(info)
  }
}
