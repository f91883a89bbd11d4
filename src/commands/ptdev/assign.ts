import { Flags } from '@oclif/core'
import { DaemonCommand, interactive, vmNameArg } from '../../cli/daemon-command.js'
import { bdfFlag } from '../../cli/flags.js'
import type { PtdevInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { HostInventoryView } from '../../core/vmm/platform.js'
import type { PciText } from '../../ui/pci.js'

export default class PtdevAssign extends DaemonCommand {
  static override summary = 'Pass a host PCI function through to a VM (ASSIGN_PCIDEV).'

  static override description = `The physical BARs and INTx routing are taken from the host inventory. On a terminal,
without --phys, a picker lists the host's devices.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo --phys 00:14.0 --virt 00:03.0',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    phys: bdfFlag('phys')({ description: 'Host PCI function (bb:dd.f).' }),
    virt: bdfFlag('virt')({ description: 'Where the guest sees it (default: the same BDF).' }),
    quirk: Flags.boolean({ description: 'Quirk assignment (ACRN_PTDEV_QUIRK_ASSIGN).' }),
  }

  async run(): Promise<PciText<Wire<PtdevInfo>>> {
    const { args, flags } = await this.parse(PtdevAssign)
    let phys = flags.phys
    if (phys === undefined) {
      if (!interactive()) {
        const { UsageError } = await import('../../core/errors.js')
        throw new UsageError('--phys is required when not running interactively', {
          hint: 'see `hsmctl host devices`',
        })
      }
      const inventory = await this.call<HostInventoryView>('host.devices')
      const { select } = await import('../../ui/prompt.js')
      const { bdf } = await import('../../ui/format.js')
      phys = await select({
        message: 'Host device to pass through',
        choices: inventory.pci
          .filter((d) => !d.bridge)
          .map((d) => ({ name: `${bdf(d.bdf)}  ${d.name}`, value: d.bdf })),
      })
    }
    const info = await this.call<Wire<PtdevInfo>>('ptdev.assign', {
      name: args.name,
      phys,
      ...(flags.virt !== undefined ? { virt: flags.virt } : {}),
      quirk: flags.quirk,
    })
    const { bdf } = await import('../../ui/format.js')
    this.log(`assigned ${bdf(info.phys)} to ${args.name} as ${bdf(info.virt)}`)
    const { pciText } = await import('../../ui/pci.js')
    return pciText(info)
  }
}
