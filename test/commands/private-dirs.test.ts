// The runtime and state directories (issue 13, items 1 and 2): hsmctl creates them 0700,
// and refuses, as ssh does with a bad ~/.ssh, a symbolic link, a directory another user
// owns, or one others can write to, naming the path and why. It never follows the link,
// never chmods a directory it did not just create, and puts nothing there.

import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { hsmctl } from '../support/cli.js'
import { expectError } from '../support/hsmd-session.js'

const root = mkdtempSync(join(tmpdir(), 'hsmctl-private-dirs-'))
let n = 0
const envs: NodeJS.ProcessEnv[] = []
/** A fresh case: its own runtime and state dirs (not created yet) and a victim dir. */
function layout() {
  const dir = join(root, `case-${n++}`)
  mkdirSync(dir)
  const victim = join(dir, 'victim')
  mkdirSync(victim, { mode: 0o755 })
  const env = { HSMCTL_RUNTIME_DIR: join(dir, 'run'), HSMCTL_STATE_DIR: join(dir, 'state') }
  envs.push(env)
  const run = (...args: string[]) => hsmctl(args, env)
  return { dir, victim, env, run }
}

const mode = (path: string) => statSync(path).mode & 0o777
const stop = (run: (...a: string[]) => unknown) => run('daemon', 'stop')

afterAll(() => {
  // a daemon a failing case started must not outlive the file
  for (const env of envs) hsmctl(['daemon', 'stop'], env)
  rmSync(root, { recursive: true, force: true })
})

/** A directory owned by another user: chowned to nobody when we are root, else root's /. */
function foreignDir(dir: string): string {
  if (process.getuid?.() !== 0) return '/'
  const d = join(dir, 'foreign')
  mkdirSync(d, { mode: 0o700 })
  chownSync(d, 65534, 65534)
  return d
}

describe('the runtime directory', () => {
  it('is created 0700 when missing, and an existing private one is used as it is', () => {
    const fresh = layout()
    expect(fresh.run('vm', 'list').code).toBe(0)
    expect(mode(fresh.env.HSMCTL_RUNTIME_DIR)).toBe(0o700)
    expect(mode(fresh.env.HSMCTL_STATE_DIR)).toBe(0o700)
    stop(fresh.run)

    // 0755 is not writable by others: accepted, and not chmod'ed (hsmctl did not create it)
    const own = layout()
    mkdirSync(own.env.HSMCTL_RUNTIME_DIR, { mode: 0o755 })
    expect(own.run('vm', 'list').code).toBe(0)
    expect(mode(own.env.HSMCTL_RUNTIME_DIR)).toBe(0o755)
    expect(mode(join(own.env.HSMCTL_RUNTIME_DIR, 'hsmd-sim.sock'))).toBe(0o600)
    stop(own.run)
  })

  it('a symbolic link is refused, not followed: its target keeps its mode and gets no socket', () => {
    const { victim, env, run } = layout()
    symlinkSync(victim, env.HSMCTL_RUNTIME_DIR)
    for (const args of [
      ['vm', 'list'],
      ['daemon', 'start'],
      ['daemon', 'status'],
      ['daemon', 'run'],
    ]) {
      const r = run(...args)
      expectError(
        r,
        5,
        `refusing to use ${env.HSMCTL_RUNTIME_DIR} as the runtime directory: it is a symbolic link to ${victim}`,
        'HSMCTL_RUNTIME_DIR',
      )
    }
    expect(mode(victim)).toBe(0o755)
    expect(readdirSync(victim)).toEqual([])
  })

  it('a link to a directory where some hsmd listens is not talked to, by any command', () => {
    // someone else's daemon, in their own directory, with a VM of theirs
    const theirs = layout()
    expect(theirs.run('vm', 'create', 'bait', '--vcpus', '1').code).toBe(0)
    const { env, run } = layout()
    symlinkSync(theirs.env.HSMCTL_RUNTIME_DIR, env.HSMCTL_RUNTIME_DIR)
    // vm list and vm show have a fast path that connects without oclif: refused too
    for (const args of [
      ['vm', 'list'],
      ['vm', 'show', 'bait'],
      ['vm', 'list', '--json'],
    ]) {
      const r = run(...args)
      expect(r.code, r.stderr).toBe(5)
      expect(r.stderr).toContain(
        `refusing to use ${env.HSMCTL_RUNTIME_DIR} as the runtime directory`,
      )
      expect(r.stdout).not.toContain('bait')
    }
    stop(theirs.run)
  })

  it('a directory others can write to is refused and left as it is', () => {
    for (const bad of [0o777, 0o770, 0o1777]) {
      const { env, run } = layout()
      mkdirSync(env.HSMCTL_RUNTIME_DIR)
      // mkdir's mode goes through the umask: set it as it is meant
      chmodSync(env.HSMCTL_RUNTIME_DIR, bad)
      const r = run('vm', 'list')
      expectError(
        r,
        5,
        new RegExp(
          `^Error: refusing to use ${env.HSMCTL_RUNTIME_DIR} as the runtime directory: it is writable by (group and others|group|others) \\(mode 0?${(bad & 0o7777).toString(8)}\\)`,
          'm',
        ),
        `chmod go-w ${env.HSMCTL_RUNTIME_DIR}`,
      )
      expect(statSync(env.HSMCTL_RUNTIME_DIR).mode & 0o7777).toBe(bad)
      expect(readdirSync(env.HSMCTL_RUNTIME_DIR)).toEqual([])
    }
  })

  it('a directory another user owns is refused', () => {
    const { dir, env } = layout()
    const foreign = foreignDir(dir)
    const r = hsmctl(['vm', 'list'], { ...env, HSMCTL_RUNTIME_DIR: foreign })
    expectError(
      r,
      5,
      new RegExp(
        `^Error: refusing to use ${foreign} as the runtime directory: it belongs to uid ${statSync(foreign).uid}, not to you \\(uid ${process.getuid?.()}\\)`,
        'm',
      ),
    )
    if (foreign !== '/') expect(readdirSync(foreign)).toEqual([])
  })

  it('a file where the directory should be is refused', () => {
    const { env, run } = layout()
    writeFileSync(env.HSMCTL_RUNTIME_DIR, 'x')
    expectError(
      run('vm', 'list'),
      5,
      `refusing to use ${env.HSMCTL_RUNTIME_DIR} as the runtime directory: it is a regular file, not a directory`,
    )
  })
})

