// hsmd with its VM manager: the platform for the backend, the journal, the trace hub,
// and the VM methods on the socket. `daemon stop` pauses and destroys every VM and keeps
// their specs in the journal.

import { isAbsolute } from 'node:path'
import { UsageError } from '../errors.js'
import { readUserFile } from '../user-file.js'
import { TraceHub } from '../trace/hub.js'
import { Journal } from '../vmm/journal.js'
import { VmManager } from '../vmm/manager.js'
import { vmmMethods } from '../vmm/methods.js'
import { GuestTraffic } from '../vmm/guest-traffic.js'
import { guestMethods } from '../vmm/guest-methods.js'
import { traceMethods } from '../trace/methods.js'
import type { VmmPlatform } from '../vmm/platform.js'
import { acrnPaths } from '../acrn-dm/paths.js'
import { daemonEvents } from './daemon-events.js'
import { Discovery } from './discovery.js'
import { EventReaders } from './event-methods.js'
import type { EventBus } from './events.js'
import { packageVersion, startDaemon, type RunningDaemon } from './hsmd.js'
import type { MetricsAddress } from './metrics-address.js'
import type { MetricsServer } from './metrics.js'
import { backendState } from './backend-state.js'
import { checkDaemonDirs, socketPath, type Backend } from './paths.js'
import { isAlive, type Handler } from './server.js'
import { SimService, simServeSocket } from './sim-serving.js'
import { TapService } from './tap-service.js'
import type { ServedIoctl } from '../native/sim-server.js'

export interface VmmDaemon extends RunningDaemon {
  manager: VmManager
  trace: TraceHub
  /** With `metrics`: the Prometheus endpoint. */
  metrics?: MetricsServer
  /** Every change of state, in order (`hsmctl events`). */
  events: EventBus
}

/**
 * Payload files come from the CLI as absolute paths; the daemon runs as the same user.
 * `flag` names where the path was given; a payload larger than its segment is refused
 * from its size, before it is read.
 */
function readPayload(file: string, options: { flag: string; maxBytes: bigint }): Uint8Array {
  if (!isAbsolute(file))
    throw new UsageError(`payload path '${file}' is not absolute`, { flag: options.flag })
  const maxBytes =
    options.maxBytes > BigInt(Number.MAX_SAFE_INTEGER)
      ? Number.MAX_SAFE_INTEGER
      : Number(options.maxBytes)
  return new Uint8Array(
    readUserFile(file, {
      flag: options.flag,
      what: 'payload for this segment',
      maxBytes,
      // a FIFO or a device would block or feed the daemon forever
      regularOnly: true,
      sizeHint:
        'a payload is loaded at the start of its RAM segment and must fit in it: map a larger segment',
    }),
  )
}

export interface VmmDaemonOptions {
  backend: Backend
  env?: NodeJS.ProcessEnv
  /** Native backend: the HSM device node (default /dev/acrn_hsm). */
  device?: string
  /**
   * Sim backend: also serve the daemon's simulated platform on this unix socket, for
   * programs under the device shim (helper/SHIM.md); their VMs show in `vm list`.
   */
  serveSim?: string
  /** Told about the shim server's clients (bad input, lost connections). */
  log?: (line: string) => void
  /** Serve Prometheus metrics here (`--metrics`, daemon/metrics.ts). */
  metrics?: MetricsAddress
}

async function platformFor(options: VmmDaemonOptions): Promise<VmmPlatform> {
  if (options.backend === 'sim') {
    if (options.device !== undefined) {
      throw new UsageError('names the real HSM device; it needs --backend native', {
        flag: '--device',
      })
    }
    const { simVmmPlatform } = await import('../vmm/sim-platform.js')
    return simVmmPlatform()
  }
  if (options.serveSim !== undefined) {
    throw new UsageError('serves the simulation; it needs --backend sim', {
      flag: '--serve-sim',
    })
  }
  // preflight first: a missing device, a permission or an unbuilt helper is said clearly
  const { nativeVmmPlatform } = await import('../vmm/native-platform.js')
  return nativeVmmPlatform({ ...(options.device !== undefined ? { device: options.device } : {}) })
}

function afterReady(ready: Promise<void>, methods: Record<string, Handler>) {
  let isReady = false
  void ready.then(() => (isReady = true))
  return Object.fromEntries(
    Object.entries(methods).map(([method, handler]) => [
      method,
      ((params, context) =>
        isReady ? handler(params, context) : ready.then(() => handler(params, context))) as Handler,
    ]),
  )
}

