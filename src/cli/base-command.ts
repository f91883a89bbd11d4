// The base of every hsmctl command: the global flags, JSON output with 64-bit values as
// hex strings, and the one place where errors become stderr text and exit codes.

import { Command, Errors, Flags } from '@oclif/core'
import { renderError } from '../ui/error.js'
import { toJson } from '../ui/json.js'

export abstract class HsmCommand extends Command {
  static override enableJsonFlag = true

  static override baseFlags = {
    'no-color': Flags.boolean({
      description: 'Do not colour the output (also: NO_COLOR=1).',
      helpGroup: 'GLOBAL',
    }),
  }

  private restoreColor: (() => void) | undefined

  override async init(): Promise<void> {
    // oclif reads a piped stdin as a missing argument (`echo x | hsmctl vm create` made a VM
    // named x, and it would eat the bytes of `daemon dial-stdio` or a shell script). No
    // hsmctl argument comes from stdin; commands that read it (vm apply -) do so themselves.
    for (const arg of Object.values(this.ctor.args ?? {})) arg.ignoreStdin = true
    await super.init()
    // ui/color reads --no-color from process.argv, once; inside `hsmctl shell` the flag is
    // on this command's argv only, so apply it to this command and undo it afterwards
    if (this.argv.includes('--no-color') && !process.argv.includes('--no-color')) {
      const { err, out } = await import('../ui/color.js')
      const levels = [out().level, err().level] as const
      out().level = 0
      err().level = 0
      this.restoreColor = () => {
        out().level = levels[0]
        err().level = levels[1]
      }
    }
  }

  protected override async finally(error: Error | undefined): Promise<void> {
    this.restoreColor?.()
    await super.finally(error)
  }

  override logJson(json: unknown): void {
    process.stdout.write(toJson(json) + '\n')
  }

  protected override async catch(error: Error & { exitCode?: number }): Promise<void> {
    const rendered = renderError(error, this.config.bin, this.id)
    process.stderr.write(this.jsonEnabled() ? toJson(rendered.json) + '\n' : rendered.text)
    process.exitCode = rendered.exitCode
    // Already reported: tell oclif's handler to exit quietly with our code.
    throw new Errors.ExitError(rendered.exitCode)
  }
}
