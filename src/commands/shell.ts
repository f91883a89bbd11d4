import { Errors, Flags } from '@oclif/core'
import { HsmCommand } from '../cli/base-command.js'
import { singleHost } from '../cli/daemon-command.js'
import { backendFlag, hostFlag } from '../cli/flags.js'
import type { Backend } from '../core/daemon/paths.js'

export default class Shell extends HsmCommand {
  static override summary =
    'An interactive shell for hsmctl commands (history, Tab completion), or run a script of them.'

  static override description = `On a terminal, reads commands as you would type them after "hsmctl" (vm list, help vm),
with history kept across runs (in the state directory, one per backend) and Tab completion
of commands, flags and live values: VM names, vmids, host BDFs, eventfd ids. The prompt
shows the backend and the number of VMs (and the host, with --host: every command then
runs on that host). Several commands go on one line separated by ";",
"#" starts a comment, and '...' or "..." quote; a quote left open at the end of a line goes
on at the "> " prompt. Ctrl-C stops the running command, never the shell; Ctrl-D, exit or
quit leaves with the last command's exit code (exit N: with N). "hsmctl" with no arguments
on a terminal starts the shell.

With -f FILE, or with commands on stdin, runs them the same way without a prompt, and stops
at the first failure with its exit code (--keep-going runs them all and exits with the last
failure's code; exit without N there does the same). A quote may span lines; one still open
at the end is a usage error naming its line. The commands print and exit exactly as they do
on the command line; "daemon run" is refused (use "daemon start").`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --file setup.hsm',
    '<%= config.bin %> <%= command.id %> --file checks.hsm --keep-going',
    "echo 'vm create demo --memory 1M; vm start demo' | <%= config.bin %> <%= command.id %>",
  ]

  static override enableJsonFlag = false

  static override flags = {
    file: Flags.string({
      char: 'f',
      description: 'Run the commands in FILE ("-" for stdin) instead of reading a terminal.',
      helpValue: 'FILE',
    }),
    'keep-going': Flags.boolean({
      description: 'In a script, run every command even after a failure.',
    }),
    backend: backendFlag,
    host: hostFlag,
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(Shell)
    const host = await singleHost(this.id, flags.host)
    const { startShell } = await import('../cli/shell/index.js')
    const { code, stuck } = await startShell({
      config: this.config,
      backend: flags.backend as Backend,
      host,
      ...(flags.file !== undefined ? { file: flags.file } : {}),
      keepGoing: flags['keep-going'],
    })
    // a command still running after a second Ctrl-C would keep the process alive
    if (code !== 0 || stuck) throw new Errors.ExitError(code)
  }

  protected override async catch(error: Error & { exitCode?: number }): Promise<void> {
    // our own exit status: nothing to print
    if (error instanceof Errors.ExitError) throw error
    return super.catch(error)
  }
}
