import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import type { WorkloadStatus } from '../../core/vmm/workloads.js'

export default class GuestStop extends DaemonCommand {
  static override summary = 'Stop the workload a VM runs; prints its totals.'

  static override examples = ['<%= config.bin %> <%= command.id %> demo']

  static override args = { name: vmNameArg }

  async run(): Promise<WorkloadStatus> {
    const { args } = await this.parse(GuestStop)
    const status = await this.call<WorkloadStatus>('guest.stop', { name: args.name })
    this.log(
      `stopped ${status.workload} on ${args.name}: ${status.accesses} accesses in ${(status.elapsedMs / 1000).toFixed(1)}s`,
    )
    return status
  }
}
