// Who holds a VM decides what hsmd does with it (src/core/vmm/owners/): a VM of each
// owner — hsmd's own, one only journaled, one another process holds (spec §1.5, §2.3) —
// and each verb that applies to any VM goes to its owner's implementation.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Ioctl } from '../../../src/core/abi/ioctls.js'
import { decode, encode } from '../../../src/core/abi/layout.js'
import * as structs from '../../../src/core/abi/structs.js'
import { NotFoundError, UsageError } from '../../../src/core/errors.js'
import { Journal } from '../../../src/core/vmm/journal.js'
import { VmManager } from '../../../src/core/vmm/manager.js'
import { isSimPlatform, simVmmPlatform } from '../../../src/core/vmm/sim-platform.js'

let dir: string
let manager: VmManager
let outsiders: { exit(): Promise<void> }[]
let outsideVmid: number

/** Another process of the simulation creates a VM named so (it holds the fd). */
async function outsideVm(name: string): Promise<number> {
  const platform = manager.platform
  if (!isSimPlatform(platform)) throw new Error('the sim platform')
  const outside = platform.sim.spawn()
  outsiders.push(outside)
  const fd = await outside.open('/dev/acrn_hsm')
  const uuid = new Uint8Array(16)
  uuid.set(new TextEncoder().encode(name))
  const creation = encode(structs.acrn_vm_creation, { uuid, ioreq_buf: await outside.mmap(4096) })
  await outside.ioctl(fd, Ioctl.CREATE_VM, creation)
  return decode(structs.acrn_vm_creation, creation).vmid as number
}

const access = { vcpu: 0, type: 'pio', dir: 'read', addr: 0x80n, size: 1, value: 0n } as const

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hsmctl-owners-'))
  outsiders = []
  manager = new VmManager({ platform: simVmmPlatform(), journal: new Journal(dir), stateDir: dir })
  await manager.create({ name: 'own', vcpus: 1 })
  // journaled only: an earlier daemon's VM (destroyed, its spec kept)
  await manager.create({ name: 'kept', vcpus: 1 })
  await manager.destroy('kept', { keepJournal: true })
  outsideVmid = await outsideVm('theirs')
})

afterEach(async () => {
  await manager.shutdown()
  for (const outside of outsiders) await outside.exit()
  rmSync(dir, { recursive: true, force: true })
})

describe('one VM of each owner', () => {
  it('vm list: each owner gives its own rows', () => {
    expect(manager.list().map((v) => [v.name, v.owner, v.state])).toEqual([
      ['kept', 'journal', 'journaled'],
      ['own', 'hsmd', 'created'],
      ['theirs', 'outside process', 'created'],
    ])
  })

  it('vm.hypervisor: hsmd’s and the outside VM by their vmid; the journal runs none', () => {
    const ownVmid = manager.list().find((v) => v.name === 'own')!.vmid
    expect(manager.hypervisorView('own').vmid).toBe(ownVmid)
    expect(manager.hypervisorView('theirs').vmid).toBe(outsideVmid)
    expect(outsideVmid).not.toBe(ownVmid)
    expect(() => manager.hypervisorView('kept')).toThrow(
      /^no VM named 'kept' runs in hsmd; it is journaled \(held by an earlier daemon\)$/,
    )
    expect(() => manager.hypervisorView('nobody')).toThrow(/^no VM named 'nobody'$/)
  })

  it('guest access: each owner says in its own words why a VM not running cannot take it', async () => {
    const refusal = (name: string) =>
      manager.guestAccess(name, access).then(
        () => undefined,
        (e: unknown) => e as UsageError,
      )
    const own = await refusal('own')
    expect(own).toBeInstanceOf(UsageError)
    expect([own!.message, own!.hint]).toEqual([
      "'own' is created, not running",
      'start it first: hsmctl vm start own',
    ])
    const theirs = await refusal('theirs')
    expect(theirs).toBeInstanceOf(UsageError)
    expect([theirs!.message, theirs!.hint]).toEqual([
      "'theirs' is created, not running",
      'the program that holds it starts it',
    ])
    const kept = await refusal('kept')
    expect(kept).toBeInstanceOf(NotFoundError)
    expect(kept!.message).toMatch(/^no VM named 'kept' runs in hsmd; it is journaled/)
  })

  it('hsmd’s own verbs reach only its own VMs: the others are "no VM named" for the CLI to explain', async () => {
    await expect(manager.pause('theirs')).rejects.toThrow(/^no VM named 'theirs'$/)
    await expect(manager.pause('kept')).rejects.toThrow(/^no VM named 'kept' runs in hsmd/)
    expect((await manager.pause('own')).state).toBe('paused')
  })

  it('an outside VM whose name the journal has is listed as outside-VMID', async () => {
    const vmid = await outsideVm('kept')
    const rows = manager.list().filter((v) => v.owner !== 'hsmd')
    expect(rows.map((v) => [v.name, v.owner])).toEqual([
      ['kept', 'journal'],
      [`outside-${vmid}`, 'outside process'],
      ['theirs', 'outside process'],
    ])
    expect(manager.hypervisorView(`outside-${vmid}`).vmid).toBe(vmid)
  })
})
