import { Flags } from '@oclif/core'
import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { accessFlag, hexFlag, sizeFlag } from '../../cli/flags.js'
import type { MemsegInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'

export default class MemsegSet extends DaemonCommand {
  static override summary =
    'Map a memory segment into a VM (SET_MEMSEG): RAM backed by daemon memory, or MMIO.'

  static override description = `RAM (the default) is Service-VM memory the kernel pins and maps at --gpa; --file loads a
payload at its start. MMIO maps host physical --hpa at --gpa, always uncached (the kernel
forces it). RAM is at least 4 KiB, and the hypervisor maps 4 KiB multiples only. RAM cannot
be unmapped before the VM is destroyed: the kernel unsets MMIO segments only.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo --gpa 0 --size 64M',
    '<%= config.bin %> <%= command.id %> demo --gpa 0 --size 1M --file guest.bin',
    '<%= config.bin %> <%= command.id %> demo --type mmio --gpa 0xdf000000 --hpa 0xdf000000 --size 1M',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    // 4 KiB-aligned, as in spec files (`vm apply`): the kernel maps RAM in whole pages and
    // silently drops a size's sub-page tail (§3.4), so only whole pages say what is mapped
    gpa: hexFlag('gpa', { align: 4096n })({
      description: 'Guest physical address (4 KiB-aligned).',
      required: true,
    }),
    size: sizeFlag('size', { align: 4096n })({
      description: 'Size, a multiple of 4 KiB (4K, 64M, 0x100000).',
      required: true,
    }),
    type: Flags.string({ description: 'Segment type.', options: ['ram', 'mmio'], default: 'ram' }),
    hpa: hexFlag('hpa', { align: 4096n })({
      description: 'MMIO: host physical address to map (4 KiB-aligned).',
    }),
    access: accessFlag('access')({ description: 'EPT access rights.', default: 7 }),
    file: Flags.string({
      description: 'RAM: payload loaded at the segment’s start.',
      helpValue: 'FILE',
    }),
  }

  async run(): Promise<Wire<MemsegInfo>> {
    const { args, flags } = await this.parse(MemsegSet)
    const { UsageError } = await import('../../core/errors.js')
    if (flags.type === 'mmio' && flags.hpa === undefined)
      throw new UsageError('an MMIO segment needs --hpa', { flag: '--hpa' })
    if (flags.type === 'ram' && flags.hpa !== undefined)
      throw new UsageError('--hpa is for MMIO segments', { flag: '--hpa', hint: 'add --type mmio' })
    const { resolve } = await import('node:path')
    // hsmd reads it (as the same user); a file it cannot read is said here, before any call
    if (flags.file !== undefined) {
      const { checkUserFile } = await import('../../core/user-file.js')
      checkUserFile(flags.file, { flag: '--file' })
    }
    const seg = await this.call<Wire<MemsegInfo>>('memseg.set', {
      name: args.name,
      gpa: flags.gpa,
      size: flags.size,
      type: flags.type,
      access: flags.access,
      ...(flags.hpa !== undefined ? { hpa: flags.hpa } : {}),
      ...(flags.file ? { file: resolve(flags.file) } : {}),
      flag: '--size',
    })
    const { big, hex, size } = await import('../../ui/format.js')
    this.log(
      `mapped ${seg.type.toUpperCase()} ${hex(seg.gpa)}-${hex(big(seg.gpa) + big(seg.size) - 1n)} (${size(seg.size)}) into ${args.name}`,
    )
    return seg
  }
}
