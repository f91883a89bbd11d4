// The interactive shell: read a line, run its commands, show the prompt again.
//
// The line editor (node:readline) exists only while the prompt is shown: it is closed
// before a command runs and a fresh one is opened afterwards. So a command owns the
// terminal while it runs: an inquirer prompt gets every key once (two readline
// interfaces on one stdin would both echo them), a full-screen view can use raw mode,
// and with the terminal back in cooked mode Ctrl-C arrives as SIGINT, which the shell
// turns into an abort of that command only.
//
// A line that ends inside quotes (or with a backslash) goes on at the continuation prompt,
// as in sh: the lines are joined with newlines until the quote closes.

import {
  createInterface,
  clearScreenDown,
  cursorTo,
  moveCursor,
  type Interface,
} from 'node:readline'
import { renderError } from '../../ui/error.js'
import type { Completer } from './complete.js'
import { HISTORY_SIZE, type History } from './history.js'
import { setShellHost, type ShellHost } from './host.js'
import type { Outcome, Runner } from './runner.js'
import { scan, splitCommands } from './tokenize.js'

/** Shown while a line goes on from the one before (an open quote, a final \); sh's PS2. */
export const CONTINUATION_PROMPT = '> '

export interface InteractiveOptions {
  runner: Runner
  completer: Completer
  history: History
  /** The prompt text, asked for before each line (it shows live state). */
  prompt: () => Promise<string>
  input?: NodeJS.ReadStream
  /** Where the prompt and the echo go (stderr: stdout carries results). */
  output?: NodeJS.WriteStream
}

/** What one prompt gave: lines (several when pasted at once), end of input, or Ctrl-C. */
type Read = { lines: string[] } | { eof: true } | { interrupted: true }

interface Task {
  label: string
  controller: AbortController
  done: Promise<void>
}

export class InteractiveShell implements ShellHost {
  private rl: Interface | undefined
  private readonly tasks = new Set<Task>()
  private readonly pending: [NodeJS.WriteStream, string][] = []
  /** Text after the last newline of a paste, for the next prompt. */
  private typedAhead = ''
  /** The exit code of the last command run: what `exit` and Ctrl-D leave with, as in sh. */
  private status = 0
  private readonly input: NodeJS.ReadStream
  private readonly output: NodeJS.WriteStream

  constructor(private readonly o: InteractiveOptions) {
    this.input = o.input ?? process.stdin
    this.output = o.output ?? process.stderr
  }

  /** Runs until exit, quit or Ctrl-D; resolves with the shell's exit code. */
  async run(): Promise<number> {
    // While a command runs the terminal is in cooked mode and Ctrl-C is a signal: it
    // stops that command; without this listener it would end the process.
    const onSigint = () => void this.o.runner.interrupt()
    process.on('SIGINT', onSigint)
    setShellHost(this)
    try {
      for (;;) {
        const read = await this.read(await this.o.prompt())
        if ('eof' in read) {
          this.output.write('\n')
          return this.status
        }
        if ('interrupted' in read) {
          await this.stopTasks(true)
          continue
        }
        const queue = [...read.lines]
        while (queue.length > 0) {
          const text = await this.nextCommandText(queue)
          if (text === undefined) {
            await this.stopTasks(true) // Ctrl-C at the continuation prompt, as at the prompt
            break
          }
          this.o.history.add(text)
          const outcome = await this.runLine(text)
          // `exit` without a code, like sh: the status of the command before it
          if (outcome.leave) return outcome.leave.code ?? this.status
          if (outcome.interrupted) break // the rest of a paste too
        }
      }
    } finally {
      process.off('SIGINT', onSigint)
      setShellHost(undefined)
      await this.stopTasks(false)
    }
  }

  /**
   * The text of the next line from `queue`: while it ends inside quotes (or after a
   * backslash) the following lines belong to it, read at the continuation prompt once
   * the queue (a paste) runs out. Undefined when Ctrl-C there abandons the whole line.
   */
  private async nextCommandText(queue: string[]): Promise<string | undefined> {
    let text = queue.shift()!
    while (scan(text).incomplete) {
      if (queue.length === 0) {
        const more = await this.read(CONTINUATION_PROMPT, text + '\n')
        if ('interrupted' in more) return undefined
        if ('eof' in more) {
          // Ctrl-D: run what there is; an open quote is then reported as unterminated
          this.output.write('\n')
          return text
        }
        queue.push(...more.lines)
      }
      text += '\n' + queue.shift()!
    }
    return text
  }

