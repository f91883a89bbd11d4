// The interactive loop over a fake terminal (streams that say they are TTYs): lines run
// and the prompt comes back, the line editor is closed while a command runs, Ctrl-C and
// Ctrl-D at the prompt, Ctrl-C (SIGINT) during a command, Tab, and background tasks that
// print above the prompt.

import { PassThrough, Writable } from 'node:stream'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Completer } from '../../../src/cli/shell/complete.js'
import { History } from '../../../src/cli/shell/history.js'
import { currentAbortSignal, shellHost } from '../../../src/cli/shell/host.js'
import { Runner, type RunnerHost } from '../../../src/cli/shell/runner.js'
import { InteractiveShell } from '../../../src/cli/shell/session.js'
import { CommandTable } from '../../../src/cli/shell/table.js'

const table = new CommandTable([
  { id: 'vm:list', args: [], flags: [] },
  { id: 'vm:show', args: ['name'], flags: [] },
  { id: 'vm:console', args: ['name'], flags: [{ name: 'follow', takesValue: false }] },
  { id: 'tail', args: [], flags: [] },
  { id: 'fail', args: ['code'], flags: [] },
])

function terminal() {
  const input = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => {} })
  let text = ''
  const output = Object.assign(
    new Writable({
      write(chunk, _encoding, done) {
        text += String(chunk)
        done()
      },
    }),
    { isTTY: true, columns: 80, rows: 24 },
  )
  // what the screen would show, give or take cursor moves
  // eslint-disable-next-line no-control-regex
  return { input, output, text: () => text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '') }
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000 // a hang guard, not a speed limit
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

function setup() {
  const ran: string[] = []
  const editorsDuringCommands: number[] = []
  const term = terminal()
  const host: RunnerHost = {
    table,
    userAgent: 'test',
    async runCommand(id, argv) {
      ran.push([id, ...argv].join(' '))
      // is anything still reading keys while the command runs?
      editorsDuringCommands.push(term.input.listenerCount('keypress'))
      if (id === 'vm:console') {
        const signal = currentAbortSignal()
        await new Promise((r) => signal.addEventListener('abort', r))
      }
      if (id === 'fail') throw Object.assign(new Error('failed'), { exitCode: Number(argv[0]) })
      if (id === 'tail') {
        const shell = shellHost()!
        shell.background('tail demo', async (signal) => {
          shell.print('request 1')
          shell.print('request 2')
          await new Promise((r) => signal.addEventListener('abort', r))
        })
      }
    },
    showHelp: async () => {},
    report: async (e) => (e as { exitCode?: number }).exitCode ?? 1,
  }
  const runner = new Runner(host)
  const history = new History(undefined)
  let prompts = 0
  const shell = new InteractiveShell({
    runner,
    completer: new Completer(table, {
      vmNames: async () => ['demo'],
      vmids: async () => [],
      hostBdfs: async () => [],
      eventfdIds: async () => [],
      abiNames: async () => [],
      files: async () => [],
    }),
    history,
    prompt: async () => `p${++prompts}> `,
    input: term.input as unknown as NodeJS.ReadStream,
    output: term.output as unknown as NodeJS.WriteStream,
  })
  const type = (keys: string) => term.input.write(keys)
  const prompted = (n: number) => until(() => term.text().includes(`p${n}> `), `prompt ${n}`)
  /** The continuation prompt ("> " at the start of a line) shown `n` times so far. */
  const continued = (n: number) =>
    until(
      () =>
        term
          .text()
          .split(/\r?\n/)
          .filter((l) => l.startsWith('> ')).length >= n,
      '> ',
    )
  return { shell, ran, editorsDuringCommands, history, type, prompted, continued, term }
}

afterEach(() => vi.restoreAllMocks())

