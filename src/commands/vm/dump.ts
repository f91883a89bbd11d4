import { Flags } from '@oclif/core'
import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'

export default class VmDump extends DaemonCommand {
  static override summary =
    'Print a VM’s spec (YAML, or JSON with --json): what `vm apply -f` takes back.'

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo > demo.yaml',
    '<%= config.bin %> <%= command.id %> demo --json',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    output: Flags.string({
      char: 'o',
      description: 'Write the spec to this file instead.',
      helpValue: 'FILE',
    }),
  }

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(VmDump)
    const spec = await this.call<Record<string, unknown>>('vm.dump', { name: args.name })
    const { stringify } = await import('yaml')
    if (flags.output) {
      const { writeUserFile } = await import('../../core/user-file.js')
      writeUserFile(flags.output, stringify(spec), { flag: '--output' })
      process.stderr.write(`wrote ${flags.output}\n`)
    } else if (!this.jsonEnabled()) {
      process.stdout.write(stringify(spec))
    }
    return spec
  }
}
