// `hsmctl shell`: the interactive shell on a terminal, a script from -f FILE or stdin
// otherwise. Everything is wired here; the pieces are testable on their own.

import { createInterface } from 'node:readline'
import type { Config } from '@oclif/core'
import type { Backend } from '../../core/daemon/paths.js'
import type { SshHost } from '../../core/daemon/ssh/hosts.js'
import { readUserFile } from '../../core/user-file.js'
import { Completer } from './complete.js'
import { History, historyFile } from './history.js'
import { daemonValues, promptText } from './live.js'
import { oclifHost } from './oclif-host.js'
import { Runner } from './runner.js'
import { runScript } from './script.js'
import { InteractiveShell } from './session.js'

export interface ShellOptions {
  config: Config
  backend: Backend
  /** Every command runs on this remote host (--host). */
  host?: SshHost | undefined
  /** A script to run ('-' for stdin); without one, stdin decides. */
  file?: string
  keepGoing: boolean
}

export interface ShellResult {
  code: number
  /** A command is still running after a second Ctrl-C: the process must exit hard. */
  stuck: boolean
}

export async function startShell(options: ShellOptions): Promise<ShellResult> {
  // commands run in this process: they take the shell's backend as their default
  process.env.HSMCTL_BACKEND = options.backend
  if (options.host) process.env.HSMCTL_HOST = `ssh://${options.host.label}`
  const runner = new Runner(oclifHost(options.config))
  let code: number
  if (options.file !== undefined && options.file !== '-') {
    code = await runScript(readScript(options.file), runner, options)
  } else if (options.file === '-' || !process.stdin.isTTY) {
    const lines = createInterface({ input: process.stdin, terminal: false, crlfDelay: Infinity })
    try {
      code = await runScript(lines, runner, options)
    } finally {
      lines.close()
    }
  } else {
    // a remote host's answer crosses ssh (a session over the reused connection)
    const live = {
      backend: options.backend,
      host: options.host,
      timeoutMs: options.host ? 5000 : 400,
    }
    code = await new InteractiveShell({
      runner,
      completer: new Completer(runner.table, daemonValues(live)),
      history: new History(historyFile(options.backend)),
      prompt: () => promptText(live),
      // the prompt where the user sees it: stderr, unless only stdout is the terminal
      output: process.stderr.isTTY || !process.stdout.isTTY ? process.stderr : process.stdout,
    }).run()
  }
  return { code, stuck: runner.abandoned > 0 }
}

function readScript(file: string): string[] {
  const text = readUserFile(file, { flag: '--file' }).toString('utf8')
  const lines = text.split('\n')
  if (lines[lines.length - 1] === '') lines.pop()
  return lines
}
