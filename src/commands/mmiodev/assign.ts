import { Flags } from '@oclif/core'
import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import type { MmiodevInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'

export default class MmiodevAssign extends DaemonCommand {
  static override summary = 'Assign a host MMIO device (ASSIGN_MMIODEV).'

  static override description = `--res GPA:HPA:SIZE, up to three times (acrn_mmiodev holds 3 resources). --dev-name is
the device's name in the hypervisor (an ACPI HID, at most 8 bytes).`

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo --dev-name TPM0 --res 0xfed40000:0xfed40000:0x5000',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    'dev-name': Flags.string({ description: 'Device name (at most 8 bytes).', required: true }),
    res: Flags.string({
      description: 'A resource GPA:HPA:SIZE (repeatable, up to 3).',
      multiple: true,
      required: true,
    }),
  }

  async run(): Promise<Wire<MmiodevInfo>> {
    const { args, flags } = await this.parse(MmiodevAssign)
    const { parseMmioResource } = await import('../../core/parse/mmio.js')
    const res = flags.res.map((r) => parseMmioResource(r, '--res'))
    const info = await this.call<Wire<MmiodevInfo>>('mmiodev.assign', {
      name: args.name,
      devName: flags['dev-name'],
      res,
    })
    this.log(`assigned MMIO device ${info.devName} (${args.name})`)
    return info
  }
}
