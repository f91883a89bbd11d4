// Every file hsmd and hsmctl open in the state directory (issue 13, item 2), planted by
// someone else as a symbolic link to a precious file, a hard link to it or a FIFO: the
// daemon log, a console log, a journal entry and its temporary file, a payload. The
// target stays untouched, nothing hangs, and a refusal names the file and why.

import { execFileSync } from 'node:child_process'
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { hsmctl } from '../support/cli.js'
import { expectError, hsmdSession } from '../support/hsmd-session.js'

const PRECIOUS = 'root-owned data that must survive\n'
const s = hsmdSession('state-files')
// the sim daemon's own state directory (core/daemon/backend-state.ts)
const state = join(s.dir, 'state', 'sim')

function victim(name: string): string {
  const file = join(s.dir, `victim-${name}`)
  writeFileSync(file, PRECIOUS, { mode: 0o644 })
  return file
}

const mkfifo = (path: string) => execFileSync('mkfifo', [path])
const names = () => s.vms().map((v: { name: string }) => v.name)

describe('console logs (consoles/NAME.log)', () => {
  it('a planted symbolic link is refused: vm create fails, the target is untouched', () => {
    const target = victim('console-link')
    mkdirSync(join(state, 'consoles'), { recursive: true, mode: 0o700 })
    const log = join(state, 'consoles', 'link.log')
    symlinkSync(target, log)
    expectError(
      s.run('vm', 'create', 'link', '--vcpus', '1'),
      4,
      `refusing to use ${log}: it is a symbolic link to ${target}, not a regular file`,
      `rm ${log}`,
    )
    expect(readFileSync(target, 'utf8')).toBe(PRECIOUS)
    expect(names()).not.toContain('link')
    expect(existsSync(join(state, 'vms', 'link.json'))).toBe(false)
  })

  it('a planted hard link is not truncated', () => {
    const target = victim('console-hard')
    const log = join(state, 'consoles', 'hard.log')
    linkSync(target, log)
    expectError(s.run('vm', 'create', 'hard', '--vcpus', '1'), 4, 'it has 2 hard links')
    expect(readFileSync(target, 'utf8')).toBe(PRECIOUS)
    expect(names()).not.toContain('hard')
  })

  it('a planted FIFO does not hang the daemon', () => {
    const log = join(state, 'consoles', 'fifo.log')
    mkfifo(log)
    expectError(
      s.run('vm', 'create', 'fifo', '--vcpus', '1'),
      4,
      `refusing to use ${log}: it is a FIFO, not a regular file`,
    )
    expect(s.run('vm', 'list').code).toBe(0) // the daemon still answers
  })

  it('once the file is removed, the same name works and its console is read back', () => {
    const r = s.run('vm', 'create', 'fine', '--vcpus', '1')
    expect(r.code, r.stderr).toBe(0)
    expect(lstatSync(join(state, 'consoles', 'fine.log')).isFile()).toBe(true)
    expect(s.json('vm', 'console', 'fine')).toMatchObject({ data: '' })
  })
})

describe('journal entries (vms/NAME.json and its temporary file)', () => {
  it('a symbolic link where an entry goes is replaced, not written through', () => {
    const target = victim('journal-link')
    symlinkSync(target, join(state, 'vms', 'jlink.json'))
    const r = s.run('vm', 'create', 'jlink', '--vcpus', '1')
    expect(r.code, r.stderr).toBe(0)
    expect(readFileSync(target, 'utf8')).toBe(PRECIOUS)
    expect(lstatSync(join(state, 'vms', 'jlink.json')).isFile()).toBe(true)
    // and destroy removes the entry, never its old target
    symlinkSync(target, join(state, 'vms', 'jlink2.json'))
    expect(s.run('vm', 'destroy', 'jlink', '--yes').code).toBe(0)
    expect(readFileSync(target, 'utf8')).toBe(PRECIOUS)
  })
})

describe('journal temporary files (vms/NAME.json.PID.tmp)', () => {
  it('a link planted at the daemon’s temporary name is removed, not written through', () => {
    const { pid } = s.json('daemon', 'status')
    const target = victim('journal-temp')
    const temp = join(state, 'vms', `jtemp.json.${pid}.tmp`)
    symlinkSync(target, temp)
    const r = s.run('vm', 'create', 'jtemp', '--vcpus', '1')
    expect(r.code, r.stderr).toBe(0)
    expect(readFileSync(target, 'utf8')).toBe(PRECIOUS)
    expect(existsSync(temp)).toBe(false)
    expect(JSON.parse(readFileSync(join(state, 'vms', 'jtemp.json'), 'utf8'))).toMatchObject({
      name: 'jtemp',
    })
  })
})

describe('payload files (a spec’s memory[].file, read by hsmd)', () => {
  it('a FIFO given as the payload is refused without hanging the daemon', () => {
    const fifo = join(s.dir, 'payload.fifo')
    mkfifo(fifo)
    const spec = join(s.dir, 'fifo.yaml')
    writeFileSync(spec, `name: pfifo\nmemory:\n  - { gpa: 0, size: 1M, file: payload.fifo }\n`)
    expectError(s.run('vm', 'apply', '-f', spec), 2, `${fifo} is a FIFO, not a regular file`)
    expect(s.run('vm', 'list').code).toBe(0)
  })
})

describe('the daemon log (hsmd-sim.log)', () => {
  it('a symbolic link or a FIFO is refused when a command starts the daemon', () => {
    // a second state dir, whose daemon is not running yet
    const dir = join(s.dir, 'other')
    const env = { HSMCTL_RUNTIME_DIR: join(dir, 'run'), HSMCTL_STATE_DIR: join(dir, 'state') }
    mkdirSync(env.HSMCTL_STATE_DIR, { recursive: true, mode: 0o700 })
    const target = victim('daemon-log')
    const log = join(env.HSMCTL_STATE_DIR, 'hsmd-sim.log')
    symlinkSync(target, log)
    expectError(
      hsmctl(['vm', 'list'], env),
      5,
      `refusing to use ${log}: it is a symbolic link to ${target}, not a regular file`,
    )
    expect(readFileSync(target, 'utf8')).toBe(PRECIOUS)
    execFileSync('rm', [log])
    mkfifo(log)
    expectError(hsmctl(['vm', 'list'], env), 5, `refusing to use ${log}: it is a FIFO`)
    expect(existsSync(join(env.HSMCTL_RUNTIME_DIR, 'hsmd-sim.sock'))).toBe(false)
  })
})
