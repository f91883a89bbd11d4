import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import type { VmDetails } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { VmJson } from '../../ui/vm.js'

export default class VmStart extends DaemonCommand {
  static override summary = 'Start a created VM (START_VM); a journaled one is recreated first.'

  static override description = `A VM that is only journaled (an earlier daemon held it, \`vm list\` shows it journaled)
is recreated from its journal, as by \`vm apply NAME\`, and left running.`

  static override examples = ['<%= config.bin %> <%= command.id %> demo']

  static override args = { name: vmNameArg }

  async run(): Promise<VmJson> {
    const { args } = await this.parse(VmStart)
    const vm = await this.call<Wire<VmDetails> & { recreated?: boolean }>('vm.start', {
      name: args.name,
    })
    // a VM only journaled is recreated first (as `vm apply NAME`)
    if (vm.recreated) process.stderr.write(`hsmctl: recreated ${vm.name} from its journal\n`)
    const { renderVm, vmJson } = await import('../../ui/vm.js')
    this.log(renderVm(vm))
    const execution = vm.execution as { reason?: string } | undefined
    // the VM runs, but nothing it was loaded with will execute: say so where it is seen
    if (execution?.reason)
      this.logToStderr(`note: vCPUs do not execute guest code: ${execution.reason}`)
    return vmJson(vm)
  }
}
