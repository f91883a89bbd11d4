import { Flags } from '@oclif/core'
import { DaemonCommand, vmNameArg } from '../../../cli/daemon-command.js'
import { bdfFlag, intFlag } from '../../../cli/flags.js'
import type { PtdevInfo } from '../../../core/vmm/manager.js'
import type { Wire } from '../../../core/daemon/protocol.js'

export default class PtdevIntrReset extends DaemonCommand {
  static override summary = 'Undo a pass-through interrupt routing (RESET_PTDEV_INTR).'

  static override description = `For INTx, --virt-pin is the guest's vIOAPIC (or vPIC with --pic) pin and --phys-pin
the host GSI (default: the device's routing in the host inventory). MSI and MSI-X remapping
is set up by the hypervisor when the guest programs the device.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo --type intx --phys 00:14.0 --virt-pin 5',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    type: Flags.string({
      description: 'Interrupt type.',
      options: ['intx', 'msi', 'msix'],
      required: true,
    }),
    phys: bdfFlag('phys')({ description: 'Host PCI function.', required: true }),
    virt: bdfFlag('virt')({ description: 'Guest PCI function (default: as assigned).' }),
    'virt-pin': intFlag('virt-pin', 0n, 255n)({ description: 'INTx: guest interrupt pin (GSI).' }),
    'phys-pin': intFlag('phys-pin', 0n, 255n)({ description: 'INTx: host GSI.' }),
    pic: Flags.boolean({ description: 'INTx: the virtual pin is a vPIC pin.' }),
  }

  async run(): Promise<Wire<PtdevInfo>> {
    const { args, flags } = await this.parse(PtdevIntrReset)
    const info = await this.call<Wire<PtdevInfo>>('ptdev.intr', {
      name: args.name,
      op: 'reset',
      type: flags.type,
      phys: flags.phys,
      ...(flags.virt !== undefined ? { virt: flags.virt } : {}),
      ...(flags['virt-pin'] !== undefined ? { virtPin: flags['virt-pin'] } : {}),
      ...(flags['phys-pin'] !== undefined ? { physPin: flags['phys-pin'] } : {}),
      picPin: flags.pic,
    })
    this.log(`reset ${flags.type} interrupt of ${args.name}`)
    return info
  }
}
