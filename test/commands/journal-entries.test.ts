// Journal entries hsmd cannot use (issue 13, items 3 and 6): a FIFO (which hung hsmd), a
// link, an empty, truncated, garbled or wrong-typed file, a spec naming another VM. Each
// is listed as `corrupt` with the reason (table and --json), said in the daemon log, and
// can be forgotten (`vm forget`, or `vm destroy` of a VM that is only journaled); no hint
// sends the user round in a circle.

import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { expectError, hsmdSession, type Json } from '../support/hsmd-session.js'

// planted before the daemon starts: the first command below starts it on demand
const s = hsmdSession('journal-entries', { start: false })
const vms = join(s.dir, 'state', 'sim', 'vms')
const entry = (name: string) => join(vms, `${name}.json`)
const GOOD = { name: 'good', vcpus: 1, state: 'created' }
const PRECIOUS = 'root-owned data that must survive\n'

beforeAll(() => {
  mkdirSync(vms, { recursive: true, mode: 0o700 })
  execFileSync('mkfifo', [entry('stuck')])
  writeFileSync(join(s.dir, 'precious'), PRECIOUS)
  symlinkSync(join(s.dir, 'precious'), entry('linked'))
  writeFileSync(entry('empty'), '')
  writeFileSync(entry('truncated'), JSON.stringify({ ...GOOD, name: 'truncated' }).slice(0, 20))
  writeFileSync(entry('garbage'), '\u0000\u0001 not json at all')
  writeFileSync(entry('wrongtype'), JSON.stringify({ name: 'wrongtype', vcpus: 'many' }))
  writeFileSync(entry('renamed'), JSON.stringify({ ...GOOD, name: 'someone' }))
  writeFileSync(entry('good'), JSON.stringify(GOOD))
  // as hsmd killed during `vm apply` leaves it (item 5): the spec as asked, marked
  const half = { name: 'half', vcpus: 1, irqfds: [{ msiAddr: '0xfee01000', msiData: '0x41' }] }
  writeFileSync(entry('half'), JSON.stringify({ ...half, state: 'created', incomplete: true }))
})

const CORRUPT: Record<string, RegExp> = {
  stuck: /^it is a FIFO, not a regular file$/,
  linked: /^it is a symbolic link to .*precious, not a regular file$/,
  empty: /^it is empty$/,
  truncated: /^it is not valid JSON .*truncated or garbled$/,
  garbage: /^it is not valid JSON .*truncated or garbled$/,
  wrongtype: /^vcpus: /,
  renamed: /^it holds the spec of a VM named 'someone', not 'renamed'$/,
}

