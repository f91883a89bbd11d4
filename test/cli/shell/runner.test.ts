// Running shell commands in-process over a fake oclif: exit codes instead of process
// exits, builtins, help routing, Ctrl-C, and scripts that stop at the first failure.

import { stripVTControlCharacters } from 'node:util'
import { Errors } from '@oclif/core'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { currentAbortSignal } from '../../../src/cli/shell/host.js'
import { Runner, SHELL_HELP, type RunnerHost } from '../../../src/cli/shell/runner.js'
import { runScript } from '../../../src/cli/shell/script.js'
import { CommandTable } from '../../../src/cli/shell/table.js'

const table = new CommandTable([
  { id: 'vm:list', args: [], flags: [] },
  { id: 'vm:show', args: ['name'], flags: [] },
  { id: 'vm:console', args: ['name'], flags: [{ name: 'follow', takesValue: false }] },
  { id: 'fail', args: ['code'], flags: [] },
  { id: 'hang', args: [], flags: [] },
  { id: 'shell', args: [], flags: [] },
  { id: 'daemon:run', args: [], flags: [{ name: 'backend', takesValue: true }] },
  { id: 'daemon:start', args: [], flags: [] },
])

function fakeHost() {
  const ran: string[] = []
  const helped: string[][] = []
  const host: RunnerHost = {
    table,
    userAgent: 'hsmctl/0.0.0 test',
    async runCommand(id, argv) {
      ran.push([id, ...argv].join(' '))
      if (id === 'fail') {
        // as HsmCommand.catch does: status for the CLI, then ExitError
        process.exitCode = Number(argv[0])
        throw new Errors.ExitError(Number(argv[0]))
      }
      if (id === 'vm:console') {
        const signal = currentAbortSignal()
        await new Promise((resolve) => signal.addEventListener('abort', resolve))
      }
      if (id === 'hang') await new Promise(() => {})
      if (id.includes(':lst')) throw new Error(`command ${id} not found`)
    },
    async showHelp(argv) {
      helped.push(argv)
    },
    report: async (e) => (e as { oclif?: { exit?: number } }).oclif?.exit ?? 9,
  }
  return { host, ran, helped }
}

afterEach(() => {
  process.exitCode = undefined
  vi.restoreAllMocks()
})

describe('commands run in-process', () => {
  it('a failure is an exit code, and process.exitCode does not leak into the shell', async () => {
    const { host, ran } = fakeHost()
    const runner = new Runner(host)
    expect(await runner.run(['fail', '3'])).toEqual({ code: 3, interrupted: false })
    expect(process.exitCode).toBeUndefined()
    expect(await runner.run(['vm', 'show', 'demo'])).toEqual({ code: 0, interrupted: false })
    expect(ran).toEqual(['fail 3', 'vm:show demo'])
  })

  it('an error that escapes a command is reported once, with its code', async () => {
    const { host } = fakeHost()
    const report = vi.spyOn(host, 'report')
    const runner = new Runner(host)
    expect((await runner.run(['vm', 'lst'])).code).toBe(9)
    expect(report).toHaveBeenCalledTimes(1)
  })

  it('a topic, --help and help all go to the help class', async () => {
    const { host, ran, helped } = fakeHost()
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
    const runner = new Runner(host)
    await runner.run(['vm'])
    await runner.run(['vm', 'show', '--help'])
    await runner.run(['vm', 'show', '--', '--help']) // after -- it is an argument
    await runner.run(['help', 'vm', 'show'])
    await runner.run(['help'])
    expect(helped).toEqual([['vm'], ['vm', 'show', '--help'], ['vm', 'show'], []])
    expect(ran).toEqual(['vm:show -- --help'])
    // the root help gains a section on the shell itself
    expect(write).toHaveBeenCalledWith('\n' + SHELL_HELP)
  })

  it('exit and quit leave; exit takes a code', async () => {
    const runner = new Runner(fakeHost().host)
    expect((await runner.run(['exit'])).leave).toEqual({})
    expect((await runner.run(['quit'])).leave).toEqual({})
    expect((await runner.run(['exit', '4'])).leave).toEqual({ code: 4 })
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    expect(await runner.run(['exit', 'x'])).toEqual({ code: 2, interrupted: false })
  })

  it('refuses to nest the shell, with a usage error (2) printed as a command prints one', async () => {
    const { host, ran } = fakeHost()
    const report = vi.spyOn(host, 'report')
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    expect((await new Runner(host).run(['shell'])).code).toBe(2)
    expect(stripVTControlCharacters(stderr.mock.calls.map((c) => String(c[0])).join(''))).toBe(
      'Error: already in the shell\nHint: type help for the commands\n',
    )
    expect(report).not.toHaveBeenCalled() // oclif's handler would print a stack
    expect(ran).toEqual([])
  })

  it('refuses `daemon run` (2), pointing at `daemon start`; help for it still works', async () => {
    const { host, ran, helped } = fakeHost()
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    const runner = new Runner(host)
    expect(await runner.run(['daemon', 'run', '--backend', 'sim'])).toEqual({
      code: 2,
      interrupted: false,
    })
    const printed = stripVTControlCharacters(stderr.mock.calls.map((c) => String(c[0])).join(''))
    expect(printed).toMatch(/^Error: daemon run is not for the shell/)
    expect(printed).toMatch(/^Hint: use `daemon start`/m)
    await runner.run(['daemon', 'run', '--help'])
    expect(helped).toEqual([['daemon', 'run', '--help']])
    expect((await runner.run(['daemon', 'start'])).code).toBe(0)
    expect(ran).toEqual(['daemon:start'])
  })
})

