import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { yesFlag } from '../../cli/flags.js'
import type { ForgottenVm } from '../../core/vmm/manager.js'

export default class VmForget extends DaemonCommand {
  static override summary = 'Remove a VM’s journal entry (a VM only journaled, or a corrupt entry).'

  static override description = `The journal keeps the spec of every VM hsmd held, so that a VM can be recreated after
the daemon stops (\`vm apply NAME\`). \`vm forget\` removes an entry hsmd is not running, as
virsh undefine does: a journaled or incomplete spec, or a file \`vm list\` shows as corrupt.
A running VM is destroyed with \`vm destroy\`, which forgets its spec too.`

  static override examples = ['<%= config.bin %> <%= command.id %> demo --yes']

  static override args = { name: vmNameArg }

  static override flags = { yes: yesFlag }

  async run(): Promise<ForgottenVm> {
    const { args, flags } = await this.parse(VmForget)
    await this.confirm(`Forget the journaled spec of '${args.name}'?`, flags.yes)
    const result = await this.call<ForgottenVm>('vm.forget', { name: args.name })
    this.log(forgotten(result))
    return result
  }
}

/** One line for a forgotten entry, as `vm destroy` of a journaled VM prints it too. */
export function forgotten(vm: ForgottenVm): string {
  return vm.state === 'corrupt'
    ? `forgot ${vm.name} (its journal entry was corrupt)`
    : `forgot ${vm.name} (it was only journaled${vm.state === 'incomplete' ? ', incomplete' : ''})`
}
