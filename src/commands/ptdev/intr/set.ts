import { DaemonCommand } from '../../../cli/daemon-command.js'
import { ptdevIntr } from '../../../cli/paired-commands.js'
import type { Wire } from '../../../core/daemon/protocol.js'
import type { PtdevInfo } from '../../../core/vmm/manager.js'
import type { PciText } from '../../../ui/pci.js'

export default class PtdevIntrSet extends DaemonCommand {
  static override summary = ptdevIntr.summary('set')

  static override description = ptdevIntr.description

  static override examples = ptdevIntr.examples

  static override args = ptdevIntr.args

  static override flags = ptdevIntr.flags

  async run(): Promise<PciText<Wire<PtdevInfo>>> {
    return ptdevIntr.run(this, 'set', await this.parse(PtdevIntrSet))
  }
}
