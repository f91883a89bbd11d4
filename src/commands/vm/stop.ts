import { Flags } from '@oclif/core'
import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { intFlag, yesFlag } from '../../cli/flags.js'
import type { StopResult } from '../../core/acrn-dm/lifecycle.js'

export default class VmStop extends DaemonCommand {
  static override localOnly = 'asks acrn-dm through its monitor socket on this machine'

  static override summary =
    'Stop an acrn-dm VM (DM_STOP) and wait until it is gone; --force powers it off.'

  static override description = `Sends DM_STOP to exactly the named VM's monitor socket, then waits until its acrn-dm has
exited (its VM destroyed), at most --timeout seconds. Unforced, acrn-dm asks the guest to
shut down through its stop hooks, which exist only when the launch script gives acrn-dm
--pm_notify_channel (power_button, ioc or uart): without one the stop is refused (exit 6)
and says so. --force makes acrn-dm power the VM off at once (asks first; --yes). A VM
that has not gone by --timeout is left running (exit 7). hsmd's own VMs have no acrn-dm:
use \`vm pause\` or \`vm destroy\`.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> vm1',
    '<%= config.bin %> <%= command.id %> vm1 --force --yes --timeout 10',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    force: Flags.boolean({
      char: 'f',
      description: 'Power the VM off without asking the guest (DM_STOP with force).',
    }),
    timeout: intFlag(
      'timeout',
      1n,
      86_400n,
    )({
      description: 'Seconds to wait for the VM to be gone.',
      default: 30,
    }),
    yes: yesFlag,
  }

  async run(): Promise<StopResult> {
    const { args, flags } = await this.parse(VmStop)
    const { ownerOf } = await import('../../core/acrn-dm/owners/locate.js')
    const owner = await ownerOf(args.name, flags)
    const result = await owner.stop(this.verbContext(flags), {
      force: flags.force,
      timeoutMs: flags.timeout * 1000,
    })
    this.log(`stopped ${result.name} (acrn-dm pid ${result.pid}) in ${result.seconds.toFixed(1)} s`)
    return result
  }
}
