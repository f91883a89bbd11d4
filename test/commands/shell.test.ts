// `hsmctl shell` as a user runs it: scripts from -f FILE and from stdin (exit codes, the
// first failure stops them, --keep-going, the same output as the CLI), and the
// interactive shell in a real terminal (tmux): history across runs, Tab completion, help,
// a confirmation prompt inside the shell, Ctrl-C during a command.

import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { hsmctl, RUN_JS } from '../support/cli.js'
import { haveTmux, TmuxSession } from '../support/tmux.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-shell-'))
const env = {
  HSMCTL_RUNTIME_DIR: join(dir, 'run'),
  HSMCTL_STATE_DIR: join(dir, 'state'),
  NO_COLOR: '1',
}
const run = (...args: string[]) => hsmctl(args, env)

/** `hsmctl shell ARGS` with `input` on its stdin (a pipe, not a terminal). */
function shell(args: string[], input = '', extraEnv: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [RUN_JS, 'shell', ...args], {
    input,
    encoding: 'utf8',
    // as in test/support/cli.ts: a user's shell has no NODE_ENV=test
    env: { ...process.env, NODE_ENV: undefined, ...env, ...extraEnv },
    timeout: 60_000,
  })
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

const vmNames = () =>
  (JSON.parse(run('vm', 'list', '--json').stdout) as { name: string }[]).map((v) => v.name)

// generous: the machines that run this are shared and busy
const LONG = 120_000

let scriptNo = 0
const script = (text: string) => {
  const file = join(dir, `script-${scriptNo++}.hsm`)
  writeFileSync(file, text)
  return file
}

beforeAll(() => {
  // started once up front, so no command's output includes "started the hsmd daemon"
  expect(run('daemon', 'start').code).toBe(0)
  expect(run('vm', 'create', 'base', '--memory', '1M').code).toBe(0)
}, 60_000)

afterAll(() => {
  run('daemon', 'stop')
  rmSync(dir, { recursive: true, force: true })
})

