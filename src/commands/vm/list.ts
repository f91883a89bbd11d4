import { DaemonCommand } from '../../cli/daemon-command.js'
import type { VmSummary } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'

export default class VmList extends DaemonCommand {
  static override summary = 'List VMs: name, vmid, state, vCPUs, memory, owner, uptime.'

  static override description = `Shows the VMs the daemon holds, and VMs journaled by an earlier daemon that are not
running now: "journaled" (recreate one with \`vm apply NAME\`), "incomplete" (hsmd stopped
while applying its spec; the spec is kept as asked) or "corrupt" (a journal file hsmd
cannot use; the reason is printed under the table and is "problem" in --json; fix the
file or remove it with \`vm forget NAME\`).`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json',
  ]

  async run(): Promise<Wire<VmSummary>[]> {
    await this.parse(VmList)
    const vms = await this.call<Wire<VmSummary>[]>('vm.list')
    if (!this.jsonEnabled()) {
      const { renderVmList } = await import('../../ui/vm.js')
      this.log(renderVmList(vms))
    }
    return vms
  }
}
