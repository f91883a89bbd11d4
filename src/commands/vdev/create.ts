import { Flags } from '@oclif/core'
import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { hexFlag, intFlag } from '../../cli/flags.js'
import type { VdevInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'

export default class VdevCreate extends DaemonCommand {
  static override summary = 'Create a device emulated by the hypervisor itself (CREATE_VDEV).'

  static override description = `A PCI device is identified by --vendor and --device at --slot; a legacy device (a vUART,
say) by --legacy-id. --io ADDR:SIZE gives its I/O resources (up to 6).`

  static override examples = ['<%= config.bin %> <%= command.id %> demo --legacy-id 1 --io 0x2f8:8']

  static override args = { name: vmNameArg }

  static override flags = {
    vendor: intFlag('vendor', 0n, 0xffffn)({ description: 'PCI vendor ID.' }),
    device: intFlag('device', 0n, 0xffffn)({ description: 'PCI device ID.' }),
    'legacy-id': intFlag('legacy-id')({ description: 'ID of a non-PCI device.' }),
    slot: hexFlag('slot')({ description: 'Virtual BDF / slot of the device.' }),
    io: Flags.string({
      description: 'I/O resource ADDR:SIZE (repeatable, up to 6).',
      multiple: true,
    }),
  }

  async run(): Promise<Wire<VdevInfo>> {
    const { args, flags } = await this.parse(VdevCreate)
    const { parseInteger } = await import('../../core/parse/number.js')
    const { UsageError } = await import('../../core/errors.js')
    const io = (flags.io ?? []).map((r) => {
      const [addr, size, extra] = r.split(':')
      if (addr === undefined || size === undefined || extra !== undefined) {
        throw new UsageError(`'${r}' is not ADDR:SIZE`, { flag: '--io' })
      }
      const max = 0xffff_ffffn
      return {
        addr: Number(parseInteger(addr, { name: '--io', max })),
        size: Number(parseInteger(size, { name: '--io', max })),
      }
    })
    if (io.length > 6) throw new UsageError('at most 6 I/O resources', { flag: '--io' })
    const info = await this.call<Wire<VdevInfo>>('vdev.create', {
      name: args.name,
      vendor: flags.vendor ?? 0,
      device: flags.device ?? 0,
      legacyId: flags['legacy-id'] ?? 0,
      slot: flags.slot ?? 0n,
      ioAddr: io.map((r) => r.addr),
      ioSize: io.map((r) => r.size),
    })
    this.log(`created virtual device in ${args.name}`)
    return info
  }
}
