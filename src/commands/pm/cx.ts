import { DaemonCommand } from '../../cli/daemon-command.js'
import { pm, type PmResult } from '../../cli/paired-commands.js'

export default class PmCx extends DaemonCommand {
  static override summary = pm.summary('cx')

  static override examples = pm.examples

  static override args = pm.args

  static override flags = pm.flags

  async run(): Promise<PmResult> {
    return pm.run(this, 'cx', await this.parse(PmCx))
  }
}
