import { Flags } from '@oclif/core'
import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { intFlag, msiFlags, msiOf } from '../../cli/flags.js'

export default class IrqInject extends DaemonCommand {
  static override summary =
    'Inject an interrupt: an MSI (INJECT_MSI) or a GSI line operation (SET_IRQLINE).'

  static override description = `--msi ADDR:DATA (or --msi-addr ADDR --msi-data DATA, as irqfd add takes it) injects
one MSI. --gsi N --op drives the VM's vIOAPIC line N (and the
vPIC for the legacy lines 0 to 15): assert (high), deassert (low), pulse-high, pulse-low.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo --msi 0xfee00000:0x31',
    '<%= config.bin %> <%= command.id %> demo --gsi 4 --op pulse-high',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    ...msiFlags('The MSI address and data', ['gsi']),
    gsi: intFlag('gsi')({
      description: 'Guest GSI (vIOAPIC pin).',
      exactlyOne: ['msi', 'msi-addr', 'gsi'],
      dependsOn: ['op'],
    }),
    op: Flags.string({
      description: 'Line operation for --gsi.',
      options: ['assert', 'deassert', 'pulse-high', 'pulse-low'],
    }),
  }

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(IrqInject)
    const msi = msiOf(flags)
    if (msi) {
      const result = await this.call<Record<string, unknown>>('irq.msi', {
        name: args.name,
        addr: msi.addr,
        data: msi.data,
      })
      this.log(
        `injected MSI 0x${msi.addr.toString(16)}:0x${msi.data.toString(16)} into ${args.name}`,
      )
      return result
    }
    const result = await this.call<Record<string, unknown>>('irq.gsi', {
      name: args.name,
      gsi: flags.gsi,
      op: flags.op,
    })
    this.log(`${flags.op} GSI ${flags.gsi} of ${args.name}`)
    return result
  }
}
