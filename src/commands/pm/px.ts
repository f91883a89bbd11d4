import { DaemonCommand } from '../../cli/daemon-command.js'
import { pm, type PmResult } from '../../cli/paired-commands.js'

export default class PmPx extends DaemonCommand {
  static override summary = pm.summary('px')

  static override examples = pm.examples

  static override args = pm.args

  static override flags = pm.flags

  async run(): Promise<PmResult> {
    return pm.run(this, 'px', await this.parse(PmPx))
  }
}
