// Every command that reads or writes a file the user names, with one mapping of what can
// go wrong (issue 13 item 20): a missing file (or directory to write in) is exit 3, an
// unreadable or unwritable file or a directory is exit 2, each naming the path with a
// hint, never Node's own text. Permissions mean nothing to root, so as root the commands
// (and the daemon they start) run as nobody, through setpriv.

import { spawnSync } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RUN_JS, type CliResult } from '../support/cli.js'
import { expectError } from '../support/hsmd-session.js'

const NOBODY = 65534
const asRoot = process.getuid?.() === 0
const dir = mkdtempSync(join(tmpdir(), 'hsmctl-cli-files-'))
const env = {
  HOME: join(dir, 'home'),
  HSMCTL_RUNTIME_DIR: join(dir, 'run'),
  HSMCTL_STATE_DIR: join(dir, 'state'),
  HSMCTL_BACKEND: 'sim',
  NO_COLOR: '1',
}

function run(...args: string[]): CliResult {
  const node = [process.execPath, RUN_JS, ...args]
  const [command, ...argv] = asRoot
    ? ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...node]
    : node
  const r = spawnSync(command!, argv, {
    encoding: 'utf8',
    env: { ...process.env, NODE_ENV: undefined, ...env },
    timeout: 30_000,
  })
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

/** A file or directory in the session's dir, owned by whoever runs the commands. */
function own(path: string) {
  if (asRoot) chownSync(path, NOBODY, NOBODY)
  return path
}

const missing = join(dir, 'no-such-file')
const directory = join(dir, 'a-directory')
const unreadable = join(dir, 'unreadable')
const closedDir = join(dir, 'closed') // r-x: nothing can be written in it
const spec = (name: string, payload: string) => {
  const path = join(dir, `${name}.yaml`)
  writeFileSync(path, `name: ${name}\nmemory:\n  - gpa: 0\n    size: 4K\n    file: ${payload}\n`)
  return own(path)
}

beforeAll(() => {
  own(dir)
  for (const d of [env.HOME, directory, closedDir]) {
    mkdirSync(d)
    own(d)
  }
  writeFileSync(unreadable, 'name: x\n')
  own(unreadable)
  chmodSync(unreadable, 0)
  chmodSync(closedDir, 0o555)
  const r = run('vm', 'create', 'demo', '--memory', '1M')
  expect(r.code, r.stderr).toBe(0)
})

afterAll(() => {
  run('daemon', 'stop')
  rmSync(dir, { recursive: true, force: true })
})

/** Node's own words for a failed file call: never shown to a user. */
const NODE_TEXT =
  /ENOENT|EACCES|EISDIR|ENOTDIR|no such file or directory|illegal operation|No file found/

const READERS: [string, (file: string) => string[], (file: string) => string][] = [
  ['vm apply -f', (f) => ['vm', 'apply', '-f', f], () => '--file'],
  ['vm regs set --file', (f) => ['vm', 'regs', 'set', 'demo', '--file', f], () => '--file'],
  [
    'memseg set --file',
    (f) => ['memseg', 'set', 'demo', '--gpa', '0x100000', '--size', '4K', '--file', f],
    () => '--file',
  ],
  ['ioreq report', (f) => ['ioreq', 'report', f], () => 'FILE'],
  ['ioreq replay', (f) => ['ioreq', 'replay', f, '--vm', 'demo', '--fast'], () => 'FILE'],
  ['shell -f', (f) => ['shell', '-f', f], () => '--file'],
  [
    'vm create --payload',
    (f) => ['vm', 'create', 'loaded', '--memory', '1M', '--payload', f],
    () => '--payload',
  ],
  [
    'a spec’s payload (vm apply)',
    (f) => ['vm', 'apply', '-f', spec('payload', f)],
    () => `${join(dir, 'payload.yaml')}: memory[0].file`,
  ],
]

const WRITERS: [string, (file: string) => string[], string][] = [
  ['vm dump --output', (f) => ['vm', 'dump', 'demo', '--output', f], '--output'],
  ['ioreq record', (f) => ['ioreq', 'record', f, '--duration', '0.1'], 'FILE'],
  // a socket is a file too: Node calls a missing directory EACCES, and cuts a long path
  ['sim serve --socket', (f) => ['sim', 'serve', '--socket', f], '--socket'],
  ['daemon run --serve-sim', (f) => ['daemon', 'run', '--serve-sim', f], '--serve-sim'],
]

describe('files a command reads', () => {
  it.each(READERS)('%s: a missing file → exit 3', (_, args, where) => {
    const r = run(...args(missing))
    expectError(r, 3, `${where(missing)}: ${missing} does not exist`, 'check the path')
    expect(r.stderr).not.toMatch(NODE_TEXT)
  })

  it.each(READERS)('%s: a directory → exit 2', (_, args, where) => {
    const r = run(...args(directory))
    expectError(r, 2, `${where(directory)}: ${directory} is a directory`, 'name a file')
    expect(r.stderr).not.toMatch(NODE_TEXT)
  })

  it.each(READERS)('%s: an unreadable file → exit 2', (_, args, where) => {
    const r = run(...args(unreadable))
    expectError(
      r,
      2,
      `${where(unreadable)}: permission denied reading ${unreadable}`,
      `check the permissions of the file and of the directories above it`,
    )
    expect(r.stderr).not.toMatch(NODE_TEXT)
  })
})

describe('files a command writes', () => {
  it.each(WRITERS)('%s: a directory that does not exist → exit 3', (_, args, where) => {
    const file = join(missing, 'out')
    const r = run(...args(file))
    expectError(
      r,
      3,
      `${where}: cannot write ${file}: the directory ${missing} does not exist`,
      'create the directory first',
    )
    expect(r.stderr).not.toMatch(NODE_TEXT)
  })

  it.each(WRITERS)('%s: a directory → exit 2', (_, args, where) => {
    const r = run(...args(directory))
    expectError(r, 2, `${where}: ${directory} is a directory`, 'name a file to write')
    expect(r.stderr).not.toMatch(NODE_TEXT)
  })

  it.each(WRITERS)('%s: a file that cannot be written → exit 2', (_, args, where) => {
    const file = join(closedDir, 'out')
    const r = run(...args(file))
    expectError(r, 2, `${where}: permission denied writing ${file}`, 'check the permissions')
    expect(r.stderr).not.toMatch(NODE_TEXT)
  })
})

it.each(WRITERS.slice(2))('%s: a path too long for a socket → exit 2', (_, args, where) => {
  const long = join(dir, 'x'.repeat(120))
  const r = run(...args(long))
  expectError(
    r,
    2,
    `${where}: ${long} is ${Buffer.byteLength(long)} bytes; a unix socket's path has at most 107`,
    'use a shorter path',
  )
})

it('none of it changed the VM', () => {
  const r = run('memseg', 'list', 'demo', '--json')
  expect(r.code, r.stderr).toBe(0)
  expect(JSON.parse(r.stdout).memsegs).toHaveLength(1)
  expect(run('vm', 'list', '--json').stdout).not.toMatch(/"payload"/)
})
