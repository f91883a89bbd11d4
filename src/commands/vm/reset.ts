import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { Flags } from '@oclif/core'
import { intFlag, yesFlag } from '../../cli/flags.js'
import type { VmDetails } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'
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
    const acrn = await import('../../cli/acrn-dm.js')
    const found = await acrn.acrnDmVm(args.name, flags)
    if (found) {
      return acrn.resetOther(this, args.name, found, {
        ...flags,
        confirm: () =>
          this.confirm(
            `Reset VM '${args.name}'? Its acrn-dm is stopped and started again.`,
            flags.yes,
          ),
      })
    }
    await this.confirm(
      `Reset VM '${args.name}'? Its vCPUs restart from their reset state.`,
      flags.yes,
    )
    const vm = await this.call<Wire<VmDetails>>('vm.reset', { name: args.name }).catch((e) =>
      acrn.outsideOr(this, args.name, 'reset', e),
    )
    const { renderVmLine, vmJson } = await import('../../ui/vm.js')
    this.log(renderVmLine(vm))
    return vmJson(vm)
  }
}
