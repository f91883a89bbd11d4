// A mistyped command is never guessed and run: on the command line and in the shell,
// "unknown command 'X'; did you mean ...?" on stderr and exit 2 (a usage error), with no
// prompt, on a terminal or off it. (oclif's not-found plugin asked "Did you mean shell?"
// on a terminal, Yes by default, and took the next typed line as the answer; off a
// terminal it exited 127.)

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { hsmctl, RUN_JS } from '../support/cli.js'
import { expectError } from '../support/hsmd-session.js'
import { haveTmux, TmuxSession } from '../support/tmux.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-unknown-'))
const env = {
  HSMCTL_RUNTIME_DIR: join(dir, 'run'),
  HSMCTL_STATE_DIR: join(dir, 'state'),
  NO_COLOR: '1',
}
const run = (...args: string[]) => hsmctl(args, env)

if (!haveTmux) {
  if (process.env.HSMCTL_CI === '1')
    throw new Error('tmux is missing (Debian: apt-get install tmux)')
  console.warn('\n*** SKIPPED the terminal tests of unknown commands: tmux is not installed ***\n')
}

afterAll(() => {
  run('daemon', 'stop')
  rmSync(dir, { recursive: true, force: true })
})

describe('on the command line, off a terminal', () => {
  it.each([
    [['vm', 'lst'], "unknown command 'vm lst'; did you mean 'vm list'?"],
    [['vm', 'lst', 'demo', '--json'], "unknown command 'vm lst'; did you mean 'vm list'?"],
    [['clear'], "unknown command 'clear'; did you mean 'ioreq clear'?"],
    [['ioreq', 'tial'], "unknown command 'ioreq tial'; did you mean 'ioreq tail'?"],
    [['vmm'], "unknown command 'vmm'; did you mean 'vm'?"],
  ])('hsmctl %j → exit 2, a suggestion, nothing run', (args, message) => {
    const r = run(...args)
    expectError(r, 2, message, /^Hint: see `hsmctl (vm |ioreq )?--help`/)
    expect(r.stderr).not.toMatch(/is not a hsmctl command|Did you mean/)
  })

  it.each([[['help', 'vm', 'lst']], [['vm', 'lst', '--help']]])(
    'hsmctl %j: help for an unknown command says the same',
    (args) => {
      expectError(run(...args), 2, "unknown command 'vm lst'; did you mean 'vm list'?")
    },
  )

  it('with nothing close: exit 2, and where to find the commands', () => {
    const r = run('frobnicate', 'now')
    expectError(r, 2, "unknown command 'frobnicate'", 'see `hsmctl --help` for the commands')
    expect(r.stderr).not.toMatch(/did you mean/)
  })

  it('in a script (hsmctl shell < FILE): the script stops there with exit 2', () => {
    const r = spawnSync(process.execPath, [RUN_JS, 'shell'], {
      input: 'clear\nabi CREATE_VM\n',
      encoding: 'utf8',
      env: { ...process.env, NODE_ENV: undefined, ...env },
      timeout: 60_000,
    })
    expect(r.status, r.stderr).toBe(2)
    expect(r.stderr).toContain("unknown command 'clear'; did you mean 'ioreq clear'?")
    expect(r.stdout).not.toMatch(/0xc030a210/) // the next line did not run
  })
})

describe.skipIf(!haveTmux)('in a terminal (tmux)', { timeout: 120_000 }, () => {
  const sessions: TmuxSession[] = []
  const open = (args: string) => {
    const s = new TmuxSession(`trap : INT; ${process.execPath} ${RUN_JS} ${args}`, env)
    sessions.push(s)
    return s
  }
  const PROMPT = /hsmctl\(sim, [^)]*\)>$/m
  const WAIT = 60_000
  // tmux's server exits with its last session: an idle one keeps it up between the tests
  let anchor: TmuxSession | undefined
  beforeAll(() => void (anchor = new TmuxSession('sleep 3600', {})))
  afterAll(() => anchor?.kill())
  afterEach(() => {
    for (const s of sessions.splice(0)) s.kill()
  })

  it('hsmctl vm lst: no prompt, exit 2', async () => {
    const s = open('vm lst')
    const screen = await s.waitFor(/\[exit \d+\]/, WAIT)
    expect(screen).toContain("unknown command 'vm lst'; did you mean 'vm list'?")
    expect(screen).toMatch(/\[exit 2\]/)
    expect(screen).not.toMatch(/Did you mean|\(Y\/n\)/)
  })

  it('the shell: a typo asks nothing, and the next line typed runs as itself', async () => {
    const s = open('shell')
    await s.waitFor(PROMPT, WAIT)
    // typed at once, as a user types on: nothing may take `help vm` as an answer
    s.type('clear')
    s.keys('Enter')
    s.type('help vm')
    s.keys('Enter')
    const screen = await s.waitFor(/vm console\s+Print what the VM wrote/, WAIT)
    expect(screen).toContain("unknown command 'clear'; did you mean 'ioreq clear'?")
    expect(screen).not.toMatch(/Did you mean|\(Y\/n\)/)
    await s.waitFor(PROMPT, WAIT)
    s.type('vm lst')
    s.keys('Enter')
    s.type('exit')
    s.keys('Enter')
    // exit leaves with the last command's status: the typo's 2
    const end = await s.waitFor(/\[exit \d+\]/, WAIT)
    expect(end).toContain("unknown command 'vm lst'; did you mean 'vm list'?")
    expect(end).toMatch(/\[exit 2\]/)
  })
})
