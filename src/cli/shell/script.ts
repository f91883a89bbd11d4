// Scripts: `hsmctl shell -f FILE` or commands on stdin, run like lines typed at the
// prompt, without prompt or history. The first failure stops the script and becomes its
// exit code; with keepGoing every command runs and the last failure's code is returned.

import { renderError } from '../../ui/error.js'
import type { Runner } from './runner.js'
import { scan, splitCommands } from './tokenize.js'

export interface ScriptOptions {
  keepGoing: boolean
}

/** Lines joined into complete pieces of text (quotes and `\` continue a line). */
async function* pieces(
  lines: AsyncIterable<string> | Iterable<string>,
): AsyncGenerator<{ text: string; line: number }> {
  let text = ''
  let first = 1
  let n = 0
  for await (const line of lines) {
    n++
    if (text === '') first = n
    text += line + '\n'
    if (!scan(text).incomplete) {
      yield { text, line: first }
      text = ''
    }
  }
  if (text !== '') yield { text, line: first } // unterminated: splitCommands says where
}

export async function runScript(
  lines: AsyncIterable<string> | Iterable<string>,
  runner: Runner,
  options: ScriptOptions,
): Promise<number> {
  // Ctrl-C stops the running command and then the script; between commands (waiting for
  // input) it ends the process the default way, as it would a shell script
  const onSigint = () => {
    if (runner.interrupt()) return
    process.off('SIGINT', onSigint)
    process.kill(process.pid, 'SIGINT')
  }
  process.on('SIGINT', onSigint)
  let failure = 0
  try {
    for await (const piece of pieces(lines)) {
      let commands
      try {
        commands = splitCommands(piece.text, piece.line)
      } catch (e) {
        process.stderr.write(renderError(e).text)
        failure = 2
        if (options.keepGoing) continue
        return failure
      }
      for (const command of commands) {
        const outcome = await runner.run(command.argv)
        if (outcome.leave) return outcome.leave.code ?? failure
        if (outcome.interrupted) return outcome.code || 130
        if (outcome.code !== 0) {
          failure = outcome.code
          if (!options.keepGoing) return failure
        }
      }
    }
    return failure
  } finally {
    process.off('SIGINT', onSigint)
  }
}