describe('Ctrl-C', () => {
  it('aborts the running command’s signal; the runner carries on', async () => {
    const { host } = fakeHost()
    const runner = new Runner(host)
    expect(runner.interrupt()).toBe(false) // nothing runs
    const running = runner.run(['vm', 'console', 'demo', '--follow'])
    await new Promise((r) => setTimeout(r, 10))
    expect(runner.interrupt()).toBe(true)
    expect(await running).toEqual({ code: 0, interrupted: true })
    expect((await runner.run(['vm', 'list'])).interrupted).toBe(false)
  })

  it('each command gets a fresh signal', async () => {
    const { host } = fakeHost()
    const signals: AbortSignal[] = []
    host.runCommand = async () => void signals.push(currentAbortSignal())
    const runner = new Runner(host)
    await runner.run(['vm', 'list'])
    await runner.run(['vm', 'list'])
    expect(signals[0]).not.toBe(signals[1])
  })

  it('a second Ctrl-C gives up on a command that does not listen (exit 130)', async () => {
    const { host } = fakeHost()
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    const runner = new Runner(host)
    const running = runner.run(['hang'])
    await new Promise((r) => setTimeout(r, 10))
    runner.interrupt()
    runner.interrupt()
    expect(await running).toEqual({ code: 130, interrupted: true })
    expect(runner.abandoned).toBe(1)
  })
})

describe('scripts', () => {
  const script = async (text: string, keepGoing = false) => {
    const { host, ran } = fakeHost()
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    const code = await runScript(text.split('\n'), new Runner(host), { keepGoing })
    return { code, ran }
  }

  it('run every command, in order', async () => {
    expect(await script('vm list\n# comment\nvm show a; vm show b\n')).toEqual({
      code: 0,
      ran: ['vm:list', 'vm:show a', 'vm:show b'],
    })
  })

  it('stop at the first failure with its code', async () => {
    expect(await script('vm list\nfail 3; vm show a\nfail 4\n')).toEqual({
      code: 3,
      ran: ['vm:list', 'fail 3'],
    })
  })

  it('with keepGoing run everything and return the last failure', async () => {
    expect(await script('fail 3\nvm list\nfail 4\nvm show a\n', true)).toEqual({
      code: 4,
      ran: ['fail 3', 'vm:list', 'fail 4', 'vm:show a'],
    })
  })

  it('exit stops the script: with its code, or with the failure so far', async () => {
    expect(await script('vm list\nexit 5\nvm show a')).toEqual({ code: 5, ran: ['vm:list'] })
    expect(await script('fail 3\nexit\nvm list', true)).toEqual({ code: 3, ran: ['fail 3'] })
  })

  it('a quote or a backslash continues a command on the next line', async () => {
    expect((await script(`vm show 'a\nb'\nvm show \\\n  c\nvm list`)).ran).toEqual([
      'vm:show a\nb',
      'vm:show c',
      'vm:list',
    ])
  })

  it('an unterminated quote fails the script with 2, naming the line where it opened', async () => {
    const stderr: string[] = []
    const { host, ran } = fakeHost()
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      stderr.push(String(chunk))
      return true
    })
    const lines = ['vm list', "vm show 'a", 'vm list', 'vm show b']
    expect(await runScript(lines, new Runner(host), { keepGoing: false })).toBe(2)
    expect(ran).toEqual(['vm:list'])
    expect(stripVTControlCharacters(stderr.join(''))).toMatch(
      /^Error: line 2: unterminated quote$/m,
    )
  })

  it('a quote may span several lines, blank ones too', async () => {
    expect((await script(`vm show "a\n\nb;c"; vm list\nfail 3`)).ran).toEqual([
      'vm:show a\n\nb;c',
      'vm:list',
      'fail 3',
    ])
  })
})
