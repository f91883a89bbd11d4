import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'

export default class VmSuspend extends DaemonCommand {
  static override localOnly = 'asks acrn-dm through its monitor socket on this machine'

  static override summary = "Ask an acrn-dm VM's guest to suspend (DM_SUSPEND)."

  static override description = `acrn-dm runs the guest's suspend hooks, which exist only when its launch script gives it
--pm_notify_channel (power_button, ioc or uart); without one it refuses (exit 6) and says
so. Prints the suspend mode DM_QUERY reports afterwards (SUSPEND once the guest has
suspended). hsmd's own VMs pause instead: \`vm pause\`.`

  static override examples = ['<%= config.bin %> <%= command.id %> vm1']

  static override args = { name: vmNameArg }

  async run(): Promise<{ name: string; mode: string }> {
    const { args, flags } = await this.parse(VmSuspend)
    const { ownerOf } = await import('../../core/acrn-dm/owners/locate.js')
    const owner = await ownerOf(args.name, flags)
    const result = await owner.suspend()
    this.log(`${result.name}: suspend requested; acrn-dm's mode is now ${result.mode}`)
    return result
  }
}
