// One hsmd per test file, in temp runtime and state dirs, and the built CLI run inside them
// as a user runs it from a shell: what test/commands/*.test.ts share.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect } from 'vitest'
import { connect } from '../../src/core/daemon/client.js'
import { socketPath } from '../../src/core/daemon/paths.js'
import { hsmctl, type CliResult } from './cli.js'

/** A parsed `--json` document: the tests check its shape themselves. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any

export interface HsmdSession {
  /** The temp dir holding `run/` (HSMCTL_RUNTIME_DIR) and `state/` (HSMCTL_STATE_DIR). */
  dir: string
  env: NodeJS.ProcessEnv
  /** `hsmctl ARGS...`, whatever it exits with. */
  run(...args: string[]): CliResult
  /** `hsmctl ARGS... --json`, which must succeed; its stdout parsed. */
  json(...args: string[]): Json
  /** `vm show NAME --json` without the uptime, to compare before and after a command. */
  vm(name: string): Json
  /** `vm list --json` without the uptimes. */
  vms(): Json
  /**
   * The daemon's view of one VM (vm.show) or of all (vm.list), without uptimes, asked over
   * its socket with no CLI start-up: to check, cheaply, that a failed command changed nothing.
   */
  snapshot(vmName?: string): Promise<Json>
}

/**
 * A session whose daemon `daemon start` starts before the file's tests (unless
 * `start: false`: then the first command starts it on demand) and stops after them.
 */
export function hsmdSession(
  name: string,
  options: { start?: boolean; env?: NodeJS.ProcessEnv } = {},
): HsmdSession {
  const dir = mkdtempSync(join(tmpdir(), `hsmctl-cli-${name}-`))
  const env = {
    ...options.env,
    HSMCTL_RUNTIME_DIR: join(dir, 'run'),
    HSMCTL_STATE_DIR: join(dir, 'state'),
    HSMCTL_BACKEND: 'sim',
  }
  const run = (...args: string[]) => hsmctl(args, env)
  const json = (...args: string[]): Json => {
    const r = run(...args, '--json')
    expect(r.code, `hsmctl ${args.join(' ')} --json: ${r.stderr}`).toBe(0)
    return JSON.parse(r.stdout)
  }
  const withoutUptime = ({ uptimeSeconds: _uptime, ...rest }: Json) => rest
  const snapshot = async (vmName?: string): Promise<Json> => {
    const client = await connect(socketPath('sim', env))
    try {
      return vmName === undefined
        ? ((await client.call('vm.list')) as Json[]).map(withoutUptime)
        : withoutUptime(await client.call('vm.show', { name: vmName }))
    } finally {
      client.close()
    }
  }
  const session: HsmdSession = {
    dir,
    env,
    run,
    json,
    vm: (vmName) => withoutUptime(json('vm', 'show', vmName)),
    vms: () => json('vm', 'list').map(withoutUptime),
    snapshot,
  }
  let pid: number | undefined
  if (options.start !== false) {
    beforeAll(() => {
      const r = run('daemon', 'start', '--json')
      expect(r.code, r.stderr).toBe(0)
      pid = JSON.parse(r.stdout).pid
    })
  }
  afterAll(() => {
    if (pid === undefined) {
      const status = run('daemon', 'status', '--json')
      if (status.code === 0) pid = JSON.parse(status.stdout).pid
    }
    const stop = run('daemon', 'stop')
    // a daemon that cannot answer (a test hung it) must not outlive its test file
    if (stop.code !== 0 && pid !== undefined) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true })
  })
  return session
}

/**
 * A failed command as a user sees it: the exit code, nothing on stdout, and on stderr a
 * first line `Error: ...` containing MESSAGE (a pattern is matched against all of stderr)
 * and, when HINT is given, a `Hint: ...` line containing it.
 */
export function expectError(
  r: CliResult,
  code: number,
  message: string | RegExp,
  hint?: string | RegExp,
): void {
  expect(r.code, r.stderr).toBe(code)
  expect(r.stdout).toBe('')
  const [errorLine = '', ...rest] = r.stderr.split('\n')
  expect(errorLine).toMatch(/^Error: /)
  if (typeof message === 'string') expect(errorLine).toContain(message)
  else expect(r.stderr).toMatch(message)
  if (hint === undefined) return
  const hintLine = rest.find((line) => line.startsWith('Hint: '))
  if (typeof hint === 'string') expect(hintLine, r.stderr).toContain(hint)
  else expect(hintLine, r.stderr).toMatch(hint)
}

/** An HSM refusal (exit 1): `Error: REQUEST failed: ERRNO (meaning)` and the spec's hint. */
export function expectRefusal(
  r: CliResult,
  request: string,
  errno: string,
  hint?: string | RegExp,
) {
  expectError(r, 1, new RegExp(`^Error: ${request} failed: ${errno} \\(`, 'm'), hint)
}