describe('the interactive shell', () => {
  it('runs a line, shows the prompt again, and leaves on Ctrl-D with 0', async () => {
    const t = setup()
    const done = t.shell.run()
    await t.prompted(1)
    t.type('vm list; vm show demo\r')
    await t.prompted(2)
    expect(t.ran).toEqual(['vm:list', 'vm:show demo'])
    // the line editor was closed while the commands ran: keys go to the command alone
    expect(t.editorsDuringCommands).toEqual([0, 0])
    expect(t.history.entries()).toEqual(['vm list; vm show demo'])
    t.type('\x04')
    expect(await done).toBe(0)
  })

  it('a pasted block runs line by line; text after its last newline waits at the prompt', async () => {
    const t = setup()
    const done = t.shell.run()
    await t.prompted(1)
    t.type('vm list\rvm show demo\rvm sh')
    await t.prompted(2)
    expect(t.ran).toEqual(['vm:list', 'vm:show demo'])
    await until(() => t.term.text().endsWith('p2> vm sh'), 'the typed-ahead text')
    t.type('ow x\r')
    await t.prompted(3)
    expect(t.ran).toEqual(['vm:list', 'vm:show demo', 'vm:show x'])
    expect(t.history.entries()).toEqual(['vm show x', 'vm show demo', 'vm list'])
    t.type('exit\r')
    await done
  })

  it('exit N leaves with N', async () => {
    const t = setup()
    const done = t.shell.run()
    await t.prompted(1)
    t.type('exit 3\r')
    expect(await done).toBe(3)
  })

  it('Ctrl-C at the prompt drops the line and keeps the shell', async () => {
    const t = setup()
    const done = t.shell.run()
    await t.prompted(1)
    t.type('vm sh')
    t.type('\x03')
    await t.prompted(2)
    expect(t.term.text()).toMatch(/p1> vm sh\^C\n/)
    t.type('vm list\r')
    await t.prompted(3)
    expect(t.ran).toEqual(['vm:list'])
    t.type('quit\r')
    expect(await done).toBe(0)
  })

  it('Ctrl-C (SIGINT) during a command stops it, skips the rest of the line, keeps the shell', async () => {
    const t = setup()
    const listeners = process.listenerCount('SIGINT')
    const done = t.shell.run()
    await t.prompted(1)
    t.type('vm console demo --follow; vm list\r')
    await until(() => t.ran.length === 1, 'the console to run')
    process.emit('SIGINT')
    await t.prompted(2)
    expect(t.ran).toEqual(['vm:console demo --follow'])
    t.type('vm list\r')
    await t.prompted(3)
    expect(t.ran).toEqual(['vm:console demo --follow', 'vm:list'])
    t.type('exit\r')
    expect(await done).toBe(0)
    expect(process.listenerCount('SIGINT')).toBe(listeners) // nothing left behind
  })

  it('Tab completes from the line editor', async () => {
    const t = setup()
    const done = t.shell.run()
    await t.prompted(1)
    t.type('vm sh\t')
    await until(() => t.term.text().includes('vm show '), 'completion')
    t.type('de\t')
    await until(() => t.term.text().includes('vm show demo '), 'the VM name')
    t.type('\r')
    await t.prompted(2)
    expect(t.ran).toEqual(['vm:show demo'])
    t.type('exit\r')
    await done
  })

  it('a background task prints above the prompt until Ctrl-C at the prompt stops it', async () => {
    const t = setup()
    const stdout: string[] = []
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      stdout.push(String(chunk))
      return true
    })
    const done = t.shell.run()
    await t.prompted(1)
    t.type('tail\r')
    await until(() => stdout.join('').includes('request 2'), 'the task to print')
    expect(stdout.join('')).toBe('request 1\nrequest 2\n')
    await t.prompted(2)
    // the prompt is drawn again after the printed lines, with what was typed kept
    t.type('vm li')
    const printer = (shellHost() as InteractiveShell).print.bind(shellHost())
    printer('request 3')
    await until(() => stdout.join('').includes('request 3'), 'another line')
    await until(() => /p2> vm li$/.test(t.term.text()), 'the prompt redrawn')
    t.type('\x03')
    await t.prompted(3)
    expect(t.term.text()).toMatch(/stopped: tail demo/)
    t.type('exit\r')
    expect(await done).toBe(0)
  })
})

