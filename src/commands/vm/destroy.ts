import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { yesFlag } from '../../cli/flags.js'
import type { ForgottenVm } from '../../core/vmm/manager.js'

export default class VmDestroy extends DaemonCommand {
  static override summary = 'Destroy a VM (pausing it first if it runs) and forget its spec.'

  static override description = `The hypervisor destroys only paused VMs, so a running VM is paused first.
Its fd is closed, its eventfds released, and its journal entry removed. A VM that is only
journaled (\`vm list\` shows it journaled, incomplete or corrupt) is forgotten, as by
\`vm forget\`. An acrn-dm VM is powered off (DM_STOP with force) and waited for until its
acrn-dm has exited.`

  static override examples = ['<%= config.bin %> <%= command.id %> demo --yes']

  static override args = { name: vmNameArg }

  static override flags = { yes: yesFlag }

  async run(): Promise<{ name: string; vmid: number | null } | ForgottenVm> {
    const { args, flags } = await this.parse(VmDestroy)
    const { ownerOrHsmd } = await import('../../core/acrn-dm/owners/locate.js')
    const owner = await ownerOrHsmd(args.name, flags)
    await this.confirm(`Destroy VM '${args.name}'?`, flags.yes)
    const destroyed = await owner.destroy(this.verbContext(flags))
    const { result } = destroyed
    if (destroyed.by === 'acrn-dm') {
      this.log(`destroyed ${result.name} (acrn-dm pid ${destroyed.result.pid} powered off)`)
    } else if ('vmid' in destroyed.result) {
      this.log(`destroyed ${result.name} (vmid ${destroyed.result.vmid})`)
    } else {
      const { forgotten } = await import('./forget.js')
      this.log(forgotten(destroyed.result))
    }
    return result
  }
}
