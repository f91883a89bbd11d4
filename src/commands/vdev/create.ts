import { DaemonCommand } from '../../cli/daemon-command.js'
import { vdev } from '../../cli/paired-commands.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { VdevInfo } from '../../core/vmm/manager.js'
import type { PciText } from '../../ui/pci.js'

export default class VdevCreate extends DaemonCommand {
  static override summary = vdev.summary('create')

  static override description = vdev.description

  static override examples = vdev.examples

  static override args = vdev.args

  static override flags = vdev.flags

  async run(): Promise<PciText<Wire<VdevInfo>>> {
    return vdev.run(this, 'create', await this.parse(VdevCreate))
  }
}
