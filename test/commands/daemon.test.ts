// `hsmctl daemon start|status|stop|run` as a user runs them, in temp runtime/state dirs.

import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { hsmctl } from '../support/cli.js'
import { expectError } from '../support/hsmd-session.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-cli-daemon-'))
const env = { HSMCTL_RUNTIME_DIR: join(dir, 'run'), HSMCTL_STATE_DIR: join(dir, 'state') }
const run = (...args: string[]) => hsmctl(args, env)

afterAll(() => {
  run('daemon', 'stop')
  rmSync(dir, { recursive: true, force: true })
})

describe('hsmctl daemon', () => {
  // issue 13 item 21: exit 3 when hsmd is not running, as `systemctl status` does
  it('status says not running before anything started it, and exits 3', () => {
    const text = run('daemon', 'status')
    expect(text.code).toBe(3)
    expect(text.stdout).toBe(
      `hsmd (sim): not running (socket ${join(dir, 'run', 'hsmd-sim.sock')})\n`,
    )
    expect(text.stderr).toBe('')
    const script = join(dir, 'status.hsm')
    writeFileSync(script, 'daemon status\n')
    expect(run('shell', '-f', script).code).toBe(3) // the same status in the shell
    const r = run('daemon', 'status', '--json')
    expect(r.code).toBe(3)
    expect(JSON.parse(r.stdout)).toEqual({
      running: false,
      backend: 'sim',
      socket: join(dir, 'run', 'hsmd-sim.sock'),
    })
  })

  it('start starts it once and says so on stderr; a second start finds it running', () => {
    const first = run('daemon', 'start', '--json')
    expect(first.code).toBe(0)
    expect(first.stderr).toMatch(/^started hsmd \(sim\) pid \d+ on /m)
    const status = JSON.parse(first.stdout)
    expect(status).toMatchObject({ backend: 'sim', socket: join(dir, 'run', 'hsmd-sim.sock') })
    const second = run('daemon', 'start')
    expect(second.stderr).toMatch(new RegExp(`already running, pid ${status.pid}`))
    expect(statSync(status.socket).mode & 0o777).toBe(0o600)
    expect(statSync(join(dir, 'run')).mode & 0o777).toBe(0o700)
  })

  it('status shows the running daemon', () => {
    const r = run('daemon', 'status', '--json')
    expect(JSON.parse(r.stdout)).toMatchObject({
      running: true,
      backend: 'sim',
      version: expect.any(String),
    })
    expect(run('daemon', 'status').stdout).toMatch(/^hsmd \(sim\): running$/m)
  })

  it('stop stops it, and stopping again is not an error', () => {
    const r = run('daemon', 'stop', '--json')
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ wasRunning: true, pid: expect.any(Number) })
    const after = run('daemon', 'status', '--json')
    expect([after.code, JSON.parse(after.stdout).running]).toEqual([3, false])
    const again = run('daemon', 'stop')
    expect(again.code).toBe(0)
    expect(again.stderr).toMatch(/not running/)
  })

  it('the native backend without the device says what is missing (exit 5)', () => {
    const r = run('daemon', 'run', '--backend', 'native', '--device', join(dir, 'no-such-acrn_hsm'))
    expect(r.code).toBe(5)
    expect(r.stderr).toMatch(/no-such-acrn_hsm does not exist/)
    expect(r.stderr).toMatch(/Is this the ACRN Service VM\?/)
  })

  // issue 13 item 13: the starting command prints hsmd's own error, not "see the log"
  it.each([
    ['daemon start', ['daemon', 'start']],
    ['host devices', ['host', 'devices']],
  ])('%s on the native backend prints the daemon’s own error and hint (exit 5)', (_, args) => {
    const device = join(dir, 'no-such-acrn_hsm')
    const r = hsmctl([...args, '--backend', 'native'], { ...env, HSMCTL_DEVICE: device })
    expectError(
      r,
      5,
      `${device} does not exist`,
      /Is this the ACRN Service VM\?.*use the simulation: --backend sim/,
    )
    expect(r.stderr).not.toMatch(/exited with status|see .*\.log/)
  })

  it('daemon start prints the error of a daemon its flags stop from starting (exit 2)', () => {
    const r = run('daemon', 'start', '--device', join(dir, 'acrn_hsm'))
    expectError(r, 2, /^Error: --device: names the real HSM device; it needs --backend native$/m)
    expect(r.stderr).not.toMatch(/exited with status/)
  })

  it('an unknown backend is a usage error (exit 2)', () => {
    const r = run('daemon', 'status', '--backend', 'kvm')
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--backend/)
  })
})
