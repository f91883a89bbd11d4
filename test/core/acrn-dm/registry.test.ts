// acrnctl's launch-script registry (src/core/acrn-dm/registry.ts): NAME.sh and NAME.args in
// acrnctl's format, an entry added or deleted whole, names and arguments checked first.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { registerLaunchScript } from '../../../src/core/acrn-dm/launch-script.js'
import {
  addToRegistry,
  checkVmName,
  listRegistry,
  removeFromRegistry,
} from '../../../src/core/acrn-dm/registry.js'

let dir: string
let conf: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hsmctl-registry-'))
  conf = join(dir, 'conf', 'add')
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

const SCRIPT = Buffer.from('#!/bin/bash\nacrn-dm -m 128M --cpu_affinity 1 ${1:-vmx}\n')

describe('adding a launch script', () => {
  it('writes NAME.sh verbatim and NAME.args as one line, as acrnctl add does', () => {
    const added = registerLaunchScript({
      confDir: conf,
      source: '/x.sh',
      text: SCRIPT,
      args: ['vm1'],
    })
    expect(added).toMatchObject({ name: 'vm1', args: ['vm1'], nameFrom: { line: 2 } })
    expect(readFileSync(join(conf, 'vm1.sh'))).toEqual(SCRIPT)
    expect(readFileSync(join(conf, 'vm1.args'), 'utf8')).toBe('vm1\n')
    expect(listRegistry(conf)).toEqual([
      { name: 'vm1', script: join(conf, 'vm1.sh'), args: ['vm1'] },
    ])
    // nothing else is left in the directory (no temporary files)
    expect(readdirSync(conf).sort()).toEqual(['vm1.args', 'vm1.sh'])
  })

  it('refuses a name registered already (exit 4), leaving the first entry as it was', () => {
    registerLaunchScript({ confDir: conf, source: '/x.sh', text: SCRIPT, args: ['vm1'] })
    const again = Buffer.from('acrn-dm -m 256M vm1\n')
    expect(() =>
      registerLaunchScript({ confDir: conf, source: '/y.sh', text: again, args: [] }),
    ).toThrow(
      expect.objectContaining({
        exitCode: 4,
        message: expect.stringMatching(/'vm1' is registered already/),
      }),
    )
    expect(readFileSync(join(conf, 'vm1.sh'))).toEqual(SCRIPT)
  })

  it('refuses a name taken by a running VM elsewhere', () => {
    expect(() =>
      registerLaunchScript({
        confDir: conf,
        source: '/x.sh',
        text: SCRIPT,
        args: [],
        taken: () => 'acrn-dm pid 9 runs it',
      }),
    ).toThrow(/a VM named 'vmx' exists already: acrn-dm pid 9 runs it/)
    expect(listRegistry(conf)).toEqual([])
  })

  it('asks for --name when the name cannot be read, and checks a given one against the script', () => {
    const unreadable = Buffer.from('acrn-dm -m 1G $(cat /etc/vmname)\n')
    expect(() =>
      registerLaunchScript({ confDir: conf, source: '/u.sh', text: unreadable, args: [] }),
    ).toThrow(expect.objectContaining({ exitCode: 2, hint: expect.stringMatching(/--name NAME/) }))
    expect(
      registerLaunchScript({
        confDir: conf,
        source: '/u.sh',
        text: unreadable,
        args: [],
        name: 'given',
      }),
    ).toMatchObject({ name: 'given', nameFrom: 'given' })
    expect(() =>
      registerLaunchScript({
        confDir: conf,
        source: '/x.sh',
        text: SCRIPT,
        args: [],
        name: 'other',
      }),
    ).toThrow(/names its VM 'vmx' \(line 2\), not 'other'/)
  })

  it.each([
    ['a blank', ['a b']],
    ['a glob character', ['vm*']],
    ['an empty argument', ['']],
  ])('refuses an argument with %s, which NAME.args cannot keep', (_what, args) => {
    expect(() =>
      registerLaunchScript({ confDir: conf, source: '/x.sh', text: SCRIPT, args }),
    ).toThrow(expect.objectContaining({ exitCode: 2 }))
    expect(listRegistry(conf)).toEqual([])
  })

  it.each([
    ['a name of 16 bytes', 'abcdefghijklmnop', /16 bytes; acrn-dm keeps at most 15/],
    ['a leading digit', '1vm', /start with a letter/],
    ['a dot, which would end it in the socket name', 'vm.1', /a dot would end the name/],
    ['a name acrnctl reserves', 'help', /acrnctl reserves it/],
  ])('refuses %s', (_what, name, message) => {
    expect(() => checkVmName(name)).toThrow(message)
  })
})

describe('listing', () => {
  it('lists exact NAME.sh entries only, their args when NAME.args exists', () => {
    mkdirSync(conf, { recursive: true })
    writeFileSync(join(conf, 'a.sh'), 'acrn-dm a\n')
    writeFileSync(join(conf, 'a.args'), ' x  y\n')
    writeFileSync(join(conf, 'b.sh'), 'acrn-dm b\n')
    writeFileSync(join(conf, 'b.sh.back'), '') // acrnctl add's leftover: not a VM here
    mkdirSync(join(conf, 'c.sh')) // not a file
    expect(listRegistry(conf)).toEqual([
      { name: 'a', script: join(conf, 'a.sh'), args: ['x', 'y'] },
      { name: 'b', script: join(conf, 'b.sh'), args: undefined },
    ])
  })

  it('is empty when the directory does not exist', () => {
    expect(listRegistry(join(dir, 'nowhere'))).toEqual([])
  })
})

describe('deleting', () => {
  it('removes both files', () => {
    addToRegistry(conf, { name: 'vm1', script: SCRIPT, args: [] })
    expect(removeFromRegistry(conf, 'vm1').removed).toEqual([
      join(conf, 'vm1.sh'),
      join(conf, 'vm1.args'),
    ])
    expect(readdirSync(conf)).toEqual([])
  })

  it('deletes nothing when one of them is not a regular file', () => {
    addToRegistry(conf, { name: 'vm1', script: SCRIPT, args: [] })
    rmSync(join(conf, 'vm1.args'))
    mkdirSync(join(conf, 'vm1.args'))
    expect(() => removeFromRegistry(conf, 'vm1')).toThrow(
      expect.objectContaining({
        exitCode: 6,
        message: expect.stringMatching(/vm1\.args is not a regular file; nothing was deleted/),
      }),
    )
    expect(readdirSync(conf).sort()).toEqual(['vm1.args', 'vm1.sh'])
  })

  it('says there is no such registration (exit 3)', () => {
    expect(() => removeFromRegistry(conf, 'nope')).toThrow(expect.objectContaining({ exitCode: 3 }))
  })
})
