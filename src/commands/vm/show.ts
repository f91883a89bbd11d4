import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import type { VmDescription } from '../../core/acrn-dm/vms.js'
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
    const { ownerOrHsmd } = await import('../../core/acrn-dm/owners/locate.js')
    const owner = await ownerOrHsmd(args.name, flags)
    const shown = await owner.show(this.verbContext(flags))
    if (shown.by === 'hsmd') {
      const { renderVm, vmJson } = await import('../../ui/vm.js')
      this.log(renderVm(shown.vm))
      return vmJson(shown.vm)
    }
    const { vm, view } = shown
    if (!this.jsonEnabled()) {
      const [{ renderVmDescription }, { hypervisorSections }] = await Promise.all([
        import('../../ui/acrn-dm.js'),
        import('../../ui/vm.js'),
      ])
      const lines = [renderVmDescription(vm)]
      if (view) hypervisorSections(view, lines)
      process.stdout.write(`${lines.join('\n')}\n`)
    }
    const described = view ? { ...vm, execution: view.execution, hypervisor: view.hypervisor } : vm
    return described
  }
}
