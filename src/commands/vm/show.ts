import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import type { VmDescription } from '../../core/acrn-dm/vms.js'
import type { VmDetails } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { VmJson } from '../../ui/vm.js'

export default class VmShow extends DaemonCommand {
  static override summary =
    'Show a VM: state, vmid, vCPUs, segments, devices, eventfds, ioreq clients, interrupts.'

  static override description = `For hsmd's own VMs, everything the daemon holds. For an acrn-dm VM, what the HSM and
its monitor socket know: acrn-dm's pid, socket, DM_QUERY's answer, the HSM's vmid, state,
vCPUs and memory (when the daemon sees them), its command line, and its launch script and
log when registered or started by hsmctl. For a registered script that is not running,
its registration; for another process's VM, the HSM's view and its holder.`

  static override examples = ['<%= config.bin %> <%= command.id %> demo']

  static override args = { name: vmNameArg }

  async run(): Promise<VmJson | VmDescription> {
    const { args, flags } = await this.parse(VmShow)
    // acrn-dm's VMs and registered scripts (core/acrn-dm); else hsmd's own
    const acrn = await import('../../cli/acrn-dm.js')
    const found = await acrn.acrnDmVm(args.name, flags)
    if (found) return acrn.showOther(this, found)
    let vm: Wire<VmDetails>
    try {
      vm = await this.call<Wire<VmDetails>>('vm.show', { name: args.name })
    } catch (e) {
      const other = acrn.isNoVm(e) ? await acrn.locate(args.name, flags) : undefined
      if (!other || other.kind === 'hsmd') throw e
      return acrn.showOther(this, other)
    }
    const { renderVm, vmJson } = await import('../../ui/vm.js')
    this.log(renderVm(vm))
    return vmJson(vm)
  }
}
