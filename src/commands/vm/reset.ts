import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { yesFlag } from '../../cli/flags.js'
import type { VmDetails } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { VmJson } from '../../ui/vm.js'

export default class VmReset extends DaemonCommand {
  static override summary =
    'Reset a VM as acrn-dm does: pause, clear its I/O requests, reset (RESET_VM).'

  static override description = `The hypervisor resets only paused VMs and HSM does not clear pending I/O requests on
reset (§2.5), so a running VM is paused and its requests cleared first. Afterwards the VM is
in the created state: start it again with \`vm start\`.`

  static override examples = ['<%= config.bin %> <%= command.id %> demo --yes']

  static override args = { name: vmNameArg }

  static override flags = { yes: yesFlag }

  async run(): Promise<VmJson> {
    const { args, flags } = await this.parse(VmReset)
    await this.confirm(
      `Reset VM '${args.name}'? Its vCPUs restart from their reset state.`,
      flags.yes,
    )
    const vm = await this.call<Wire<VmDetails>>('vm.reset', { name: args.name })
    const { renderVm, vmJson } = await import('../../ui/vm.js')
    this.log(renderVm(vm))
    return vmJson(vm)
  }
}