describe('the state directory', () => {
  it('a symbolic link is refused, not followed: nothing is written to its target', () => {
    const { victim, env, run } = layout()
    symlinkSync(victim, env.HSMCTL_STATE_DIR)
    for (const args of [
      ['vm', 'list'],
      ['daemon', 'start'],
      ['daemon', 'run'],
    ]) {
      expectError(
        run(...args),
        5,
        `refusing to use ${env.HSMCTL_STATE_DIR} as the state directory: it is a symbolic link to ${victim}`,
        'HSMCTL_STATE_DIR',
      )
    }
    expect(mode(victim)).toBe(0o755)
    expect(readdirSync(victim)).toEqual([])
    expect(existsSync(join(env.HSMCTL_RUNTIME_DIR, 'hsmd-sim.sock'))).toBe(false)
  })

  it('a state directory others can write to is refused and left as it is', () => {
    const { env, run } = layout()
    mkdirSync(env.HSMCTL_STATE_DIR)
    chmodSync(env.HSMCTL_STATE_DIR, 0o777)
    expectError(
      run('vm', 'list'),
      5,
      `refusing to use ${env.HSMCTL_STATE_DIR} as the state directory: it is writable by group and others (mode 0777)`,
      `chmod go-w ${env.HSMCTL_STATE_DIR}`,
    )
    expect(mode(env.HSMCTL_STATE_DIR)).toBe(0o777)
    expect(readdirSync(env.HSMCTL_STATE_DIR)).toEqual([])
  })

  it("the backend's vms/ and consoles/ subdirectories are checked the same way", () => {
    for (const sub of ['vms', 'consoles']) {
      const { victim, env, run } = layout()
      const own = join(env.HSMCTL_STATE_DIR, 'sim')
      mkdirSync(own, { recursive: true, mode: 0o700 })
      symlinkSync(victim, join(own, sub))
      const r = run('vm', 'create', 'demo', '--vcpus', '1')
      expect(r.code, r.stderr).not.toBe(0)
      expect(r.stderr).toContain(
        `refusing to use ${join(own, sub)} as the ${sub === 'vms' ? 'journal' : 'console log'} directory: it is a symbolic link to ${victim}`,
      )
      expect(readdirSync(victim)).toEqual([])
      stop(run)
    }
  })

  it("a link planted as the backend's state directory is refused: hsmd does not start", () => {
    const { victim, env, run } = layout()
    mkdirSync(env.HSMCTL_STATE_DIR, { mode: 0o700 })
    symlinkSync(victim, join(env.HSMCTL_STATE_DIR, 'sim'))
    expectError(
      run('vm', 'create', 'demo', '--vcpus', '1'),
      5,
      `refusing to use ${join(env.HSMCTL_STATE_DIR, 'sim')} as the sim backend's state directory: it is a symbolic link to ${victim}`,
    )
    expect(readdirSync(victim)).toEqual([])
  })
})
