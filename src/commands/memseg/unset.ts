import { Flags } from '@oclif/core'
import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { hexFlag, sizeFlag, yesFlag } from '../../cli/flags.js'
import type { MemsegInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'

export default class MemsegUnset extends DaemonCommand {
  static override summary =
    'Unmap an MMIO segment (UNSET_MEMSEG). RAM stays until the VM is destroyed.'

  static override description = `The kernel accepts only MMIO here: for RAM it answers EINVAL, and hsmctl passes that on
with the rule, so that what you see is what the kernel does.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo --gpa 0xdf000000 --size 1M --yes',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    gpa: hexFlag('gpa')({ description: 'Guest physical address.', required: true }),
    size: sizeFlag('size')({ description: 'Size.', required: true }),
    type: Flags.string({ description: 'Segment type.', options: ['ram', 'mmio'], default: 'mmio' }),
    yes: yesFlag,
  }

  async run(): Promise<Wire<MemsegInfo>> {
    const { args, flags } = await this.parse(MemsegUnset)
    await this.confirm(
      `Unmap ${flags.type.toUpperCase()} at 0x${flags.gpa.toString(16)} from '${args.name}'?`,
      flags.yes,
    )
    const seg = await this.call<Wire<MemsegInfo>>('memseg.unset', {
      name: args.name,
      gpa: flags.gpa,
      size: flags.size,
      type: flags.type,
    })
    this.log(`unmapped 0x${flags.gpa.toString(16)} from ${args.name}`)
    return seg
  }
}
