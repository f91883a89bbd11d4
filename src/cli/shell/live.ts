// Live values for completion and the prompt, from a daemon that is already running:
// never started from here (a Tab press must not spawn hsmd), and every query is bounded
// by a short timeout so that a stuck daemon cannot freeze the line editor.

import { readdir } from 'node:fs/promises'
import type { DaemonClient } from '../../core/daemon/client.js'
import type { Backend } from '../../core/daemon/paths.js'
import type { SshHost } from '../../core/daemon/ssh/hosts.js'
import { openIfRunning } from '../../core/daemon/target.js'
import type { EventfdKind, ValueSource } from './complete.js'

export interface LiveOptions {
  backend: Backend
  /** A remote host (the shell's --host); none: this machine. */
  host?: SshHost | undefined
  env?: NodeJS.ProcessEnv
  /** Per query, connection included (ms). */
  timeoutMs?: number
  /** How long a VM list is reused between Tab presses (ms). */
  cacheMs?: number
}

interface VmEntry {
  name: string
  vmid: number | null
}

const TIMED_OUT = Symbol('timed out')

/** One call on a fresh connection; undefined when no daemon runs. Rejects on timeout. */
export async function queryDaemon<T>(
  options: LiveOptions,
  method: string,
  params: Record<string, unknown> = {},
): Promise<T | undefined> {
  let client: DaemonClient | undefined
  let timedOut = false
  const query = (async () => {
    client = await openIfRunning(options)
    if (!client || timedOut) return undefined
    return await client.call<T>(method, params)
  })()
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), options.timeoutMs ?? 500)
  })
  try {
    const result = await Promise.race([query, timeout])
    if (result === TIMED_OUT) throw new Error(`hsmd did not answer ${method} in time`)
    return result
  } finally {
    timedOut = true
    clearTimeout(timer)
    // after a timeout the connection may still be opening: close it whenever it is there
    void query.then(
      () => client?.close(),
      () => client?.close(),
    )
    client?.close()
  }
}

export function daemonValues(options: LiveOptions): ValueSource {
  let cached: { at: number; vms: Promise<VmEntry[]> } | undefined
  const vms = () => {
    if (!cached || Date.now() - cached.at > (options.cacheMs ?? 1000)) {
      cached = {
        at: Date.now(),
        vms: queryDaemon<VmEntry[]>(options, 'vm.list').then((v) => v ?? []),
      }
      cached.vms.catch(() => (cached = undefined))
    }
    return cached.vms
  }
  return {
    vmNames: async () => (await vms()).map((v) => v.name),
    vmids: async () => (await vms()).filter((v) => v.vmid !== null).map((v) => String(v.vmid)),
    async hostBdfs() {
      const inventory = await queryDaemon<{ pci: { bdf: number; bridge?: boolean }[] }>(
        options,
        'host.devices',
      )
      const { formatBdf } = await import('../../core/parse/bdf.js')
      return (inventory?.pci ?? []).filter((d) => !d.bridge).map((d) => formatBdf(d.bdf))
    },
    async eventfdIds(vm: string, kind: EventfdKind | undefined) {
      const kinds: EventfdKind[] = kind ? [kind] : ['ioeventfd', 'irqfd']
      const lists = await Promise.all(
        kinds.map((k) => queryDaemon<{ id: number }[]>(options, `${k}.list`, { name: vm })),
      )
      return lists.flatMap((l) => (l ?? []).map((e) => String(e.id)))
    },
    async abiNames() {
      const [{ IOCTLS }, { ALL_STRUCTS }] = await Promise.all([
        import('../../core/abi/ioctls.js'),
        import('../../core/abi/structs.js'),
      ])
      return [...IOCTLS.map((i) => i.name), ...ALL_STRUCTS.map((s) => s.name)]
    },
    files: (partial: string) => listFiles(partial),
  }
}

/** Entries of the directory `partial` points into, as paths that start with it. */
export async function listFiles(partial: string): Promise<string[]> {
  const shown = partial.slice(0, partial.lastIndexOf('/') + 1) // 'dir/' or ''
  const base = partial.slice(shown.length)
  const entries = await readdir(shown === '' ? '.' : shown, { withFileTypes: true })
  return entries
    .filter((e) => base.startsWith('.') || !e.name.startsWith('.'))
    .map((e) => shown + e.name + (e.isDirectory() ? '/' : ''))
}

/** The prompt: host, backend and VM count, e.g. `hsmctl(sim, 2 VMs)> `, `hsmctl(edge1, sim, 1 VM)> `. */
export async function promptText(options: LiveOptions): Promise<string> {
  let status: string
  try {
    const list = await queryDaemon<VmEntry[]>(options, 'vm.list')
    status =
      list === undefined
        ? `${options.backend}, no daemon`
        : `${options.backend}, ${list.length} VM${list.length === 1 ? '' : 's'}`
  } catch {
    status = options.backend
  }
  return `hsmctl(${options.host ? `${options.host.label}, ` : ''}${status})> `
}
