import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { hexFlag } from '../../cli/flags.js'
import type { IrqfdInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'

export default class IrqfdAdd extends DaemonCommand {
  static override summary =
    'Register an irqfd (IRQFD): each write to its eventfd injects the MSI once (§6.3).'

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo --msi-addr 0xfee00000 --msi-data 0x31',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    'msi-addr': hexFlag('msi-addr')({
      description: 'MSI address (0xfee00000 | APIC ID << 12).',
      required: true,
    }),
    'msi-data': hexFlag('msi-data', { max: 0xffff_ffffn })({
      description: 'MSI data (vector in bits 7:0).',
      required: true,
      helpValue: 'DATA',
    }),
  }

  async run(): Promise<Wire<IrqfdInfo>> {
    const { args, flags } = await this.parse(IrqfdAdd)
    const { checkMsiAddress } = await import('../../core/parse/msi.js')
    checkMsiAddress(flags['msi-addr'], `0x${flags['msi-addr'].toString(16)}`, '--msi-addr')
    const info = await this.call<Wire<IrqfdInfo>>('irqfd.add', {
      name: args.name,
      msiAddr: flags['msi-addr'],
      msiData: flags['msi-data'],
    })
    const { hex } = await import('../../ui/format.js')
    this.log(`irqfd #${info.id}: MSI ${hex(info.msiAddr)}:${hex(info.msiData)}`)
    return info
  }
}
