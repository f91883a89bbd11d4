import { Flags } from '@oclif/core'
import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { hexFlag, intFlag } from '../../cli/flags.js'
import type { IoeventfdInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'

export default class IoeventfdAdd extends DaemonCommand {
  static override summary =
    'Register an ioeventfd (IOEVENTFD): guest writes at ADDR signal an eventfd in the kernel.'

  static override description = `Writes that start exactly at --addr (and match --datamatch, if given) signal the
eventfd; other accesses inside the range are completed by the kernel without a signal, and
reads return 0. The daemon owns the eventfd and counts its signals (see \`ioeventfd list\`).`

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo --addr 0xfe000000 --len 4',
    '<%= config.bin %> <%= command.id %> demo --pio --addr 0xc050 --len 2 --datamatch 0',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    addr: hexFlag('addr')({
      description: 'Start address (MMIO, or a port with --pio).',
      required: true,
    }),
    len: intFlag('len', 0n, 0xffff_ffffn)({ description: 'Length: 1, 2, 4 or 8.', default: 4 }),
    pio: Flags.boolean({ description: 'A port I/O range instead of MMIO.' }),
    datamatch: hexFlag('datamatch')({
      description: 'Signal only for writes of this value.',
      helpValue: 'VALUE',
    }),
  }

  async run(): Promise<Wire<IoeventfdInfo>> {
    const { args, flags } = await this.parse(IoeventfdAdd)
    const info = await this.call<Wire<IoeventfdInfo>>('ioeventfd.add', {
      name: args.name,
      addr: flags.addr,
      len: flags.len,
      pio: flags.pio,
      ...(flags.datamatch !== undefined ? { datamatch: flags.datamatch } : {}),
    })
    const { hex } = await import('../../ui/format.js')
    this.log(
      `ioeventfd #${info.id}: ${info.pio ? 'PIO' : 'MMIO'} ${hex(info.addr)} len ${info.len}`,
    )
    return info
  }
}
