import { DaemonCommand } from '../../cli/daemon-command.js'
import type { VmListEntry } from '../../core/acrn-dm/vms.js'
import type { VmSummary } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { FleetVmRow } from '../../core/daemon/ssh/fleet.js'

export default class VmList extends DaemonCommand {
  static override summary = 'List VMs: name, vmid, state, vCPUs, memory, owner, uptime.'

  static override description = `Every VM in one view, each with its owner:
  hsmd             the daemon's own VMs
  journal          VMs journaled by an earlier daemon that are not running now:
                   "journaled" (recreate one with \`vm apply NAME\`), "incomplete" (hsmd
                   stopped while applying its spec; the spec is kept as asked) or "corrupt"
                   (a journal file hsmd cannot use; the reason is printed under the table
                   and is "problem" in --json; fix the file or remove it with
                   \`vm forget NAME\`)
  acrn-dm (pid N)  an acrn-dm process, found by its monitor socket in /run/acrn/mngr
                   (HSMCTL_ACRN_MNGR_DIR) and asked its state (DM_QUERY): running (or the
                   HSM's created/paused), suspended, resetting, powering-off, halted,
                   triple-fault, not-answering, or gone (a crashed acrn-dm's socket)
  script           a launch script registered with \`vm add\` or acrnctl in
                   /usr/share/acrn/conf/add (HSMCTL_ACRN_CONF_DIR), not running: "stopped"
  outside process  a VM of the HSM held by another program (pid and name when known)
With several hosts (--host a,b or @FILE) their hsmd are asked in parallel and a HOST
column comes first (JSON: a "host" field); a host that does not answer is one row saying
so, its error under the table (JSON: an "error" object), and the exit code is 8.
An acrn-dm and the HSM's VM it holds are one row (vmid, vCPUs and memory from the HSM,
or from acrn-dm's options where the daemon cannot see the HSM's VMs).`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json',
  ]

  static override fleet = true

  async run(): Promise<(VmListEntry | FleetVmRow)[]> {
    await this.parse(VmList)
    if ((await this.hosts()).length > 1) return this.listFleet()
    const [{ readAcrnViews, mergeVms }, { acrnPaths }] = await Promise.all([
      import('../../core/acrn-dm/vms.js'),
      import('../../core/acrn-dm/paths.js'),
    ])
    // acrn-dm's VMs and scripts are this machine's: a remote host's list is its hsmd's
    const remote = (await this.hosts()).length > 0
    const [daemon, acrn] = await Promise.all([
      this.call<Wire<VmSummary>[]>('vm.list'),
      remote ? { acrnDm: [], registry: [] } : readAcrnViews(acrnPaths()),
    ])
    const vms = mergeVms({ daemon, ...acrn })
    if (!this.jsonEnabled()) {
      const { renderVmList } = await import('../../ui/vm.js')
      this.log(renderVmList(vms))
    }
    return vms
  }

  /** Every host's hsmd in parallel; a host that fails is one row, and the exit code is 8. */
  private async listFleet(): Promise<FleetVmRow[]> {
    const { listFleetVms } = await import('../../core/daemon/ssh/fleet.js')
    const { rows, failed } = await listFleetVms(await this.fleet())
    if (!this.jsonEnabled()) {
      const { renderVmList } = await import('../../ui/vm.js')
      this.log(renderVmList(rows))
    }
    if (failed) process.exitCode = 8
    return rows
  }
}
