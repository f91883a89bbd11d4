// oclif's help plus what every user of a CLI needs and oclif does not print: the exit
// codes, from the same table the error handler uses.

import { Help } from '@oclif/core'
import { EXIT_CODES } from '../core/errors.js'

export function exitCodesSection(): string {
  const width = Math.max(...EXIT_CODES.map((e) => String(e.code).length))
  return [
    'EXIT CODES',
    ...EXIT_CODES.map((e) => `  ${String(e.code).padStart(width)}  ${e.meaning}`),
  ].join('\n')
}

export default class HsmctlHelp extends Help {
  /** `help vm lst` and `vm lst --help`: the unknown command as when it is run. */
  override async showHelp(argv: string[]): Promise<void> {
    try {
      await super.showHelp(argv)
    } catch (e) {
      const unknown = /^Command (\S+) not found\.$/.exec((e as Error).message)
      if (!unknown) throw e
      const { failUnknownCommand } = await import('./unknown-command.js')
      failUnknownCommand(unknown[1]!, this.config)
    }
  }

  protected override async showRootHelp(): Promise<void> {
    await super.showRootHelp()
    this.log('')
    this.log(exitCodesSection())
    this.log('')
    this.log('ENVIRONMENT')
    this.log('  NO_COLOR  when set and not empty, output is not coloured (as with --no-color)')
  }
}
