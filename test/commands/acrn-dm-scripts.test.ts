// Launch scripts without acrn-dm (issue 12, item 2): the registry and the supervisor of
// `vm start` with scripts that fail, hang or name their VM otherwise, in a registry and a
// socket directory of the test's own (HSMCTL_ACRN_CONF_DIR, HSMCTL_ACRN_MNGR_DIR), so
// they need neither root nor acrn-dm. test/commands/acrn-dm-vms.test.ts runs the real one.

import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { hsmctl } from '../support/cli.js'
import { expectError, hsmdSession, type Json } from '../support/hsmd-session.js'

const s = hsmdSession('acrn-scripts')
const conf = join(s.dir, 'conf', 'add')
const mngr = join(s.dir, 'mngr')
const env = { ...s.env, HSMCTL_ACRN_CONF_DIR: conf, HSMCTL_ACRN_MNGR_DIR: mngr }
/** hsmctl ARGS, its progress notices (`hsmctl: hsmd serves its simulation ...`) left out. */
const run = (...args: string[]) => {
  const r = hsmctl(args, env)
  return { ...r, stderr: r.stderr.replace(/^(hsmctl: .*\n)+/, '') }
}
const json = (...args: string[]): Json => {
  // --json is hsmctl's only before a `--` (after it, the words are the script's)
  const end = args.indexOf('--')
  const r = run(
    ...(end < 0 ? [...args, '--json'] : [...args.slice(0, end), '--json', ...args.slice(end)]),
  )
  expect(r.code, `hsmctl ${args.join(' ')}: ${r.stderr}`).toBe(0)
  return JSON.parse(r.stdout)
}
const groups: number[] = []
afterAll(() => {
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL')
    } catch {
      // gone
    }
  }
})

/** A launch script whose acrn-dm line is never reached: BODY runs first. */
function script(file: string, body: string): string {
  const path = join(s.dir, file)
  mkdirSync(s.dir, { recursive: true })
  writeFileSync(
    path,
    `#!/bin/bash\n${body}\n/usr/bin/acrn-dm -m 512M --cpu_affinity 1,2 \${1:-vmx}\n`,
  )
  return path
}

describe('launch scripts, their registry and vm start’s supervisor', () => {
  it('vm add registers a script; vm list shows it stopped with the RAM and vCPUs it asks for', () => {
    const added = json(
      'vm',
      'add',
      script('fail.sh', 'echo "boom: no such disk" >&2; exit 3'),
      '--',
      'vmfail',
    )
    expect(added).toMatchObject({
      name: 'vmfail',
      script: join(conf, 'vmfail.sh'),
      args: ['vmfail'],
    })
    expect(readdirSync(conf).sort()).toEqual(['vmfail.args', 'vmfail.sh'])
    expect(json('vm', 'list')).toEqual([
      {
        name: 'vmfail',
        vmid: null,
        state: 'stopped',
        vcpus: 2,
        memory: '0x20000000',
        owner: 'script',
        uptimeSeconds: null,
        script: { path: join(conf, 'vmfail.sh'), args: ['vmfail'] },
      },
    ])
    // names are checked before anything is written
    expectError(
      run('vm', 'add', script('long.sh', ''), '--', 'a-name-of-16-chr'),
      2,
      "bad VM name 'a-name-of-16-chr'",
    )
    expectError(run('vm', 'add', join(s.dir, 'none.sh')), 3, 'none.sh does not exist')
    expect(readdirSync(conf).sort()).toEqual(['vmfail.args', 'vmfail.sh'])
  })

  it('vm start of a script that fails says its own last words and its status (exit 6)', () => {
    const r = run('vm', 'start', 'vmfail')
    expectError(
      r,
      6,
      "vmfail's launch script exited with status 3 before its VM was up",
      'hsmctl vm log vmfail',
    )
    expect(r.stderr).toContain('boom: no such disk')
    const log = json('vm', 'log', 'vmfail')
    expect(log).toMatchObject({ name: 'vmfail', exitStatus: 3 })
    expect(log.text).toMatch(
      /^hsmctl: starting vmfail at .*\nboom: no such disk\nhsmctl: .*vmfail\.sh exited with status 3 at /,
    )
    expect(json('vm', 'show', 'vmfail')).toMatchObject({
      owner: 'script',
      state: 'stopped',
      log: { path: join(s.env.HSMCTL_STATE_DIR!, 'acrn-dm', 'vmfail.log'), lastExitStatus: 3 },
    })
    // the next run keeps this one as vmfail.log.1
    run('vm', 'start', 'vmfail')
    expect(existsSync(join(s.env.HSMCTL_STATE_DIR!, 'acrn-dm', 'vmfail.log.1'))).toBe(true)
  })

  it('vm start of a script that never brings its VM up gives up after --timeout (exit 7), leaving it', () => {
    json('vm', 'add', script('hang.sh', 'echo waiting; sleep 600'), '--', 'vmhang')
    const r = run('vm', 'start', 'vmhang', '--timeout', '1')
    expectError(
      r,
      7,
      /vmhang is not up after 1 s; its launch script still runs \(process group \d+\), with no acrn-dm monitor socket yet/,
    )
    const pgid = Number(/process group (\d+)/.exec(r.stderr)![1])
    groups.push(pgid)
    // left as it was: still running, in a session of its own
    expect(() => process.kill(-pgid, 0)).not.toThrow()
    expect(json('vm', 'log', 'vmhang').text).toContain('waiting\n')
    process.kill(-pgid, 'SIGTERM')
  })

  it('vm del asks first, then deletes both files; verbs of running VMs say it is not running', () => {
    expectError(
      run('vm', 'stop', 'vmfail'),
      4,
      "'vmfail' is not running: it is a registered launch script",
      'hsmctl vm start vmfail',
    )
    expectError(
      run('vm', 'blkrescan', 'vmfail', `3,${conf}/vmfail.sh`),
      4,
      "'vmfail' is not running",
    )
    expectError(run('vm', 'del', 'vmfail'), 2, '--yes is required when not running interactively')
    expect(readdirSync(conf)).toContain('vmfail.sh')
    expect(json('vm', 'del', 'vmfail', '--yes')).toEqual({
      name: 'vmfail',
      removed: [join(conf, 'vmfail.sh'), join(conf, 'vmfail.args')],
    })
    expectError(run('vm', 'del', 'vmfail', '--yes'), 3, "no VM named 'vmfail'")
    expectError(run('vm', 'stop', 'nosuch'), 3, "no VM named 'nosuch'", 'names are matched exactly')
  })

  it('hsmd’s own VM keeps its verbs, and acrn-dm’s verbs on it say what to do instead', () => {
    expect(run('vm', 'create', 'own', '--memory', '1M').code).toBe(0)
    expectError(
      run('vm', 'stop', 'own'),
      4,
      "'own' is hsmd's own VM",
      'hsmctl vm destroy own --yes',
    )
    expectError(run('vm', 'log', 'own'), 4, "'own' is hsmd's own VM", 'hsmctl vm console own')
    expect(json('vm', 'show', 'own')).toMatchObject({
      name: 'own',
      owner: 'hsmd',
      state: 'created',
    })
    expect(json('vm', 'destroy', 'own', '--yes')).toMatchObject({ name: 'own' })
  })
})
