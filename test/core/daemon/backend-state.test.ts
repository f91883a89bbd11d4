// Each backend keeps its own journal and console logs (core/daemon/backend-state.ts): a
// spec journaled on the simulation must never be recreated by the native daemon on real
// hardware. A journal shared by earlier versions (STATE/vms) is adopted by the sim daemon
// alone; a planted link there is never followed nor adopted.

import {
  existsSync,
  lstatSync,
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
import { backendState } from '../../../src/core/daemon/backend-state.js'
import { DaemonUnreachableError } from '../../../src/core/errors.js'

const root = mkdtempSync(join(tmpdir(), 'hsmctl-backend-state-'))
let n = 0
afterAll(() => rmSync(root, { recursive: true, force: true }))

/** A state dir holding a shared journal of earlier versions (one spec, one console log). */
function legacy() {
  const state = join(root, `case-${n++}`)
  mkdirSync(join(state, 'vms'), { recursive: true, mode: 0o700 })
  mkdirSync(join(state, 'consoles'), { mode: 0o700 })
  writeFileSync(join(state, 'vms', 'old.json'), '{"name":"old"}')
  writeFileSync(join(state, 'consoles', 'old.log'), 'hello\n')
  const lines: string[] = []
  return { state, env: { HSMCTL_STATE_DIR: state }, lines, log: (l: string) => lines.push(l) }
}

describe("a backend's state directory", () => {
  it('is STATE/BACKEND, created 0700', () => {
    const { state, env } = legacy()
    expect(backendState('sim', env, undefined)).toBe(join(state, 'sim'))
    expect(statSync(join(state, 'sim')).mode & 0o777).toBe(0o700)
    expect(backendState('native', env, undefined)).toBe(join(state, 'native'))
  })

  it('the native daemon leaves a shared journal of earlier versions unread, and says so', () => {
    const { state, env, lines, log } = legacy()
    backendState('native', env, log)
    expect(existsSync(join(state, 'native', 'vms'))).toBe(false)
    expect(readdirSync(join(state, 'vms'))).toEqual(['old.json'])
    expect(lines.join('\n')).toContain(`${join(state, 'vms')} is the journal shared`)
  })

  it('the sim daemon adopts it: specs and console logs move to STATE/sim', () => {
    const { state, env, lines, log } = legacy()
    backendState('sim', env, log)
    expect(readdirSync(join(state, 'sim', 'vms'))).toEqual(['old.json'])
    expect(readdirSync(join(state, 'sim', 'consoles'))).toEqual(['old.log'])
    expect(existsSync(join(state, 'vms'))).toBe(false)
    expect(lines.filter((l) => l.startsWith('adopted'))).toHaveLength(2)
    // once adopted, a later start changes nothing
    backendState('sim', env, log)
    expect(readdirSync(join(state, 'sim', 'vms'))).toEqual(['old.json'])
  })

  it('the sim daemon does not merge a shared journal into its own', () => {
    const { state, env, lines, log } = legacy()
    mkdirSync(join(state, 'sim', 'vms'), { recursive: true, mode: 0o700 })
    backendState('sim', env, log)
    expect(readdirSync(join(state, 'sim', 'vms'))).toEqual([])
    expect(readdirSync(join(state, 'vms'))).toEqual(['old.json'])
    expect(lines.join('\n')).toContain(`${join(state, 'vms')} left as it is`)
  })

  it('a link planted as the shared journal is not adopted, nor followed', () => {
    const state = join(root, `case-${n++}`)
    const victim = join(root, `victim-${n}`)
    mkdirSync(victim)
    writeFileSync(join(victim, 'x.json'), '{}')
    mkdirSync(state, { mode: 0o700 })
    symlinkSync(victim, join(state, 'vms'))
    backendState('sim', { HSMCTL_STATE_DIR: state }, undefined)
    expect(lstatSync(join(state, 'vms')).isSymbolicLink()).toBe(true)
    expect(existsSync(join(state, 'sim', 'vms'))).toBe(false)
  })

  it("a link planted as the backend's directory is refused (exit 5's error), not followed", () => {
    const state = join(root, `case-${n++}`)
    const victim = join(root, `victim-${n}`)
    mkdirSync(victim)
    mkdirSync(state, { mode: 0o700 })
    symlinkSync(victim, join(state, 'sim'))
    expect(() => backendState('sim', { HSMCTL_STATE_DIR: state }, undefined)).toThrow(
      DaemonUnreachableError,
    )
    expect(readdirSync(victim)).toEqual([])
  })
})
