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
