import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { msiFlags, msiOf } from '../../cli/flags.js'
import type { IrqfdInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'

export default class IrqfdAdd extends DaemonCommand {
  static override summary =
    'Register an irqfd (IRQFD): each write to its eventfd injects the MSI once.'

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo --msi-addr 0xfee00000 --msi-data 0x31',
    '<%= config.bin %> <%= command.id %> demo --msi 0xfee00000:0x31',
  ]

  static override args = { name: vmNameArg }

  static override flags = msiFlags('The MSI each write injects')

  async run(): Promise<Wire<IrqfdInfo>> {
    const { args, flags } = await this.parse(IrqfdAdd)
    // exactly one form was given (msiFlags): the MSI is there
    const msi = msiOf(flags)!
    const info = await this.call<Wire<IrqfdInfo>>('irqfd.add', {
      name: args.name,
      msiAddr: msi.addr,
      msiData: msi.data,
    })
    const { hex } = await import('../../ui/format.js')
    this.log(`irqfd #${info.id}: MSI ${hex(info.msiAddr)}:${hex(info.msiData)}`)
    return info
  }
}
