// What a command may use to run well inside `hsmctl shell` as well as on its own. Kept
// tiny (commands import it at load time).
//
// Ctrl-C: a command that runs until interrupted (vm console --follow, ioreq watch, guest
// run, ioreq record) takes `currentAbortSignal()` and stops when it aborts. It must not
// listen to SIGINT itself: in the shell that listener would outlive the command. On its
// own (plain CLI) the first Ctrl-C aborts the signal and a second one kills the process as
// usual; in the shell each command gets a fresh signal and the shell lives on.
//
// A full-screen view that puts stdin in raw mode gets Ctrl-C as the key "\x03", not as a
// signal: treat it like `q`, and on the way out restore what it found (setRawMode(false),
// stdin.pause(), listeners removed). The shell has closed its line editor while a command
// runs and opens a fresh one afterwards, so the view owns the terminal in between.

import { InterruptedError } from '../../core/errors.js'

let shellController: AbortController | undefined
let cliController: AbortController | undefined

/** The signal that aborts when the user presses Ctrl-C during the current command. */
export function currentAbortSignal(): AbortSignal {
  if (shellController) return shellController.signal
  if (!cliController) {
    const controller = new AbortController()
    cliController = controller
    // once: the listener goes away after the first Ctrl-C, so a second one kills as usual
    process.once('SIGINT', () =>
      controller.abort(new InterruptedError('interrupted by Ctrl-C (SIGINT)')),
    )
  }
  return cliController.signal
}

/** For the shell: a fresh controller for the command about to run. */
export function beginCommand(): AbortController {
  shellController = new AbortController()
  return shellController
}

export function endCommand(controller: AbortController): void {
  if (shellController === controller) shellController = undefined
}

/**
 * The interactive shell, as seen by a command running inside it (undefined outside an
 * interactive shell, and in scripts: there a command runs in the foreground as in the
 * CLI).
 */
export interface ShellHost {
  /**
   * Print above the prompt, keeping what the user is typing; outside a prompt, just
   * print. For output that arrives while the user types (`ioreq tail` in the shell).
   */
  print(text: string, stream?: 'stdout' | 'stderr'): void
  /**
   * Keep a task running after the command returns; the prompt comes back at once. The
   * signal aborts on Ctrl-C at the prompt and when the shell exits. A task's daemon
   * connection must be its own (DaemonCommand closes its client when run() returns);
   * an error it throws is printed above the prompt.
   */
  background(label: string, task: (signal: AbortSignal) => Promise<void>): void
}

let host: ShellHost | undefined

export function shellHost(): ShellHost | undefined {
  return host
}

export function setShellHost(next: ShellHost | undefined): void {
  host = next
}
