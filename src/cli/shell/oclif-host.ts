// The runner's view of oclif: the loaded Config runs the commands, the project's help
// class prints help, and oclif's own error handler prints what escapes a command, with
// its process.exit held back so that the shell survives it.

import { loadHelpClass, type Config } from '@oclif/core'
import { Exit, handle } from '@oclif/core/handle'
import type { RunnerHost } from './runner.js'
import { tableFromCommands } from './table.js'

export function oclifHost(config: Config): RunnerHost {
  return {
    table: tableFromCommands(config.commands),
    userAgent: config.userAgent,
    runCommand: (id, argv) => config.runCommand(id, argv),
    async showHelp(argv) {
      const Help = await loadHelpClass(config)
      await new Help(config, config.pjson.oclif.helpOptions ?? config.pjson.helpOptions).showHelp(
        argv,
      )
    },
    report: reportLikeOclif,
  }
}

/**
 * What `hsmctl` would print and exit with for this error: oclif's handle(), whose
 * process.exit is swapped for recording the code while it runs. Commands already printed
 * their errors (HsmCommand.catch throws ExitError, which handle() does not print).
 */
export async function reportLikeOclif(error: unknown): Promise<number> {
  let code: number | undefined
  const exit = Exit.exit
  Exit.exit = ((c = 0) => {
    code ??= c
  }) as typeof Exit.exit
  try {
    await handle(error as Error)
  } finally {
    Exit.exit = exit
  }
  return code ?? 1
}