export async function startVmmDaemon(options: VmmDaemonOptions): Promise<VmmDaemon> {
  const env = options.env ?? process.env
  checkDaemonDirs(env)
  const bare = await platformFor(options)
  // shimmed programs' VMs, from --serve-sim or `sim exec` (sim.serve), show their holder
  // every ioctl a shimmed program makes goes into the ioctl log (`ioctl log`)
  const ioctls: { to?: (call: ServedIoctl) => void } = {}
  const sim = new SimService(bare, options.log, (call) => ioctls.to?.(call))
  const platform = sim.wrap(bare)
  if (options.serveSim !== undefined) await sim.serve(options.serveSim, { flag: '--serve-sim' })
  const trace = new TraceHub()
  // The simulation sees every request, whoever handles it; otherwise trace our own client's.
  if (platform.traceRequests) platform.traceRequests((r) => trace.publish(r))
  if (platform.outstandingRequests) trace.outstanding = () => platform.outstandingRequests!()
  const ownState = backendState(options.backend, env, options.log)
  const journal = new Journal(ownState, options.log ? { log: options.log } : {})
  // `daemon started` is the first event; VMs autostart recreates come after it
  const events = daemonEvents({
    backend: options.backend,
    env,
    version: packageVersion(),
    ...(options.log ? { log: options.log } : {}),
  })
  try {
    journal.load() // stale temporary files go; entries it cannot use are logged
  } catch (e) {
    // an unsafe journal dir: said here, and by every command that needs the journal
    options.log?.(`journal: ${(e as Error).message}`)
  }
  const manager = new VmManager({
    platform,
    journal,
    ...(platform.traceRequests ? {} : { trace }),
    stateDir: ownState,
    onVmDestroyed: (vmid) => trace.forgetVm(vmid),
    events: events.bus,
  })
  const traffic = new GuestTraffic(manager)
  // VMs marked autostart are recreated once the socket is ours (never by a second hsmd
  // that lost the race for it); requests about VMs wait for that, so that the first
  // command a user runs sees them
  let autostarted!: () => void
  const ready = new Promise<void>((resolve) => (autostarted = resolve))
  // programs under the tap (helper/TAP.md) stream their ioctls and I/O requests here
  const taps = TapService.create({
    backend: options.backend,
    env,
    trace,
    platformTraces: platform.traceRequests !== undefined,
    ...(options.log ? { log: options.log } : {}),
  })
  const ownVms = () =>
    manager.list().flatMap((v) => (v.vmid === null ? [] : [{ vmid: v.vmid, name: v.name }]))
  const traceVms = () => taps.traceVms(ownVms())
  const readers = new EventReaders(events.bus, events.state)
  const discovery = new Discovery({
    bus: events.bus,
    mngrDir: acrnPaths(env).mngrDir,
    ...(platform.hypervisorVms ? { hypervisorVms: () => platform.hypervisorVms!() } : {}),
  })
  ioctls.to = (call) => taps.simIoctl(call)
  // the port before the socket (metrics.ts says why); not when another hsmd has the
  // socket, which is the error to report then
  const metrics =
    options.metrics && !(await isAlive(socketPath(options.backend, env)))
      ? await (await import('./metrics.js')).listenMetrics(options.metrics, options.log)
      : undefined
  const daemon = await startDaemon({
    backend: options.backend,
    env,
    ...(platform.execution ? { execution: () => platform.execution!() } : {}),
    metrics: () => metrics?.url,
    methods: afterReady(ready, {
      ...vmmMethods(manager, readPayload),
      ...guestMethods(traffic),
      ...taps.sourced(traceMethods(trace, traceVms), traceVms),
      ...taps.methods({ vms: ownVms, simHolder: (vmid) => sim.holderPid(vmid) }),
      // `sim exec`: serve the simulation to shimmed programs, if --serve-sim did not already
      'sim.serve': () => sim.serve(simServeSocket(env)),
      ...readers.methods(),
    }),
    onStop: async () => {
      events.stop()
      discovery.stop()
      try {
        await manager.shutdown()
      } finally {
        events.stopped()
        // the socket closes once every follower has been sent `daemon stopped`
        await readers.drained()
        journal.close()
        await metrics?.close()
        await sim.close()
        await taps.close()
        // the helper closes whatever is left, as a process exit would (§1.5)
        const helper = platform.process as { exit?: () => Promise<unknown> }
        if (platform.backend === 'native') await helper.exit?.()
      }
    },
  }).catch(async (e: unknown) => {
    await metrics?.close()
    throw e
  })
  discovery.start()
  try {
    await taps.listen()
    metrics?.serve({
      backend: options.backend,
      version: packageVersion(),
      startedAtMs: daemon.startedAt,
      connections: () => daemon.server.connections(),
      vms: async () => (await import('./metrics.js')).listedVms(manager.list(), env),
      trace,
    })
  } catch (e) {
    await daemon.stop()
    throw e
  }
  try {
    await manager.autostart(readPayload, options.log)
  } finally {
    autostarted()
  }
  return { ...daemon, manager, trace, events: events.bus, ...(metrics ? { metrics } : {}) }
}
