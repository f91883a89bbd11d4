// Journaled VMs are usable by name after the daemon restarts (issue 13, item 16): `vm
// apply NAME` and `vm start NAME` recreate one from its journal, `vm apply --all` every
// one, `vm apply -f -` reads a spec on stdin, and `vm autostart NAME` marks a VM for hsmd
// to recreate when it starts (as virsh autostart).

import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { hsmctl } from '../support/cli.js'
import { expectError, hsmdSession, type Json } from '../support/hsmd-session.js'

const s = hsmdSession('journal-recreate')
const vms = join(s.dir, 'state', 'sim', 'vms')
const ok = (...args: string[]) => {
  const r = s.run(...args)
  expect(r.code, `hsmctl ${args.join(' ')}: ${r.stderr}`).toBe(0)
  return r
}
const row = (name: string) => s.vms().find((v: Json) => v.name === name)
const restart = () => {
  ok('daemon', 'stop')
  ok('daemon', 'start')
}

describe('journaled VMs by name', () => {
  const before: Record<string, Json> = {}

  it('set-up: three VMs, then a daemon restart leaves them journaled', () => {
    ok('vm', 'create', 'alpha', '--vcpus', '1', '--memory', '2M')
    ok('ioeventfd', 'add', 'alpha', '--addr', '0xfe000000', '--len', '4')
    ok('vm', 'start', 'alpha')
    ok('vm', 'create', 'beta', '--vcpus', '1')
    ok('irqfd', 'add', 'beta', '--msi-addr', '0xfee01000', '--msi-data', '0x41')
    ok('vm', 'create', 'gamma', '--vcpus', '1')
    for (const name of ['alpha', 'beta', 'gamma']) before[name] = s.json('vm', 'dump', name)
    restart()
    expect(s.vms().map((v: Json) => [v.name, v.state])).toEqual([
      ['alpha', 'journaled'],
      ['beta', 'journaled'],
      ['gamma', 'journaled'],
    ])
  })

  it('vm apply NAME recreates a VM from its journal, as it was', () => {
    const r = ok('vm', 'apply', 'alpha')
    expect(r.stdout).toMatch(/^alpha\s+vmid \d+\s+running/m)
    expect(row('alpha')).toMatchObject({ state: 'running', owner: 'hsmd' })
    expect(s.json('vm', 'dump', 'alpha')).toEqual(before.alpha)
    // once running, another apply of the name is a conflict
    expectError(s.run('vm', 'apply', 'alpha'), 4, "a VM named 'alpha' already exists")
  })

  it('vm start NAME on a journaled VM recreates it and starts it', () => {
    const r = ok('vm', 'start', 'beta')
    expect(r.stderr).toContain(`recreated beta from its journal`)
    expect(row('beta')).toMatchObject({ state: 'running', owner: 'hsmd' })
    expect(s.json('vm', 'dump', 'beta')).toEqual({ ...before.beta, state: 'running' })
  })

  it('vm apply NAME of a name nothing journals is not found, and NAME with -f is a usage error', () => {
    expectError(s.run('vm', 'apply', 'nosuch'), 3, "nothing is journaled as 'nosuch'")
    expectError(s.run('vm', 'apply'), 2, 'give NAME, --file or --all')
    expectError(s.run('vm', 'apply', 'gamma', '-f', 'x.yaml'), 2, 'give NAME, --file or --all')
    expectError(s.run('vm', 'apply', 'gamma', '--all'), 2, 'give NAME, --file or --all')
  })

  it('vm apply --all recreates every journaled VM, each said on a line', () => {
    ok('daemon', 'stop')
    const r = ok('vm', 'apply', '--all')
    expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual([
      'recreated alpha (running)',
      'recreated beta (running)',
      'recreated gamma (created)',
    ])
    expect(s.vms().map((v: Json) => [v.name, v.owner])).toEqual([
      ['alpha', 'hsmd'],
      ['beta', 'hsmd'],
      ['gamma', 'hsmd'],
    ])
    // nothing left to recreate: not an error
    expect(ok('vm', 'apply', '--all').stdout).toMatch(/^no journaled VMs to recreate$/m)
  })

  it('vm apply --all goes on past an entry it cannot use, and exits with its code', () => {
    ok('daemon', 'stop')
    writeFileSync(join(vms, 'broken.json'), '{"name": "broken", ')
    const r = s.run('vm', 'apply', '--all', '--json')
    expect(r.code).toBe(3)
    const out = JSON.parse(r.stdout)
    expect(out.map((x: Json) => [x.name, x.ok])).toEqual([
      ['alpha', true],
      ['beta', true],
      ['broken', false],
      ['gamma', true],
    ])
    expect(out[2].error).toMatch(/corrupt: it is not valid JSON/)
    ok('vm', 'forget', 'broken', '--yes')
  })

  it('vm apply -f - reads the spec on stdin', () => {
    const spec = 'name: delta\nvcpus: 1\nmemory:\n  - { gpa: 0, size: 1M }\nstate: created\n'
    const r = hsmctl(['vm', 'apply', '-f', '-'], s.env, spec)
    expect(r.code, r.stderr).toBe(0)
    expect(row('delta')).toMatchObject({ state: 'created', memory: '0x100000' })
    const bad = hsmctl(['vm', 'apply', '-f', '-'], s.env, 'name: [')
    expectError(bad, 2, /^Error: stdin: not valid YAML or JSON/m)
  })
})

