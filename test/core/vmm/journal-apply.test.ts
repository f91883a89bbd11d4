// What the journal holds while `vm apply` builds a VM (issue 13, item 5). hsmd killed
// mid-apply leaves on disk exactly what is there at that moment, so the apply is held at
// one step (its first irqfd) and the files are read as a new daemon would: the spec as
// asked, marked incomplete, never a smaller VM that looks whole. A failed apply leaves the
// journal as it was; stale temporary files are removed when a daemon loads the journal.

import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Ioctl } from '../../../src/core/abi/ioctls.js'
import { Journal } from '../../../src/core/vmm/journal.js'
import { VmManager } from '../../../src/core/vmm/manager.js'
import { simVmmPlatform } from '../../../src/core/vmm/sim-platform.js'
import { parseSpec, specToObject } from '../../../src/core/vmm/spec.js'

let dir: string
let manager: VmManager
/** Resolves the held ioctl; set while an IRQFD is held. */
let release: (() => void) | undefined
let held: Promise<void> | undefined

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hsmctl-journal-apply-'))
  const platform = simVmmPlatform()
  const proc = platform.process
  const ioctl = proc.ioctl.bind(proc)
  let reached: () => void
  held = new Promise((resolve) => (reached = resolve))
  proc.ioctl = (fd, request, arg) => {
    if (request !== Ioctl.IRQFD || release !== undefined) return ioctl(fd, request, arg)
    // the first IRQFD waits until the test lets it go
    return new Promise((resolve) => {
      release = () => resolve(undefined)
      reached()
    }).then(() => ioctl(fd, request, arg))
  }
  manager = new VmManager({ platform, journal: new Journal(dir), stateDir: dir })
})

afterEach(async () => {
  release?.()
  release = undefined
  await manager.shutdown()
  rmSync(dir, { recursive: true, force: true })
})

const SPEC = parseSpec(`
name: whole
vcpus: 1
memory:
  - { gpa: 0, size: 1M }
regs:
  - { vcpu: 0, rip: 0x1000 }
ioeventfds:
  - { addr: 0xfe000000, len: 4 }
irqfds:
  - { msiAddr: 0xfee01000, msiData: 0x41 }
  - { msiAddr: 0xfee01000, msiData: 0x42 }
state: running
`)

describe('the journal while vm apply builds a VM', () => {
  it('holds the spec as asked, marked incomplete, at any step (what kill -9 would leave)', async () => {
    const applying = manager.apply(SPEC, () => new Uint8Array())
    await held // memory, registers and the ioeventfd are made; the irqfds are not
    // a new daemon reading the journal now: no temporary file, one entry
    expect(readdirSync(join(dir, 'vms'))).toEqual(['whole.json'])
    const [entry] = new Journal(dir).load()
    expect(entry).toMatchObject({ name: 'whole', incomplete: true })
    expect(specToObject(entry!.spec!)).toEqual(specToObject(SPEC))
    expect(entry!.spec!.irqfds).toHaveLength(2)
    release!()
    await applying
    // done: the same spec, no mark
    const [done] = new Journal(dir).load()
    expect(done!.incomplete).toBeUndefined()
    expect(specToObject(done!.spec!)).toEqual(specToObject(SPEC))
  })

  it('an incomplete entry is listed so, and recreated whole from the spec as asked', async () => {
    const journal = new Journal(dir)
    journal.save(SPEC, { incomplete: true })
    const row = manager.list().find((v) => v.name === 'whole')
    expect(row).toMatchObject({ state: 'incomplete', owner: 'journal' })
    expect(row!.problem).toMatch(/hsmd stopped while applying this spec/)
    release = () => {} // let every ioctl through
    const vm = await manager.recreate('whole', () => new Uint8Array())
    expect(vm).toMatchObject({ state: 'running', owner: 'hsmd' })
    expect(vm.irqfds).toHaveLength(2)
    expect(new Journal(dir).load()[0]!.incomplete).toBeUndefined()
  })

  it('a failed apply over a journaled VM leaves its entry as it was', async () => {
    release = () => {}
    const journal = new Journal(dir)
    journal.save({ ...SPEC, state: 'created' }, { autostart: true })
    const before = new Journal(dir).load()
    // same name, a spec that fails half-way: registers for a vCPU the VM does not have
    const bad = parseSpec(`name: whole\nvcpus: 1\nregs:\n  - { vcpu: 3 }\n`)
    await expect(manager.apply(bad, () => new Uint8Array())).rejects.toThrow(
      /vCPU 3 does not exist/,
    )
    expect(new Journal(dir).load()).toEqual(before)
    expect(manager.list().find((v) => v.name === 'whole')).toMatchObject({
      state: 'journaled',
      autostart: true,
    })
  })

  it('a failed apply of a new name leaves no entry', async () => {
    release = () => {}
    const bad = parseSpec(`name: fresh\nvcpus: 1\nregs:\n  - { vcpu: 3 }\n`)
    await expect(manager.apply(bad, () => new Uint8Array())).rejects.toThrow()
    expect(existsSync(join(dir, 'vms', 'fresh.json'))).toBe(false)
  })
})

describe('stale temporary files', () => {
  it('are removed when a daemon loads the journal, unless their writer still runs', () => {
    const journal = new Journal(dir)
    journal.save({ ...SPEC, state: 'created' })
    // a pid that no longer runs: a child that has exited
    const dead = spawnSync(process.execPath, ['-e', '0']).pid
    const vms = join(dir, 'vms')
    writeFileSync(join(vms, `whole.json.${dead}.tmp`), '{"name": "whole", "vcp')
    writeFileSync(join(vms, `other.json.${process.ppid}.tmp`), '{}') // a live writer's
    const lines: string[] = []
    const entries = new Journal(dir, { log: (l) => lines.push(l) }).load()
    expect(readdirSync(vms).sort()).toEqual([`other.json.${process.ppid}.tmp`, 'whole.json'])
    expect(entries.map((e) => e.name)).toEqual(['whole'])
    expect(lines).toEqual([
      `journal: removed whole.json.${dead}.tmp, left by process ${dead} that stopped writing it`,
    ])
  })
})
