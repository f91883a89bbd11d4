import { Args, Flags } from '@oclif/core'
import { DaemonCommand } from '../../cli/daemon-command.js'

export default class IoreqReplay extends DaemonCommand {
  static override summary =
    'Play a recording back as guest traffic of a VM (simulation), with its timing or --fast.'

  static override description = `Every recorded access is made again by the same vCPU (vCPU 0 if the VM has fewer),
in recorded order, through the real trap and dispatch path; PCI config requests are
replayed as the 0xCFC port accesses they came from (the 0xCF8 writes are in the
recording too).`

  static override examples = ['<%= config.bin %> <%= command.id %> trace.hsmtrace --vm demo --fast']

  static override args = {
    file: Args.string({ description: 'A file written by `ioreq record`.', required: true }),
  }

  static override flags = {
    vm: Flags.string({ description: 'The VM to play it into.', required: true }),
    fast: Flags.boolean({ description: 'As fast as possible instead of the recorded timing.' }),
  }

  async run(): Promise<{ name: string; replayed: number; skipped: number; errors: number }> {
    const { args, flags } = await this.parse(IoreqReplay)
    const { readTraceFile } = await import('../../core/trace/file.js')
    const file = readTraceFile(args.file)
    const result = await this.call<{
      name: string
      replayed: number
      skipped: number
      errors: number
    }>('guest.replay', {
      name: flags.vm,
      records: Buffer.from(
        file.records.buffer,
        file.records.byteOffset,
        file.records.byteLength,
      ).toString('base64'),
      fast: flags.fast,
    })
    this.log(
      `replayed ${result.replayed} of ${file.count} requests into ${flags.vm}${result.errors ? ` (${result.errors} failed)` : ''}`,
    )
    return result
  }
}
