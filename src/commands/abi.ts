import { Args, Flags } from '@oclif/core'
import { HsmCommand } from '../cli/base-command.js'
import type { AbiDescription } from '../core/abi/describe.js'

export default class Abi extends HsmCommand {
  static override summary =
    'Show the /dev/acrn_hsm ABI: every ioctl, and struct layouts like pahole.'

  static override description = `Without an argument, lists the 27 ioctls of the ACRN HSM with their request numbers,
direction, encoded size and argument. With a struct name (acrn_vm_creation, vm_memmap, ...)
or an ioctl name (CREATE_VM), prints the struct's layout: offset and size of every member,
holes and padding. The numbers are computed from the UAPI definitions and checked against
/usr/include/linux/acrn.h by the test suite.

--json prints {"ioctls": [...], "structs": [...]}: every ioctl and every struct (the 22 UAPI
structs and the kernel/hypervisor ones the simulation uses), or, with an argument, the
matching ioctls and the one struct.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> acrn_vm_creation',
    '<%= config.bin %> <%= command.id %> SET_MEMSEG',
    '<%= config.bin %> <%= command.id %> --structs',
    '<%= config.bin %> <%= command.id %> --json',
  ]

  static override args = {
    name: Args.string({
      description: 'A struct (acrn_io_request, io_request) or ioctl (CREATE_VM) to lay out.',
      required: false,
    }),
  }

  static override flags = {
    structs: Flags.boolean({ description: 'List the structs (name, size, alignment, origin).' }),
  }

  async run(): Promise<AbiDescription> {
    const { args, flags } = await this.parse(Abi)
    const { selectAbi } = await import('../core/abi/select.js')
    const selection = selectAbi(args.name)
    if (this.jsonEnabled()) return selection.description
    const { renderIoctlTable, renderStructTable } = await import('../ui/abi.js')
    if (flags.structs) {
      this.log(renderStructTable(selection.layouts))
    } else if (args.name === undefined) {
      this.log(renderIoctlTable(selection.description.ioctls))
    } else {
      const { renderPahole } = await import('../ui/pahole.js')
      if (selection.description.ioctls.length > 0)
        this.log(renderIoctlTable(selection.description.ioctls) + '\n')
      for (const layout of selection.layouts) this.log(renderPahole(layout))
    }
    return selection.description
  }
}
