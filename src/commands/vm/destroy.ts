import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { yesFlag } from '../../cli/flags.js'

export default class VmDestroy extends DaemonCommand {
  static override summary = 'Destroy a VM (pausing it first if it runs) and forget its spec.'

  static override description = `The hypervisor destroys only paused VMs (Appendix A), so a running VM is paused first.
Its fd is closed, its eventfds released, and its journal entry removed.`

  static override examples = ['<%= config.bin %> <%= command.id %> demo --yes']

  static override args = { name: vmNameArg }

  static override flags = { yes: yesFlag }

  async run(): Promise<{ name: string; vmid: number }> {
    const { args, flags } = await this.parse(VmDestroy)
    await this.confirm(`Destroy VM '${args.name}'?`, flags.yes)
    const result = await this.call<{ name: string; vmid: number }>('vm.destroy', {
      name: args.name,
    })
    this.log(`destroyed ${result.name} (vmid ${result.vmid})`)
    return result
  }
}
