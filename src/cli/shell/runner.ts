// Runs one shell command in this process, through oclif, exactly as the CLI would have
// run it (one set of command code): the same parsing, output, errors and exit codes. A
// failure becomes an exit code; nothing a command does may end the shell.

import { InterruptedError, UsageError } from '../../core/errors.js'
import { renderError } from '../../ui/error.js'
import { beginCommand, endCommand } from './host.js'
import { resolveCommand, type CommandTable } from './table.js'

/** The parts of oclif the runner needs; tests give it fakes. */
export interface RunnerHost {
  table: CommandTable
  userAgent: string
  runCommand(id: string, argv: string[]): Promise<unknown>
  showHelp(argv: string[]): Promise<void>
  /** Print an error that escaped a command as oclif's handler would; return its exit code. */
  report(error: unknown): Promise<number>
}

export interface Outcome {
  /** The exit code the CLI would have exited with. */
  code: number
  /** Ctrl-C arrived while it ran: the rest of the line (or script) is skipped. */
  interrupted: boolean
  /** `exit [N]` or `quit`: leave, with N when given. */
  leave?: { code?: number }
}

const ABANDONED = Symbol('abandoned')

/** Commands that make no sense inside the shell (usage errors, exit 2), and why. */
const NOT_IN_SHELL = new Map<string, { message: string; hint: string }>([
  ['shell', { message: 'already in the shell', hint: 'type help for the commands' }],
  // hsmd in the foreground would hold the prompt, inside the shell's own process, until
  // Ctrl-C stopped it and the VMs it holds with it
  [
    'daemon:run',
    {
      message: 'daemon run is not for the shell: hsmd would hold the prompt until stopped',
      hint: 'use `daemon start` to start hsmd in the background; to watch its log, run `hsmctl daemon run` in another terminal',
    },
  ],
])

/** Appended to the root help inside the shell. */
export const SHELL_HELP = `SHELL
  Commands as on the command line, without "hsmctl": vm list, help vm, vm show --help.
  Several on a line with ; and comments with #: vm create a; vm start a  # go
  Quote with '...' or "..."; a backslash escapes the next character. A quote left open
  at the end of a line goes on at the "> " prompt (Ctrl-C there drops the whole line).
  Tab completes commands, flags, VM names, vmids, host BDFs and eventfd ids.
  Ctrl-C stops the running command (never the shell). exit, quit or Ctrl-D leaves with
  the last command's exit code; exit N with N.
  History is kept per backend in the state directory (HSMCTL_STATE_DIR/history-sim,
  history-native).
`

export class Runner {
  private running: { controller: AbortController; abandon: (why: symbol) => void } | undefined
  /** Commands left running after a second Ctrl-C; the shell must exit hard if any. */
  abandoned = 0

  constructor(private readonly host: RunnerHost) {}

  get table(): CommandTable {
    return this.host.table
  }

  /**
   * Ctrl-C: the first one aborts the running command's signal (see host.ts); a second
   * one, for a command that does not listen, gives up waiting for it. False when no
   * command runs.
   */
  interrupt(): boolean {
    const r = this.running
    if (!r) return false
    if (!r.controller.signal.aborted) {
      r.controller.abort(new InterruptedError('interrupted by Ctrl-C (SIGINT)'))
    } else r.abandon(ABANDONED)
    return true
  }

  async run(words: readonly string[]): Promise<Outcome> {
    const [first, ...rest] = words
    if (first === undefined) return { code: 0, interrupted: false }
    if (first === 'exit' || first === 'quit') return this.leave(rest)
    if (first === 'help') {
      return this.guard(async () => {
        await this.host.showHelp(rest)
        if (rest.length === 0) process.stdout.write('\n' + SHELL_HELP)
      })
    }
    if (first === '--version') {
      return this.guard(async () => void process.stdout.write(this.host.userAgent + '\n'))
    }
    const dashes = words.indexOf('--')
    if (words.slice(0, dashes < 0 ? undefined : dashes).includes('--help')) {
      return this.guard(() => this.host.showHelp([...words]))
    }
    const target = resolveCommand(this.host.table, words)
    if (target.kind === 'topic') return this.guard(() => this.host.showHelp([target.id]))
    const refusal = NOT_IN_SHELL.get(target.id)
    if (refusal) {
      // printed as a command prints its own errors (oclif's handler would show a stack)
      const error = new UsageError(refusal.message, { hint: refusal.hint })
      process.stderr.write(renderError(error).text)
      return { code: error.exitCode, interrupted: false }
    }
    return this.execute(target.id, target.argv)
  }

  private leave(args: string[]): Outcome {
    if (args.length === 0) return { code: 0, interrupted: false, leave: {} }
    const code = /^\d{1,3}$/.test(args[0]!) ? Number(args[0]) : NaN
    if (args.length > 1 || !(code <= 255)) {
      process.stderr.write('exit: takes at most one number, 0 to 255\n')
      return { code: 2, interrupted: false }
    }
    return { code, interrupted: false, leave: { code } }
  }

  private async execute(id: string, argv: string[]): Promise<Outcome> {
    const controller = beginCommand()
    let abandon: (why: symbol) => void = () => {}
    const abandoned = new Promise<never>((_, reject) => (abandon = reject))
    abandoned.catch(() => {})
    this.running = { controller, abandon }
    let code = 0
    try {
      await Promise.race([this.host.runCommand(id, argv), abandoned])
      // a command that answers with its own status (`daemon status`: 3 when not running)
      code = Number(process.exitCode ?? 0)
    } catch (e) {
      if (e === ABANDONED) {
        this.abandoned++
        process.stderr.write(`\nhsmctl: gave up waiting for \`${id.replaceAll(':', ' ')}\`\n`)
        code = 130
      } else code = await this.host.report(e)
    } finally {
      this.running = undefined
      endCommand(controller)
      // HsmCommand.catch (and oclif's) set process.exitCode for the CLI; in the shell it
      // would become the shell's own status
      process.exitCode = undefined
    }
    return { code, interrupted: controller.signal.aborted }
  }

  /** Builtins and help: errors reported as for a command. */
  private async guard(action: () => Promise<void>): Promise<Outcome> {
    try {
      await action()
      return { code: 0, interrupted: false }
    } catch (e) {
      return { code: await this.host.report(e), interrupted: false }
    } finally {
      process.exitCode = undefined
    }
  }
}