describe('scripts', { timeout: LONG }, () => {
  // read-only commands with stable output, ending in two failures of different kinds
  const commands = [
    ['abi', 'CREATE_VM'],
    ['memseg', 'list', 'base'],
    ['vm', 'dump', 'base'],
    ['ioreq', 'clients', 'base', '--json'],
    ['host', 'devices'],
    ['vm', 'show', 'base', '--bogus'],
    ['vm', 'show', 'nope'],
  ]

  it('print and fail exactly as the same commands run one by one with the CLI', () => {
    const cli = commands.map((c) => run(...c))
    const s = shell(['--keep-going', '-f', script(commands.map((c) => c.join(' ')).join('\n'))])
    expect(s.stdout).toBe(cli.map((r) => r.stdout).join(''))
    expect(s.stderr).toBe(cli.map((r) => r.stderr).join(''))
    expect(cli.map((r) => r.code)).toEqual([0, 0, 0, 0, 0, 2, 3])
    expect(s.stdout).toMatch(/struct acrn_vm_creation/) // not two empty strings
    expect(s.stderr.match(/no VM named 'nope'/g)).toHaveLength(1) // printed once
    expect(s.code).toBe(3)
  })

  it('stop at the first failure, with its exit code (-f FILE)', () => {
    const s = shell([
      '-f',
      script('vm create f1 --memory 1M # ok\nvm create f1 --memory 1M\nvm create f2 --memory 1M\n'),
    ])
    expect(s.code).toBe(4) // the duplicate name: a conflict
    expect(s.stderr).toMatch(/f1/)
    expect(vmNames()).toContain('f1')
    expect(vmNames()).not.toContain('f2')
  })

  it('from piped stdin, the same way: `;`, comments, quotes', () => {
    const s = shell([], `# setup\nvm create p1 --memory 1M; vm show 'nope' ; vm create p2\n`)
    expect(s.code).toBe(3)
    expect(s.stderr).toBe("Error: no VM named 'nope'\nHint: see `hsmctl vm list`\n")
    expect(vmNames()).toContain('p1')
    expect(vmNames()).not.toContain('p2')
  })

  it('--keep-going runs everything and exits with the last failure’s code', () => {
    const text = 'vm show nope\nvm create k1 --memory 1M\nvm create k1\nabi CREATE_VM\n'
    const s = shell(['--keep-going'], text)
    expect(s.code).toBe(4)
    expect(vmNames()).toContain('k1')
    expect(s.stdout).toMatch(/CREATE_VM/)
    const stopped = shell([], text.replaceAll('k1', 'k2'))
    expect(stopped.code).toBe(3)
    expect(vmNames()).not.toContain('k2')
  })

  it('exit 0 when every command succeeds; `exit N` ends with N', () => {
    expect(shell([], 'abi CREATE_VM\nmemseg list base; vm dump base\n').code).toBe(0)
    const s = shell([], 'abi CREATE_VM\nexit 7\nvm create never\n')
    expect(s.code).toBe(7)
    expect(vmNames()).not.toContain('never')
    expect(shell([], '').code).toBe(0)
  })

  it('--no-color applies to the one command that has it', () => {
    const colour = { NO_COLOR: undefined, FORCE_COLOR: '1' }
    const s = shell(
      ['--keep-going'],
      'vm show nope\nvm show nope --no-color\nvm show nope\n',
      colour,
    )
    const errors = s.stderr.split('\n').filter((line) => line.includes("no VM named 'nope'"))
    expect(errors.map((line) => line.includes('\x1b['))).toEqual([true, false, true])
  })

  it('a syntax error is a usage error (2) naming the line', () => {
    const s = shell(['-f', script(`abi CREATE_VM\nvm create "x\n`)])
    expect(s.code).toBe(2)
    expect(s.stderr).toMatch(/^Error: line 2: unterminated quote$/m)
  })

  it('a quote may span lines; one left open at the end names the line it opened on (2)', () => {
    // the quoted newline is part of the name: the command runs, and finds no such VM
    const spanning = shell([], `vm show 'no\npe'\n`)
    expect(spanning.code).toBe(3)
    expect(spanning.stderr).toMatch(/no VM named 'no\s+pe'/)
    const open = shell([], 'abi CREATE_VM\nvm show "x\nvm list\nvm list\n')
    expect(open.code).toBe(2)
    expect(open.stderr).toMatch(/^Error: line 2: unterminated quote$/m)
    expect(open.stdout).toMatch(/0xc030a210/) // the line before it ran
    expect(open.stdout).not.toMatch(/NAME/) // the lines after it did not
  })

  it('`daemon run` is refused (2), pointing at `daemon start`', () => {
    const s = shell([], 'daemon run\nabi CREATE_VM\n')
    expect(s.code).toBe(2)
    expect(s.stderr).toMatch(/^Error: daemon run is not for the shell/m)
    expect(s.stderr).toMatch(/^Hint: use `daemon start`/m)
    expect(s.stdout).toBe('')
  })

  it('a missing script file is not found (3)', () => {
    const s = shell(['-f', join(dir, 'missing.hsm')])
    expect(s.code).toBe(3)
    expect(s.stderr).toMatch(/^Error: --file: .*missing\.hsm does not exist$/m)
  })

  it('help works in scripts, from the same metadata as --help', () => {
    const s = shell([], 'help vm\nvm show --help\n')
    expect(s.code).toBe(0)
    expect(s.stdout).toBe(run('help', 'vm').stdout + run('vm', 'show', '--help').stdout)
  })

  it('hsmctl with no arguments off a terminal still prints help', () => {
    const r = spawnSync(process.execPath, [RUN_JS], {
      input: '',
      encoding: 'utf8',
      env: { ...process.env, NODE_ENV: undefined, ...env },
    })
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/^USAGE/m)
    expect(r.stdout).toMatch(/^\s+shell\s/m)
  })
})

if (!haveTmux) {
  if (process.env.HSMCTL_CI === '1')
    throw new Error('tmux is missing (Debian: apt-get install tmux)')
  console.warn('\n*** SKIPPED the interactive shell tests: tmux is not installed ***\n')
}