  private async runLine(line: string): Promise<Outcome> {
    let commands
    try {
      commands = splitCommands(line)
    } catch (e) {
      process.stderr.write(renderError(e).text)
      this.status = 2
      return { code: 2, interrupted: false }
    }
    let outcome: Outcome = { code: 0, interrupted: false }
    for (const command of commands) {
      outcome = await this.o.runner.run(command.argv)
      if (outcome.leave) break
      this.status = outcome.code
      if (outcome.interrupted) {
        this.output.write('\n') // after the terminal's ^C
        break
      }
    }
    return outcome
  }

  /** One prompt; `context` is the text of the earlier lines of a command still open. */
  private read(prompt: string, context = ''): Promise<Read> {
    return new Promise((resolve) => {
      const rl = createInterface({
        input: this.input,
        output: this.output,
        terminal: true,
        prompt,
        history: this.o.history.entries(),
        historySize: HISTORY_SIZE,
        tabSize: 4,
        completer: (line: string, callback: (e: null, r: [string[], string]) => void) => {
          // complete knowing the earlier lines (a quote may have opened there), but a word
          // that began on one of them cannot be replaced from this line
          this.o.completer.complete(context + line).then(
            (r) => callback(null, r[1].length > line.length ? [[], line] : r),
            () => callback(null, [[], line]),
          )
        },
      })
      this.rl = rl
      let result: Read = { eof: true }
      const lines: string[] = []
      rl.on('line', (line) => {
        lines.push(line)
        result = { lines }
        // close once the keys that came with this line are read too: a pasted block
        // arrives in one chunk, and what follows the last newline is typed-ahead text
        if (lines.length === 1)
          setImmediate(() => {
            this.typedAhead = rl.line
            rl.close()
          })
      })
      // Ctrl-C at the prompt drops the line (and stops background tasks), as in bash
      rl.on('SIGINT', () => {
        result = { interrupted: true }
        rl.write(null, { ctrl: true, name: 'e' })
        this.output.write('^C')
        rl.close()
      })
      rl.on('close', () => {
        this.rl = undefined
        if ('interrupted' in result) this.output.write('\n')
        resolve(result)
      })
      rl.prompt()
      if (this.typedAhead) rl.write(this.typedAhead)
      this.typedAhead = ''
    })
  }

  print(text: string, stream: 'stdout' | 'stderr' = 'stdout'): void {
    const target = stream === 'stderr' ? process.stderr : process.stdout
    this.pending.push([target, text.endsWith('\n') ? text : text + '\n'])
    // many lines in one go (a busy `ioreq tail`) cost one redraw of the prompt
    if (this.pending.length === 1) setImmediate(() => this.flush())
  }

  private flush(): void {
    const pending = this.pending.splice(0)
    const rl = this.rl
    if (!rl) {
      for (const [target, text] of pending) target.write(text)
      return
    }
    // wipe the prompt, print, draw the prompt again with what the user had typed
    const { rows } = rl.getCursorPos()
    moveCursor(this.output, 0, -rows)
    cursorTo(this.output, 0)
    clearScreenDown(this.output)
    for (const [target, text] of pending) target.write(text)
    // readline redraws from `rows` rows above the cursor: give it those rows
    this.output.write('\n'.repeat(rows))
    rl.prompt(true)
  }

  background(label: string, task: (signal: AbortSignal) => Promise<void>): void {
    const controller = new AbortController()
    const entry: Task = { label, controller, done: Promise.resolve() }
    entry.done = task(controller.signal)
      .catch((e: unknown) => {
        if (!controller.signal.aborted) this.print(renderError(e).text, 'stderr')
      })
      .finally(() => this.tasks.delete(entry))
    this.tasks.add(entry)
  }

  private async stopTasks(say: boolean): Promise<void> {
    const tasks = [...this.tasks]
    for (const t of tasks) {
      t.controller.abort()
      if (say) this.output.write(`stopped: ${t.label}\n`)
    }
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.all(tasks.map((t) => t.done)),
      new Promise((r) => (timer = setTimeout(r, 2000))),
    ])
    clearTimeout(timer)
  }
}
