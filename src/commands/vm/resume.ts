import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { intFlag } from '../../cli/flags.js'

export default class VmResume extends DaemonCommand {
  static override localOnly = 'asks acrn-dm through its monitor socket on this machine'

  static override summary = 'Wake a suspended acrn-dm VM (DM_RESUME).'

  static override description = `acrn-dm stores the wake-up reason (the guest can read it) and runs its resume hooks; its
own wakes a suspended VM. Prints the suspend mode DM_QUERY reports afterwards (NONE:
running).`

  static override examples = [
    '<%= config.bin %> <%= command.id %> vm1',
    '<%= config.bin %> <%= command.id %> vm1 --reason 0x4',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    reason: intFlag('reason')({ description: 'The wake-up reason acrn-dm stores.', default: 0 }),
  }

  async run(): Promise<{ name: string; mode: string }> {
    const { args, flags } = await this.parse(VmResume)
    const { ownerOf } = await import('../../core/acrn-dm/owners/locate.js')
    const owner = await ownerOf(args.name, flags)
    const result = await owner.resume(flags.reason)
    this.log(`${result.name}: resumed; acrn-dm's mode is now ${result.mode}`)
    return result
  }
}
