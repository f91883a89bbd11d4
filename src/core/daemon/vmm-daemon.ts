// hsmd with its VM manager: the platform for the backend, the journal, the trace hub,
// and the VM methods on the socket. `daemon stop` pauses and destroys every VM and keeps
// their specs in the journal.

import { readFileSync } from 'node:fs'
import { isAbsolute } from 'node:path'
import { DaemonUnreachableError, NotFoundError, UsageError } from '../errors.js'
import { TraceHub } from '../trace/hub.js'
import { Journal } from '../vmm/journal.js'
import { VmManager } from '../vmm/manager.js'
import { vmmMethods } from '../vmm/methods.js'
import { GuestTraffic } from '../vmm/guest-traffic.js'
import { guestMethods } from '../vmm/guest-methods.js'
import { traceMethods } from '../trace/methods.js'
import type { VmmPlatform } from '../vmm/platform.js'
import { startDaemon, type RunningDaemon } from './hsmd.js'
import { stateDir, type Backend } from './paths.js'

export interface VmmDaemon extends RunningDaemon {
  manager: VmManager
  trace: TraceHub
}

/** Payload files come from the CLI as absolute paths; the daemon runs as the same user. */
function readPayload(file: string): Uint8Array {
  if (!isAbsolute(file))
    throw new UsageError(`payload path '${file}' is not absolute`, { flag: '--file' })
  try {
    return new Uint8Array(readFileSync(file))
  } catch (e) {
    throw new NotFoundError(
      `cannot read payload ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    )
  }
}

async function platformFor(backend: Backend): Promise<VmmPlatform> {
  if (backend === 'sim') {
    const { simVmmPlatform } = await import('../vmm/sim-platform.js')
    return simVmmPlatform()
  }
  throw new DaemonUnreachableError(
    'the native backend (hsm-helper) is not part of this build yet',
    'use --backend sim (the default); real hardware support is planned',
  )
}

export async function startVmmDaemon(options: {
  backend: Backend
  env?: NodeJS.ProcessEnv
}): Promise<VmmDaemon> {
  const env = options.env ?? process.env
  const platform = await platformFor(options.backend)
  const trace = new TraceHub()
  const manager = new VmManager({
    platform,
    journal: new Journal(stateDir(env)),
    trace,
    stateDir: stateDir(env),
  })
  const traffic = new GuestTraffic(manager)
  const daemon = await startDaemon({
    backend: options.backend,
    env,
    methods: {
      ...vmmMethods(manager, readPayload),
      ...guestMethods(traffic),
      ...traceMethods(trace, () =>
        manager.list().flatMap((v) => (v.vmid === null ? [] : [{ vmid: v.vmid, name: v.name }])),
      ),
    },
    onStop: () => manager.shutdown(),
  })
  return { ...daemon, manager, trace }
}
