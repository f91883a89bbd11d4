// VMs only in the journal: the spec of a VM an earlier daemon held (or one hsmd stopped
// applying, or a file that cannot be used). None runs; `vm start`/`vm apply` recreates
// one, `vm forget` removes its entry (lifecycle.ts, apply.ts).

import { NotFoundError } from '../../errors.js'
import type { Journal, JournalEntry } from '../journal.js'
import type { ForgottenVm } from '../lifecycle.js'
import type { VmSummary } from '../listing.js'
import type { HsmdVms } from './hsmd.js'
import type { RunningVm, VmOwner } from './owner.js'

export class JournaledVms implements VmOwner {
  readonly kind = 'journal'

  constructor(
    private readonly journal: Journal,
    private readonly hsmd: HsmdVms,
  ) {}

  rows(entries: readonly JournalEntry[]): VmSummary[] {
    return (
      entries
        // the entry of a VM hsmd runs is that VM's spec, not a row of its own
        .filter((e) => !this.hsmd.has(e.name))
        .map((e) => ({
          name: e.name,
          vmid: null,
          state: journalState(e),
          vcpus: e.spec?.vcpus ?? null,
          memory: (e.spec?.memory ?? [])
            .filter((m) => m.type === 'ram')
            .reduce((n, m) => n + m.size, 0n),
          owner: 'journal',
          uptimeSeconds: null,
          ...(e.error !== undefined ? { problem: e.error } : {}),
          ...(e.incomplete
            ? { problem: 'hsmd stopped while applying this spec; it is journaled as asked' }
            : {}),
          ...(e.autostart ? { autostart: true } : {}),
        }))
    )
  }

  /** None of its VMs runs. */
  running(_name: string): RunningVm | undefined {
    return undefined
  }

  /** Why no VM of that name runs in hsmd, saying what the journal holds of it. */
  notRunning(name: string): NotFoundError {
    return notRunning(this.journal, name)
  }
}

/** Why no VM of that name runs in hsmd, saying what the journal holds of it. */
export function notRunning(journal: Journal, name: string): NotFoundError {
  const entry = journal.get(name)
  if (entry?.error !== undefined) {
    return new NotFoundError(
      `no VM named '${name}' runs in hsmd; its journal entry ${entry.file} is corrupt: ${entry.error}`,
      `fix or remove the file, or forget it with \`hsmctl vm forget ${name}\``,
    )
  }
  if (entry) {
    const how = entry.incomplete ? 'journaled, incomplete' : 'journaled'
    return new NotFoundError(
      `no VM named '${name}' runs in hsmd; it is ${how} (held by an earlier daemon)`,
      `recreate it with \`hsmctl vm apply ${name}\`, or forget it with \`hsmctl vm forget ${name}\``,
    )
  }
  return new NotFoundError(`no VM named '${name}'`, 'see `hsmctl vm list`')
}

export function journalState(e: JournalEntry): ForgottenVm['state'] {
  return e.error !== undefined ? 'corrupt' : e.incomplete ? 'incomplete' : 'journaled'
}
