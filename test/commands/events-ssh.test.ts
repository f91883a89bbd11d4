// `hsmctl events --host ssh://...`: the stream is `events.read` on the daemon socket, so it
// follows another host's hsmd through ssh and `daemon dial-stdio` as every command does,
// and ends with status 0 when that hsmd stops. A real OpenSSH server (scripts/bench/_sshd.js).

import { spawn } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sshdMissing, startSshHosts, type SshTestHosts } from '../../scripts/bench/_sshd.js'
import { hsmctl, RUN_JS } from '../support/cli.js'

const missing = sshdMissing()
if (missing) {
  if (process.env.HSMCTL_CI === '1') throw new Error(`cannot run the ssh tests: ${missing}`)
  console.warn(`\n*** SKIPPED events over --host ssh://: ${missing} ***\n`)
}

const LONG = 240_000 // a hang guard: these machines are shared and busy

describe.skipIf(missing !== undefined)('events --host ssh://', { timeout: LONG }, () => {
  let ssh: SshTestHosts
  beforeAll(async () => {
    ssh = await startSshHosts(1)
  }, LONG)
  afterAll(async () => ssh?.stop(), LONG)

  it('follows the remote hsmd’s changes and ends with status 0 when it stops', async () => {
    const url = ssh.hosts[0]!.url
    const remote = (...args: string[]) => hsmctl([...args, '--host', url], ssh.env)
    expect(remote('daemon', 'start').code).toBe(0)
    const child = spawn(process.execPath, [RUN_JS, 'events', '--json', '--host', url], {
      env: { ...process.env, NODE_ENV: undefined, NO_COLOR: '1', ...ssh.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
    try {
      for (let i = 0; !/following events/.test(err); i++) {
        if (child.exitCode !== null || i > 2400) throw new Error(`no stream: ${err}`)
        await new Promise((r) => setTimeout(r, 25))
      }
      for (const args of [
        ['vm', 'create', 'rev', '--memory', '1M'],
        ['vm', 'start', 'rev'],
      ]) {
        const r = remote(...args)
        expect(r.code, r.stderr).toBe(0)
      }
      const stop = remote('daemon', 'stop')
      expect(stop.code, stop.stderr).toBe(0)
      expect(await exited, err).toBe(0)
    } finally {
      child.kill('SIGKILL')
    }
    const events = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; action: string; vm: string | null })
    expect(events.map((e) => `${e.type} ${e.action} ${e.vm ?? '-'}`)).toEqual([
      'vm created rev',
      'ioreq-client created rev',
      'vm started rev',
      'daemon stopping -',
      'vm paused rev',
      'ioreq-client destroyed rev',
      'vm destroyed rev',
      'daemon stopped -',
    ])
  })
})
