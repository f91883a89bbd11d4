// The daemon journals each VM's spec atomically: killed with SIGKILL at any point, it
// leaves a journal that describes every VM, a new daemon lists them as journaled, and
// `vm apply` of the dumped spec recreates them.

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { hsmctl } from '../support/cli.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-journal-'))
const env = { HSMCTL_RUNTIME_DIR: join(dir, 'run'), HSMCTL_STATE_DIR: join(dir, 'state') }
const run = (...args: string[]) => {
  const r = hsmctl(args, env)
  if (r.code !== 0) throw new Error(`hsmctl ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  return r
}
const json = (...args: string[]) => JSON.parse(run(...args, '--json').stdout)

afterAll(() => {
  hsmctl(['daemon', 'stop'], env)
  rmSync(dir, { recursive: true, force: true })
})

describe('journal survives SIGKILL', () => {
  it('describes every VM after the daemon is killed mid-way, and vm apply recreates them', () => {
    const { pid } = json('daemon', 'start')
    run('vm', 'create', 'alpha', '--vcpus', '1', '--memory', '2M')
    run('ioeventfd', 'add', 'alpha', '--addr', '0xfe000000', '--len', '4', '--datamatch', '0x5')
    run('vm', 'start', 'alpha')
    run('vm', 'create', 'beta', '--vcpus', '2')
    run('memseg', 'set', 'beta', '--gpa', '0x100000', '--size', '1M')
    run('irqfd', 'add', 'beta', '--msi-addr', '0xfee01000', '--msi-data', '0x41')
    const before = { alpha: json('vm', 'dump', 'alpha'), beta: json('vm', 'dump', 'beta') }

    process.kill(pid, 'SIGKILL')

    // the journal on disk, read directly: one complete file per VM, no temp files left
    const files = readdirSync(join(dir, 'state', 'sim', 'vms')).sort()
    expect(files).toEqual(['alpha.json', 'beta.json'])
    for (const name of ['alpha', 'beta'] as const) {
      expect(
        JSON.parse(readFileSync(join(dir, 'state', 'sim', 'vms', `${name}.json`), 'utf8')),
      ).toEqual(before[name])
    }
    expect(before.alpha).toMatchObject({
      name: 'alpha',
      vcpus: 1,
      state: 'running',
      ioeventfds: [{ addr: '0xfe000000', len: 4, datamatch: '0x5' }],
    })
    expect(before.beta).toMatchObject({
      name: 'beta',
      vcpus: 2,
      state: 'created',
      irqfds: [{ msiAddr: '0xfee01000', msiData: '0x41' }],
    })

    // a new daemon (started on demand, over the stale socket) knows what existed
    const list = json('vm', 'list')
    expect(
      list.map((v: { name: string; state: string; owner: string }) => [v.name, v.state, v.owner]),
    ).toEqual([
      ['alpha', 'journaled', 'journal'],
      ['beta', 'journaled', 'journal'],
    ])
    expect(json('vm', 'dump', 'alpha')).toEqual(before.alpha)

    // and recreates a VM from its dumped spec
    const spec = join(dir, 'alpha.yaml')
    writeFileSync(spec, run('vm', 'dump', 'alpha').stdout)
    run('vm', 'apply', '-f', spec)
    const again = json('vm', 'list').find((v: { name: string }) => v.name === 'alpha')
    expect(again).toMatchObject({ state: 'running', owner: 'hsmd', vcpus: 1, memory: '0x200000' })
    expect(json('vm', 'dump', 'alpha')).toEqual(before.alpha)
  })

  it('daemon stop destroys the VMs but keeps their specs', () => {
    run('daemon', 'stop')
    expect(readdirSync(join(dir, 'state', 'sim', 'vms')).sort()).toEqual([
      'alpha.json',
      'beta.json',
    ])
    const list = json('vm', 'list')
    expect(list.every((v: { state: string }) => v.state === 'journaled')).toBe(true)
  })
})
