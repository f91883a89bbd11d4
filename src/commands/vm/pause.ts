import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import type { VmJson } from '../../ui/vm.js'

export default class VmPause extends DaemonCommand {
  static override summary = 'Pause a running VM (PAUSE_VM).'

  static override examples = ['<%= config.bin %> <%= command.id %> demo']

  static override args = { name: vmNameArg }

  async run(): Promise<VmJson> {
    const { args, flags } = await this.parse(VmPause)
    const { ownerOrHsmd } = await import('../../core/acrn-dm/owners/locate.js')
    const owner = await ownerOrHsmd(args.name, flags)
    const vm = await owner.pause(this.verbContext(flags))
    const { renderVmLine, vmJson } = await import('../../ui/vm.js')
    this.log(renderVmLine(vm))
    return vmJson(vm)
  }
}