describe('vm autostart', () => {
  it('marks a VM that hsmd recreates when it starts; --disable takes the mark away', () => {
    expect(ok('vm', 'autostart', 'alpha').stdout).toMatch(
      /^alpha will be recreated when hsmd starts/m,
    )
    expect(s.json('vm', 'autostart', 'gamma')).toEqual({ name: 'gamma', autostart: true })
    expect(row('alpha')).toMatchObject({ autostart: true })
    expect(row('beta').autostart).toBeUndefined()
    expect(ok('vm', 'list').stdout).toMatch(
      /^Autostart \(recreated when hsmd starts\): alpha, gamma$/m,
    )
    // the mark survives the VM's own changes, which rewrite its journal entry
    ok('vm', 'pause', 'alpha')
    expect(JSON.parse(readFileSync(join(vms, 'alpha.json'), 'utf8'))).toMatchObject({
      autostart: true,
      state: 'paused',
    })
    restart()
    expect(s.vms().map((v: Json) => [v.name, v.state, v.owner])).toEqual([
      ['alpha', 'paused', 'hsmd'],
      ['beta', 'journaled', 'journal'],
      ['delta', 'journaled', 'journal'],
      ['gamma', 'created', 'hsmd'],
    ])
    const log = readFileSync(join(s.dir, 'state', 'hsmd-sim.log'), 'utf8')
    expect(log).toMatch(/autostart: recreated alpha \(paused\)/)
    // off again, on a VM that is only journaled too
    expect(ok('vm', 'autostart', 'gamma', '--disable').stdout).toMatch(
      /^gamma will not be recreated when hsmd starts/m,
    )
    ok('vm', 'autostart', 'delta')
    ok('vm', 'autostart', 'delta', '--disable')
    expect(JSON.parse(readFileSync(join(vms, 'delta.json'), 'utf8')).autostart).toBeUndefined()
    expectError(s.run('vm', 'autostart', 'nosuch'), 3, "no VM named 'nosuch'")
  })

  it('an autostart that fails is logged and leaves the entry journaled', () => {
    const payload = join(s.dir, 'payload.bin')
    writeFileSync(payload, 'x')
    const spec = join(s.dir, 'eps.yaml')
    writeFileSync(spec, `name: eps\nmemory:\n  - { gpa: 0, size: 1M, file: payload.bin }\n`)
    ok('vm', 'apply', '-f', spec)
    ok('vm', 'autostart', 'eps')
    ok('daemon', 'stop')
    rmSync(payload) // gone when hsmd starts again
    ok('daemon', 'start')
    expect(row('eps')).toMatchObject({ state: 'journaled', autostart: true })
    const log = readFileSync(join(s.dir, 'state', 'hsmd-sim.log'), 'utf8')
    expect(log).toMatch(/autostart: eps could not be recreated: .*payload\.bin/)
    expect(existsSync(join(vms, 'eps.json'))).toBe(true)
  })
})
