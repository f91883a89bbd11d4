import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { yesFlag } from '../../cli/flags.js'

export default class VmDel extends DaemonCommand {
  static override localOnly = 'removes a launch script from this machine’s script registry'

  static override summary =
    'Delete a registered launch script (NAME.sh and NAME.args), not while it runs.'

  static override description = `Removes the registration \`vm add\` or acrnctl made, both files or neither: they are
renamed away first and removed only when both could be (acrnctl removes one and may leave
the other). A VM that runs is not deleted (stop it first). Asks first; --yes.`

  static override examples = ['<%= config.bin %> <%= command.id %> vm1 --yes']

  static override args = { name: vmNameArg }

  static override flags = { yes: yesFlag }

  async run(): Promise<{ name: string; removed: string[] }> {
    const { args, flags } = await this.parse(VmDel)
    const { ownerOf } = await import('../../core/acrn-dm/owners/locate.js')
    // a running acrn-dm with a registration says "stop it first"; others are not scripts
    const owner = await ownerOf(args.name, flags)
    const result = await owner.del(this.verbContext(flags))
    this.log(`deleted ${args.name}: ${result.removed.join(', ')}`)
    return result
  }
}