describe('journal entries hsmd cannot use', () => {
  it('do not hang hsmd: vm list and daemon status answer (a FIFO among them)', () => {
    const list = s.run('vm', 'list')
    expect(list.code, list.stderr).toBe(0)
    expect(s.run('daemon', 'status').code).toBe(0)
  })

  it('are listed as corrupt with the reason, in --json and in the table', () => {
    const rows: Json[] = s.json('vm', 'list')
    const byName = new Map(rows.map((r) => [r.name, r]))
    for (const [name, reason] of Object.entries(CORRUPT)) {
      const row = byName.get(name)
      expect(row, name).toMatchObject({ state: 'corrupt', owner: 'journal', vmid: null })
      expect(row.problem, name).toMatch(reason)
    }
    expect(byName.get('good')).toMatchObject({ state: 'journaled' })
    expect(byName.get('good').problem).toBeUndefined()
    const table = s.run('vm', 'list').stdout
    expect(table).toMatch(/^stuck\s+-\s+corrupt\b/m)
    expect(table).toContain('stuck: it is a FIFO, not a regular file')
    expect(table).toContain("renamed: it holds the spec of a VM named 'someone', not 'renamed'")
    expect(table).toMatch(/hsmctl vm forget NAME/)
  })

  it('are said in the daemon log, once each', () => {
    const log = readFileSync(join(s.dir, 'state', 'hsmd-sim.log'), 'utf8')
    for (const name of Object.keys(CORRUPT)) {
      const lines = log.split('\n').filter((l) => l.includes(`journal: ${entry(name)}: `))
      expect(lines, name).toHaveLength(1)
      expect(lines[0]).toContain(`hsmctl vm forget ${name}`)
    }
    expect(readFileSync(join(s.dir, 'precious'), 'utf8')).toBe(PRECIOUS)
  })

  it('an entry hsmd was applying when it stopped is listed incomplete, and vm apply makes it whole', () => {
    const row = s.vms().find((v: Json) => v.name === 'half')
    expect(row).toMatchObject({ state: 'incomplete', owner: 'journal', vcpus: 1 })
    expect(row.problem).toMatch(/hsmd stopped while applying this spec/)
    expect(s.run('vm', 'list').stdout).toMatch(/^half\s+-\s+incomplete\b/m)
    expect(s.run('vm', 'list').stdout).toContain('hsmctl vm apply NAME')
    expect(s.run('vm', 'apply', 'half').code).toBe(0)
    expect(s.vms().find((v: Json) => v.name === 'half')).toMatchObject({
      state: 'created',
      owner: 'hsmd',
    })
    expect(s.json('irqfd', 'list', 'half')).toHaveLength(1)
    expect(JSON.parse(readFileSync(entry('half'), 'utf8')).incomplete).toBeUndefined()
  })

  it('vm dump and vm show say what is wrong, with a hint that leads somewhere', () => {
    const dump = s.run('vm', 'dump', 'truncated')
    expectError(
      dump,
      3,
      `no VM named 'truncated' runs in hsmd; its journal entry ${entry('truncated')} is corrupt: it is not valid JSON`,
      'hsmctl vm forget truncated',
    )
    expect(dump.stderr).not.toMatch(/vm dump/)
    const show = s.run('vm', 'show', 'good')
    expectError(show, 3, `no VM named 'good' runs in hsmd; it is journaled`, 'hsmctl vm apply good')
    expect(show.stderr).not.toMatch(/vm dump/)
    expectError(s.run('vm', 'show', 'nothing'), 3, "no VM named 'nothing'", 'hsmctl vm list')
  })

  it('vm forget removes an entry, corrupt or not; vm destroy of a journaled-only VM too', () => {
    const forget = s.run('vm', 'forget', 'stuck', '--yes')
    expect(forget.code, forget.stderr).toBe(0)
    expect(forget.stdout).toMatch(/^forgot stuck \(its journal entry was corrupt\)$/m)
    expect(existsSync(entry('stuck'))).toBe(false)
    const forgetLink = s.json('vm', 'forget', 'linked', '--yes')
    expect(forgetLink).toMatchObject({ name: 'linked', state: 'corrupt' })
    expect(existsSync(entry('linked'))).toBe(false)
    expect(readFileSync(join(s.dir, 'precious'), 'utf8')).toBe(PRECIOUS)
    const destroy = s.run('vm', 'destroy', 'good', '--yes')
    expect(destroy.code, destroy.stderr).toBe(0)
    expect(destroy.stdout).toMatch(/^forgot good \(it was only journaled\)$/m)
    expect(existsSync(entry('good'))).toBe(false)
    const names = s.vms().map((v: Json) => v.name)
    expect(names).not.toContain('stuck')
    expect(names).not.toContain('good')
    expect(names).toContain('empty')
  })

  it('vm forget refuses what is not journaled, and a VM that runs', () => {
    expectError(s.run('vm', 'forget', 'nothing', '--yes'), 3, "nothing is journaled as 'nothing'")
    expect(s.run('vm', 'create', 'alive', '--vcpus', '1').code).toBe(0)
    expectError(
      s.run('vm', 'forget', 'alive', '--yes'),
      4,
      "'alive' runs in hsmd",
      'hsmctl vm destroy alive',
    )
    expect(existsSync(entry('alive'))).toBe(true)
    expectError(s.run('vm', 'forget', 'empty'), 2, '--yes is required')
    expect(existsSync(entry('empty'))).toBe(true)
  })

  it('an entry fixed or removed by hand is seen without restarting hsmd', () => {
    writeFileSync(entry('empty'), JSON.stringify({ ...GOOD, name: 'empty' }))
    expect(s.vms().find((v: Json) => v.name === 'empty')).toMatchObject({ state: 'journaled' })
    execFileSync('rm', [entry('garbage')])
    expect(s.vms().map((v: Json) => v.name)).not.toContain('garbage')
  })
})
