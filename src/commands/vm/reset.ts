import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { Flags } from '@oclif/core'
import { intFlag, yesFlag } from '../../cli/flags.js'
import type { VmJson } from '../../ui/vm.js'

export default class VmReset extends DaemonCommand {
  static override summary =
    'Reset a VM as acrn-dm does: pause, clear its I/O requests, reset (RESET_VM).'

  static override description = `The hypervisor resets only paused VMs and HSM does not clear pending I/O requests on
reset, so a running VM is paused and its requests cleared first. Afterwards the VM is
in the created state: start it again with \`vm start\`.

An acrn-dm VM is reset as acrnctl resets one: stopped (DM_STOP, --force to power it off),
waited for until gone (--timeout), and started again from its registered launch script
(\`vm start\`); without a registered script nothing is stopped.`

  static override examples = ['<%= config.bin %> <%= command.id %> demo --yes']

  static override args = { name: vmNameArg }

  static override flags = {
    yes: yesFlag,
    force: Flags.boolean({ description: 'acrn-dm VMs: power it off instead of a guest shutdown.' }),
    timeout: intFlag(
      'timeout',
      1n,
      86_400n,
    )({
      description: 'acrn-dm VMs: seconds to wait for it to stop, and then to start.',
      default: 30,
    }),
  }

  async run(): Promise<VmJson | object> {
    const { args, flags } = await this.parse(VmReset)
    const { ownerOrHsmd } = await import('../../core/acrn-dm/owners/locate.js')
    const owner = await ownerOrHsmd(args.name, flags)
    const reset = await owner.reset(this.verbContext(flags), {
      force: flags.force,
      timeoutSeconds: flags.timeout,
    })
    if (reset.by === 'acrn-dm') {
      const { stopped, started } = reset.result
      this.log(`reset ${args.name}: acrn-dm pid ${stopped.pid} stopped, pid ${started.pid} started`)
      return reset.result
    }
    const { renderVmLine, vmJson } = await import('../../ui/vm.js')
    this.log(renderVmLine(reset.vm))
    return vmJson(reset.vm)
  }
}
