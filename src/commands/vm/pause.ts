import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import type { VmDetails } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { VmJson } from '../../ui/vm.js'

export default class VmPause extends DaemonCommand {
  static override summary = 'Pause a running VM (PAUSE_VM).'

  static override examples = ['<%= config.bin %> <%= command.id %> demo']

  static override args = { name: vmNameArg }

  async run(): Promise<VmJson> {
    const { args, flags } = await this.parse(VmPause)
    const acrn = await import('../../cli/acrn-dm.js')
    const found = await acrn.acrnDmVm(args.name, flags)
    if (found) {
      const [{ wrongOwner }, { acrnPaths }] = await Promise.all([
        import('../../core/acrn-dm/owners.js'),
        import('../../core/acrn-dm/paths.js'),
      ])
      throw wrongOwner(args.name, found, 'pause', acrnPaths())
    }
    const vm = await this.call<Wire<VmDetails>>('vm.pause', { name: args.name }).catch((e) =>
      acrn.outsideOr(this, args.name, 'pause', e),
    )
    const { renderVmLine, vmJson } = await import('../../ui/vm.js')
    this.log(renderVmLine(vm))
    return vmJson(vm)
  }
}
