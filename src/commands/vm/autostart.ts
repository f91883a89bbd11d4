import { Flags } from '@oclif/core'
import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'

export default class VmAutostart extends DaemonCommand {
  static override summary =
    'Have hsmd recreate a VM from its journal when it starts (as virsh autostart).'

  static override description = `The mark is kept in the VM's journal entry, so it works for a VM that runs now and for
one only journaled. When hsmd starts, it recreates every marked VM before it answers
requests about VMs, and logs each result; one that fails stays journaled. \`vm list\`
names the marked VMs (\`autostart\` in --json). \`vm destroy\` or \`vm forget\` removes the
entry and the mark with it.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo',
    '<%= config.bin %> <%= command.id %> demo --disable',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    disable: Flags.boolean({ description: 'Take the mark away.' }),
  }

  async run(): Promise<{ name: string; autostart: boolean }> {
    const { args, flags } = await this.parse(VmAutostart)
    const result = await this.call<{ name: string; autostart: boolean }>('vm.autostart', {
      name: args.name,
      disable: flags.disable,
    })
    this.log(`${result.name} will ${result.autostart ? '' : 'not '}be recreated when hsmd starts`)
    return result
  }
}
