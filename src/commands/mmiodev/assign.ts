import { DaemonCommand } from '../../cli/daemon-command.js'
import { mmiodev } from '../../cli/paired-commands.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { MmiodevInfo } from '../../core/vmm/manager.js'

export default class MmiodevAssign extends DaemonCommand {
  static override summary = mmiodev.summary('assign')

  static override description = mmiodev.description

  static override examples = mmiodev.examples

  static override args = mmiodev.args

  static override flags = mmiodev.flags

  async run(): Promise<Wire<MmiodevInfo>> {
    return mmiodev.run(this, 'assign', await this.parse(MmiodevAssign))
  }
}
