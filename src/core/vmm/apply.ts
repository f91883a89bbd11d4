// VMs from specs: `vm apply` builds a whole VM from one, `vm dump` gives a live VM's,
// and a VM only journaled is recreated from its spec (`vm apply NAME`, `vm start NAME`,
// `vm autostart` when hsmd starts).

import { ConflictError, NotFoundError } from '../errors.js'
import { mmiodev, ptdevAssign, ptdevIntr, vdev } from './assigned-devices.js'
import { ioeventfdAdd } from './ioeventfd.js'
import { irqfdAdd } from './irqfd.js'
import type { JournalEntry } from './journal.js'
import { create, destroy, pause, start } from './lifecycle.js'
import { show, type VmDetails } from './listing.js'
import { memsegSet } from './memory.js'
import type { HsmdVms } from './owners/hsmd.js'
import { notRunning } from './owners/journaled.js'
import type { VmRunState, VmSpec } from './spec.js'
import { setRegs } from './vcpus.js'

/**
 * Reads a payload file for a RAM segment: `flag` names where its path was given, and a
 * file larger than `maxBytes` (the segment) is refused before it is read.
 */
export type ReadPayload = (file: string, options: { flag: string; maxBytes: bigint }) => Uint8Array

/** A live VM's spec, or the journaled spec of one an earlier daemon held. */
export function spec(hsmd: HsmdVms, name: string): VmSpec {
  if (!hsmd.has(name)) {
    const journaled = hsmd.journal.get(name)
    if (journaled?.spec) return journaled.spec
  }
  return hsmd.spec(hsmd.get(name))
}

/**
 * Create a whole VM from a spec; on any failure the VM is destroyed again and its
 * journal entry is what it was before. While it is built, the journal holds the spec as
 * asked, marked incomplete: hsmd killed half-way leaves that, never a smaller VM that
 * looks whole.
 */
export async function apply(
  hsmd: HsmdVms,
  spec: VmSpec,
  readPayload: ReadPayload,
): Promise<VmDetails> {
  const { journal } = hsmd
  // read payloads first: a missing file must not leave a half-built VM
  const payloads = spec.memory.map((m, i) =>
    m.file !== undefined
      ? readPayload(m.file, { flag: `memory[${i}].file`, maxBytes: m.size })
      : undefined,
  )
  if (hsmd.has(spec.name) || hsmd.applying.has(spec.name)) {
    throw new ConflictError(
      `a VM named '${spec.name}' already exists`,
      'pick another name, or destroy it first',
    )
  }
  const previous = journal.get(spec.name)
  journal.save(spec, { incomplete: true })
  hsmd.applying.add(spec.name)
  try {
    await create(hsmd, {
      name: spec.name,
      ...(spec.vcpus !== undefined ? { vcpus: spec.vcpus } : {}),
      ...(spec.cpuAffinity !== undefined ? { cpuAffinity: spec.cpuAffinity } : {}),
      flags: spec.flags,
    })
    for (const [i, seg] of spec.memory.entries())
      await memsegSet(hsmd, spec.name, seg, payloads[i], { flag: `memory[${i}].size` })
    for (const regs of spec.regs) await setRegs(hsmd, spec.name, regs)
    for (const { intr, ...ptdev } of spec.ptdevs) {
      await ptdevAssign(hsmd, spec.name, ptdev)
      if (intr) {
        await ptdevIntr(hsmd, spec.name, true, {
          type: intr.type,
          phys: ptdev.phys,
          virt: ptdev.virt,
          virtPin: intr.virtPin,
          physPin: intr.physPin,
          picPin: intr.picPin,
        })
      }
    }
    for (const m of spec.mmiodevs) await mmiodev(hsmd, spec.name, true, m)
    for (const v of spec.vdevs) await vdev(hsmd, spec.name, true, v)
    for (const e of spec.ioeventfds) await ioeventfdAdd(hsmd, spec.name, e)
    for (const q of spec.irqfds) await irqfdAdd(hsmd, spec.name, q)
    if (spec.state === 'running' || spec.state === 'paused') await start(hsmd, spec.name)
    if (spec.state === 'paused') await pause(hsmd, spec.name)
  } catch (e) {
    hsmd.applying.delete(spec.name)
    if (hsmd.has(spec.name))
      await destroy(hsmd, spec.name, { rollback: true, keepJournal: true }).catch(() => {})
    try {
      if (previous?.spec) journal.restore(previous)
      else journal.remove(spec.name)
    } catch {
      // the journal refuses writes now: the error that stopped the apply says more
    }
    throw e
  }
  hsmd.applying.delete(spec.name)
  hsmd.save(hsmd.find(spec.name)!)
  return show(hsmd, spec.name)
}

/** A VM the journal holds that hsmd does not run: `vm start` recreates it. */
export function journaledOnly(hsmd: HsmdVms, name: string): boolean {
  return !hsmd.has(name) && !hsmd.applying.has(name) && hsmd.journal.get(name) !== undefined
}

/**
 * Recreate a journaled VM from its spec (`vm apply NAME`, `vm start NAME`, autostart),
 * an incomplete one from the spec as asked; `state` overrides the journaled state.
 */
export async function recreate(
  hsmd: HsmdVms,
  name: string,
  readPayload: ReadPayload,
  options: { state?: VmRunState } = {},
): Promise<VmDetails> {
  if (hsmd.has(name) || hsmd.applying.has(name)) {
    throw new ConflictError(
      `a VM named '${name}' already exists`,
      `it runs in hsmd: see \`hsmctl vm show ${name}\``,
    )
  }
  const entry = hsmd.journal.get(name)
  if (!entry) {
    throw new NotFoundError(
      `nothing is journaled as '${name}'`,
      'see `hsmctl vm list`; `hsmctl vm apply -f FILE` creates a VM from a spec file',
    )
  }
  if (!entry.spec) throw notRunning(hsmd.journal, name)
  return apply(
    hsmd,
    { ...entry.spec, ...(options.state ? { state: options.state } : {}) },
    readPayload,
  )
}

/** Mark a VM, running or only journaled, to be recreated when hsmd starts (or not). */
export function setAutostart(
  hsmd: HsmdVms,
  name: string,
  on: boolean,
): { name: string; autostart: boolean } {
  const { journal } = hsmd
  const entry = journal.get(name)
  if (hsmd.has(name) && !hsmd.applying.has(name)) {
    journal.save(spec(hsmd, name), { autostart: on })
  } else if (entry?.spec) {
    journal.save(entry.spec, { autostart: on, incomplete: entry.incomplete ?? false })
  } else {
    throw notRunning(journal, name)
  }
  return { name, autostart: on }
}

/** hsmd's start: recreate every VM marked autostart; each result is logged. */
export async function autostart(
  hsmd: HsmdVms,
  readPayload: ReadPayload,
  log: (line: string) => void = () => {},
): Promise<void> {
  let entries: JournalEntry[]
  try {
    entries = hsmd.journal.list()
  } catch (e) {
    // an unsafe journal dir: logged at load, refused by every command that needs it
    log(`autostart: skipped: ${(e as Error).message}`)
    return
  }
  for (const entry of entries) {
    if (!entry.autostart || hsmd.has(entry.name)) continue
    try {
      const vm = await recreate(hsmd, entry.name, readPayload)
      log(`autostart: recreated ${entry.name} (${vm.state})`)
    } catch (e) {
      const hint = (e as { hint?: string }).hint
      log(
        `autostart: ${entry.name} could not be recreated: ${(e as Error).message}${hint ? ` (${hint})` : ''}`,
      )
    }
  }
}
