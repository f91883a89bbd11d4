import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'

export default class IoreqClear extends DaemonCommand {
  static override summary =
    'Complete every pending I/O request of a VM without handling it (CLEAR_VM_IOREQ).'

  static override examples = ['<%= config.bin %> <%= command.id %> demo']

  static override args = { name: vmNameArg }

  async run(): Promise<{ name: string }> {
    const { args } = await this.parse(IoreqClear)
    const result = await this.call<{ name: string }>('ioreq.clear', { name: args.name })
    this.log(`cleared the I/O requests of ${args.name}`)
    return result
  }
}
