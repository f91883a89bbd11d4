import { Args } from '@oclif/core'
import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'

export default class VmBlkrescan extends DaemonCommand {
  static override localOnly = 'asks acrn-dm through its monitor socket on this machine'

  static override summary =
    "Give an acrn-dm VM's empty virtio-blk device a backing file (DM_BLKRESCAN)."

  static override description = `acrn-dm fills only a virtio-blk device its launch script started with \`nodisk\`
(\`-s 3,virtio-blk,nodisk\`), once; the guest sees the new disk. PATH is made absolute and
must exist. A refusal (exit 6) says why: no virtio-blk device, not that slot, a slot that
has a file already.`

  static override examples = ['<%= config.bin %> <%= command.id %> vm1 3,/var/lib/acrn/disk.img']

  static override args = {
    name: vmNameArg,
    rescan: Args.string({
      name: 'SLOT,PATH',
      description: 'The PCI slot of the virtio-blk device, a comma, and the backing file.',
      required: true,
    }),
  }

  async run(): Promise<{ name: string; slot: number; path: string }> {
    const { args, flags } = await this.parse(VmBlkrescan)
    const { parseRescan } = await import('../../core/acrn-dm/lifecycle.js')
    const rescan = parseRescan(args.rescan)
    const [{ existsSync }, { resolve }, { NotFoundError }] = await Promise.all([
      import('node:fs'),
      import('node:path'),
      import('../../core/errors.js'),
    ])
    // acrn-dm opens the path from its own working directory: give it an absolute one
    rescan.path = resolve(rescan.path)
    if (!existsSync(rescan.path)) throw new NotFoundError(`${rescan.path} does not exist`)
    const { ownerOf } = await import('../../core/acrn-dm/owners/locate.js')
    const owner = await ownerOf(args.name, flags)
    const result = await owner.blkrescan(rescan)
    this.log(`${result.name}: slot ${result.slot} now backed by ${result.path}`)
    return result
  }
}