describe('a quote left open at the end of a line (as in sh)', () => {
  it('goes on at the "> " prompt until it closes; the lines are joined with a newline', async () => {
    const t = setup()
    const done = t.shell.run()
    await t.prompted(1)
    t.type('vm show "my\r')
    await t.continued(1)
    t.type('demo\r')
    await t.continued(2)
    t.type('vm"; vm list\r')
    await t.prompted(2)
    expect(t.ran).toEqual(['vm:show my\ndemo\nvm', 'vm:list'])
    // a backslash at the end of a line continues it too, without the newline
    t.type('vm show de\\\r')
    await t.continued(3)
    t.type('mo\r')
    await t.prompted(3)
    expect(t.ran.at(-1)).toBe('vm:show demo')
    t.type('exit\r')
    expect(await done).toBe(0)
  })

  it('Tab at the "> " prompt completes knowing the quote opened on the line before', async () => {
    const t = setup()
    const done = t.shell.run()
    await t.prompted(1)
    t.type("vm console 'a\r")
    await t.continued(1)
    t.type("b' --fo\t")
    await until(() => t.term.text().includes("> b' --follow "), 'the flag')
    t.type('\x03')
    await t.prompted(2)
    expect(t.ran).toEqual([])
    t.type('exit\r')
    await done
  })

  it('Ctrl-C at the "> " prompt drops the whole line and keeps the shell', async () => {
    const t = setup()
    const done = t.shell.run()
    await t.prompted(1)
    t.type("vm show 'a\r")
    await t.continued(1)
    t.type('b')
    t.type('\x03')
    await t.prompted(2)
    expect(t.term.text()).toMatch(/\n> b\^C\n/)
    t.type('vm list\r')
    await t.prompted(3)
    expect(t.ran).toEqual(['vm:list'])
    t.type('exit\r')
    expect(await done).toBe(0)
  })

  it('a pasted block may hold the rest of the quote', async () => {
    const t = setup()
    const done = t.shell.run()
    await t.prompted(1)
    t.type("vm show 'a\rb'\rvm list\r")
    await until(() => t.ran.length === 2, 'both commands')
    expect(t.ran).toEqual(['vm:show a\nb', 'vm:list'])
    t.type('exit\r')
    expect(await done).toBe(0)
  })

  it('Ctrl-D at the "> " prompt reports the unterminated quote (2) and keeps the shell', async () => {
    const t = setup()
    const stderr: string[] = []
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      stderr.push(String(chunk))
      return true
    })
    const done = t.shell.run()
    await t.prompted(1)
    t.type('vm show "a\r')
    await t.continued(1)
    t.type('\x04')
    await t.prompted(2)
    expect(stderr.join('')).toMatch(/unterminated quote/)
    expect(t.ran).toEqual([])
    t.type('exit\r')
    expect(await done).toBe(2) // the status of that line
  })
})

describe('leaving with the last status (as in sh)', () => {
  it('exit without a code leaves with the last command’s exit code', async () => {
    const t = setup()
    const done = t.shell.run()
    await t.prompted(1)
    t.type('fail 3\r')
    await t.prompted(2)
    t.type('exit\r')
    expect(await done).toBe(3)
  })

  it('the last command counts, on the same line as exit too', async () => {
    const t = setup()
    const done = t.shell.run()
    await t.prompted(1)
    t.type('fail 3; vm list\r')
    await t.prompted(2)
    t.type('vm list; fail 4; quit\r')
    expect(await done).toBe(4)
  })

  it('a success resets it, and exit N still leaves with N', async () => {
    const t = setup()
    const done = t.shell.run()
    await t.prompted(1)
    t.type('fail 3\r')
    await t.prompted(2)
    t.type('exit 0\r')
    expect(await done).toBe(0)
    const u = setup()
    const again = u.shell.run()
    await u.prompted(1)
    u.type('fail 3; vm list\r')
    await u.prompted(2)
    u.type('exit\r')
    expect(await again).toBe(0)
  })

  it('Ctrl-D leaves with the last command’s exit code', async () => {
    const t = setup()
    const done = t.shell.run()
    await t.prompted(1)
    t.type('fail 5\r')
    await t.prompted(2)
    t.type('\x04')
    expect(await done).toBe(5)
  })
})
