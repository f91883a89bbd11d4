// Several hosts at once (`--host a,b,c` or `@FILE`): each host's hsmd over its own ssh
// session, asked in parallel. A host that fails is that host's answer (an error), never
// the whole command's: the caller prints one error row for it beside the others' rows.

import type { VmListEntry } from '../../acrn-dm/vms.js'
import type { VmSummary } from '../../vmm/manager.js'
import type { DaemonClient } from '../client.js'
import type { Wire } from '../protocol.js'
import type { SshHost } from './hosts.js'

/** One host of a fleet and its client (calls may be made at once: they are pipelined). */
export interface FleetMember {
  host: SshHost
  client: DaemonClient
}

export type HostAnswer<T> = { host: SshHost; value: T } | { host: SshHost; error: Error }

/** `work` on every member in parallel; each answer in the order the hosts were named. */
export async function eachHost<T>(
  members: readonly FleetMember[],
  work: (client: DaemonClient, host: SshHost) => Promise<T>,
): Promise<HostAnswer<T>[]> {
  const settled = await Promise.allSettled(members.map((m) => work(m.client, m.host)))
  return settled.map((s, i) =>
    s.status === 'fulfilled'
      ? { host: members[i]!.host, value: s.value }
      : { host: members[i]!.host, error: asError(s.reason) },
  )
}

const asError = (e: unknown) => (e instanceof Error ? e : new Error(String(e)))

/** A failed host as a row carries it (JSON: the `error` of a row with its `host`). */
export interface HostError {
  message: string
  hint?: string
  exitCode: number
}

export function hostError(error: Error): HostError {
  const { hint, exitCode } = error as { hint?: string; exitCode?: number }
  return { message: error.message, ...(hint ? { hint } : {}), exitCode: exitCode ?? 1 }
}

/** A row of `vm list` over a fleet: a VM with its host, or a host that did not answer. */
export type FleetVmRow = (VmListEntry & { host: string }) | { host: string; error: HostError }

/**
 * `vm list` over a fleet (the command and the fast path share it): every host's hsmd
 * VMs with their host, in the order the hosts were named. acrn-dm's VMs are not merged:
 * they are this machine's (a remote host's are listed there).
 */
export async function listFleetVms(
  members: readonly FleetMember[],
): Promise<{ rows: FleetVmRow[]; failed: boolean }> {
  const { mergeVms } = await import('../../acrn-dm/vms.js')
  const answers = await eachHost(members, (client) => client.call<Wire<VmSummary>[]>('vm.list'))
  const rows = answers.flatMap((a): FleetVmRow[] =>
    'error' in a
      ? [{ host: a.host.label, error: hostError(a.error) }]
      : mergeVms({ daemon: a.value, acrnDm: [], registry: [] }).map((vm) => ({
          host: a.host.label,
          ...vm,
        })),
  )
  return { rows, failed: answers.some((a) => 'error' in a) }
}