describe.skipIf(!haveTmux)('the interactive shell in a terminal', { timeout: LONG }, () => {
  const sessions: TmuxSession[] = []
  // `trap : INT` keeps tmux's sh alive when Ctrl-C reaches the whole process group
  const open = (args = '') => {
    const s = new TmuxSession(`trap : INT; ${process.execPath} ${RUN_JS} ${args}`, env)
    sessions.push(s)
    return s
  }
  // capture-pane drops trailing blanks: the prompt's own blank included
  const PROMPT = /hsmctl\(sim, \d+ VMs?\)>$/m
  const enter = (s: TmuxSession, line: string) => {
    s.type(line)
    s.keys('Enter')
  }
  const WAIT = 60_000 // a hang guard: slowness must not fail a test

  // tmux's server exits with its last session, and a session opened while it exits
  // fails: an idle session keeps it up between the tests
  let anchor: TmuxSession | undefined
  beforeAll(() => void (anchor = new TmuxSession('sleep 3600', {})))
  afterAll(() => anchor?.kill())

  afterEach(() => {
    for (const s of sessions.splice(0)) s.kill()
  })

  it('hsmctl with no arguments starts it; create and start a VM; the prompt counts VMs', async () => {
    const s = open()
    const first = await s.waitFor(PROMPT, WAIT)
    const before = Number(/hsmctl\(sim, (\d+) VMs?\)>$/m.exec(first)![1])
    enter(s, 'vm create t1 --memory 1M; vm start t1')
    await s.waitFor(new RegExp(`hsmctl\\(sim, ${before + 1} VMs?\\)>$`, 'm'), WAIT)
    enter(s, 'vm show t1')
    const screen = await s.waitFor(/t1\s+vmid \d+\s+running/, WAIT)
    expect(screen).not.toMatch(/Error/)
    enter(s, 'exit')
    expect(await s.waitFor(/\[exit \d+\]/, WAIT)).toMatch(/\[exit 0\]/)
  })

  it('Tab completes a command and a VM name; help vm shows the topic', async () => {
    const s = open('shell')
    await s.waitFor(PROMPT, WAIT)
    s.type('vm sta')
    s.keys('Tab')
    await s.waitFor(/> vm start$/m, WAIT)
    s.keys('C-u')
    s.type('vm show ba')
    s.keys('Tab')
    await s.waitFor(/> vm show base$/m, WAIT)
    s.keys('Enter')
    await s.waitFor(/base\s+vmid \d+/, WAIT)
    enter(s, 'help vm')
    const help = await s.waitFor(/vm console\s+Print what the VM wrote/, WAIT)
    expect(help).toMatch(/\$ hsmctl vm COMMAND/)
  })

  it('history survives two runs: up-arrow recalls a line typed in the previous one', async () => {
    const s1 = open('shell')
    await s1.waitFor(PROMPT, WAIT)
    enter(s1, 'abi acrn_vm_creation # from the first run')
    await s1.waitFor(/size: 48/, WAIT)
    await s1.waitFor(PROMPT, WAIT)
    s1.keys('C-d') // Ctrl-D leaves
    expect(await s1.waitFor(/\[exit \d+\]/, WAIT)).toMatch(/\[exit 0\]/)

    const s2 = open('shell')
    await s2.waitFor(PROMPT, WAIT)
    s2.keys('Up')
    await s2.waitFor(/> abi acrn_vm_creation # from the first run$/m, WAIT)
    s2.keys('Enter')
    await s2.waitFor(/struct acrn_vm_creation/, WAIT)

    // one history per backend: the native shell has not seen that line
    expect(readFileSync(join(env.HSMCTL_STATE_DIR, 'history-sim'), 'utf8')).toMatch(
      /^abi acrn_vm_creation # from the first run$/m,
    )
    expect(existsSync(join(env.HSMCTL_STATE_DIR, 'history-native'))).toBe(false)
    const native = open('shell --backend native')
    await native.waitFor(/hsmctl\(native[^)]*\)>$/m, WAIT)
    native.keys('Up')
    native.type('abi') // after a recalled line it would follow that line
    await native.waitFor(/hsmctl\(native[^)]*\)> abi$/m, WAIT)
  })

  it('a quote left open goes on at "> "; Ctrl-C there drops the line', async () => {
    const s = open('shell')
    await s.waitFor(PROMPT, WAIT)
    enter(s, 'vm show "no')
    await s.waitFor(/"no\n>$/m, WAIT)
    enter(s, 'pe"')
    await s.waitFor(/no VM named 'no\s+pe'/, WAIT)
    await s.waitFor(PROMPT, WAIT)
    enter(s, "vm create 'dropped")
    await s.waitFor(/'dropped\n>$/m, WAIT)
    s.type('x --memory 1M')
    await s.waitFor(/^> x --memory 1M$/m, WAIT)
    s.keys('C-c')
    await s.waitFor(/^> x --memory 1M\^C$/m, WAIT)
    await s.waitFor(PROMPT, WAIT)
    expect(vmNames().some((n) => n.startsWith('dropped'))).toBe(false)
    enter(s, 'exit')
    // exit leaves with the last command's status: `vm show`'s not found
    expect(await s.waitFor(/\[exit \d+\]/, WAIT)).toMatch(/\[exit 3\]/)
  })

  it('`daemon run` is refused and the shell lives on; exit leaves with its status (2)', async () => {
    const s = open('shell')
    await s.waitFor(PROMPT, WAIT)
    enter(s, 'daemon run')
    await s.waitFor(/Hint: use `daemon start`/, WAIT)
    await s.waitFor(PROMPT, WAIT)
    enter(s, 'exit')
    expect(await s.waitFor(/\[exit \d+\]/, WAIT)).toMatch(/\[exit 2\]/)
  })

  it('a confirmation prompt inside the shell gets each key once', async () => {
    expect(run('vm', 'create', 'c1', '--memory', '1M').code).toBe(0)
    const s = open('shell')
    await s.waitFor(PROMPT, WAIT)
    enter(s, 'vm destroy c1')
    await s.waitFor(/Destroy VM 'c1'\?/, WAIT)
    s.type('y')
    s.keys('Enter')
    await s.waitFor(/destroyed c1/, WAIT)
    await s.waitFor(PROMPT, WAIT)
    // the shell's own line editor is back, alone: what is typed shows once
    s.type('abi CREATE_VM')
    await s.waitFor(/> abi CREATE_VM$/m, WAIT)
    s.keys('Enter')
    const screen = await s.waitFor(/0xc030a210/, WAIT)
    expect(screen).not.toMatch(/is not a hsmctl command/)
    expect(screen).not.toMatch(/yy|abi CREATE_VMabi/)
    expect(vmNames()).not.toContain('c1')
  })

  it('ioreq tail prints request lines above the prompt while the user types', async () => {
    for (const args of [
      ['vm', 'create', 'tl', '--memory', '1M'],
      ['vm', 'start', 'tl'],
    ])
      expect(run(...args).code).toBe(0)
    const s = open('shell')
    await s.waitFor(PROMPT, WAIT)
    enter(s, 'ioreq tail tl --type pio')
    await s.waitFor(PROMPT, WAIT) // the tail runs in the background: the prompt is back
    s.type('abi CREATE') // a half-typed line
    // the guest reads the CMOS clock: the lines appear while the line is being typed
    const workload = [
      'guest',
      'run',
      'tl',
      '--workload',
      'rtc',
      '--count',
      '6',
      '--rate',
      '0',
      '--wait',
    ]
    expect(run(...workload).code).toBe(0)
    const screen = await s.waitFor(/^\s*[\d.]+ tl\s+vcpu0\s+PIO\s+IN\s+0x71\s/m, WAIT)
    expect(screen).toMatch(/^\s*[\d.]+ tl\s+vcpu0\s+PIO\s+OUT\s+0x70\s+1B\s+0xa\s/m)
    // the half-typed line is still there, below the output, and completes normally
    expect(screen.trimEnd().split('\n').at(-1)).toMatch(/> abi CREATE$/)
    s.type('_VM')
    s.keys('Enter')
    await s.waitFor(/0xc030a210/, WAIT)
    // Ctrl-C at the prompt stops the background tail; the shell lives on
    s.keys('C-c')
    await s.waitFor(PROMPT, WAIT)
    enter(s, 'exit')
    expect(await s.waitFor(/\[exit \d+\]/, WAIT)).toMatch(/\[exit 0\]/)
  })

  it('Ctrl-C stops `vm console --follow` and returns to the prompt; the shell lives on', async () => {
    for (const args of [
      ['vm', 'create', 'con', '--memory', '1M'],
      ['vm', 'regs', 'set', 'con', '--vcpu', '0', '--rip', '0'],
      ['vm', 'start', 'con'],
    ])
      expect(run(...args).code).toBe(0)
    const s = open('shell')
    await s.waitFor(PROMPT, WAIT)
    enter(s, 'vm console con --follow')
    await new Promise((r) => setTimeout(r, 500))
    // the guest writes 'Z' to COM1 while the shell follows the console
    const access = ['guest', 'access', 'con', '--pio', '0x3f8', '--write', '0x5a', '--size', '1']
    expect(run(...access).code).toBe(0)
    await s.waitFor(/^Z/m, WAIT)
    s.keys('C-c')
    await s.waitFor(PROMPT, WAIT)
    enter(s, 'vm list')
    await s.waitFor(/│ con\s+│/, WAIT)
    enter(s, 'exit')
    expect(await s.waitFor(/\[exit \d+\]/, WAIT)).toMatch(/\[exit 0\]/)
  })
})
