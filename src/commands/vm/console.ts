import { Flags } from '@oclif/core'
import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'

interface ConsoleChunk {
  name: string
  path: string
  offset: number
  data: string
}

export default class VmConsole extends DaemonCommand {
  static override summary =
    'Print what the VM wrote to its serial port (COM1, 0x3F8); --follow keeps printing.'

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo',
    '<%= config.bin %> <%= command.id %> demo --follow',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    follow: Flags.boolean({ char: 'f', description: 'Keep printing new output until Ctrl-C.' }),
  }

  async run(): Promise<ConsoleChunk> {
    const { args, flags } = await this.parse(VmConsole)
    let chunk = await this.call<ConsoleChunk>('vm.console', { name: args.name })
    if (this.jsonEnabled()) return chunk
    process.stdout.write(Buffer.from(chunk.data, 'latin1'))
    if (flags.follow) {
      // Ctrl-C ends the follow (and only this command, inside the shell)
      const { currentAbortSignal } = await import('../../cli/shell/host.js')
      const { setTimeout: sleep } = await import('node:timers/promises')
      const signal = currentAbortSignal()
      while (!signal.aborted) {
        await sleep(200, undefined, { signal }).catch(() => {})
        if (signal.aborted) break
        try {
          chunk = await this.call<ConsoleChunk>('vm.console', {
            name: args.name,
            offset: chunk.offset,
          })
        } catch (e) {
          process.stderr.write(`\n${args.name}: ${(e as Error).message}\n`)
          break
        }
        process.stdout.write(Buffer.from(chunk.data, 'latin1'))
      }
    }
    return chunk
  }
}
