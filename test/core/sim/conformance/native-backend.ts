// The conformance suite's second backend: the native one. Every process is hsm-helper
// (the real binary, driven by NativeProcess) with libhsm-shim.so preloaded, so its
// /dev/acrn_hsm is a simulated platform served in this test process by SimServer (what
// `hsmctl sim serve` runs). The hypervisor side (guest accesses, inspection) is that
// platform's, as for the sim backend; every HSM call crosses two processes and the shim.
//
// The helper's RAM is shared with the simulation (SHIM.md: the shim turns it into a memfd
// both map), but the ioreq and monitor pages are mirrored: they travel with every call,
// and what the simulation writes between calls (a guest access dispatched, an ioeventfd
// signal) reaches the helper at the next sync. So each guest access first pulls the
// processes' pages, and every helper call waits for the syncs that guest accesses
// scheduled; settle() syncs too.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest'
import { NativeProcess } from '../../../../src/core/native/helper-process.js'
import { ringAddon } from '../../../../src/core/native/ring.js'
import { SimServer } from '../../../../src/core/native/sim-server.js'
import type { IoctlArg } from '../../../../src/core/hsm-process.js'
import { createSimPlatform, type GuestAccess } from '../../../../src/index.js'
import { buildHelper, HELPER, ROOT } from '../../native/support.js'
import type {
  Capability,
  ConformanceBackend,
  ConformanceProcess,
  ConformanceSystem,
} from './backend.js'

export const SHIM = join(ROOT, 'helper', 'build', 'libhsm-shim.so')

/**
 * The shim's transport these tests go through (vitest.config.ts runs them once per
 * transport): the shared-memory ring, or the socket alone.
 */
const TRANSPORT = process.env.HSMCTL_TEST_SHIM_TRANSPORT === 'socket' ? 'socket' : 'ring'

/** Every shimmed helper of a test went through TRANSPORT (a refused ring would not). */
async function checkTransport(server: SimServer): Promise<void> {
  const other = TRANSPORT === 'ring' ? 'socket' : 'ring'
  if (TRANSPORT === 'ring' && !ringAddon() && process.env.HSMCTL_CI !== '1') return
  const n = server.shimTransports[other]
  if (n > 0) throw new Error(`${n} shimmed helper(s) used the ${other}, not the ${TRANSPORT}`)
}

interface Live {
  server: Promise<SimServer>
  procs: Array<Promise<NativeProcess>>
}

let dir: string | undefined
let count = 0
const live: Live[] = []

/** End every helper and server of the tests so far (their fds close: §1.5). */
async function teardown(): Promise<void> {
  const all = live.splice(0)
  await Promise.all(
    all.map(async (l) => {
      await Promise.all(l.procs.map(async (p) => (await p.catch(() => undefined))?.exit()))
      const server = await l.server
      await server.close()
      await checkTransport(server)
    }),
  )
}

/** A ConformanceProcess whose helper starts in the background (spawn is synchronous). */
class ShimmedHelper implements ConformanceProcess {
  constructor(
    private readonly ready: Promise<NativeProcess>,
    private readonly system: NativeSystem,
  ) {}

  private async p(): Promise<NativeProcess> {
    await this.system.barrier
    return this.ready
  }

  async open(path: string) {
    return (await this.p()).open(path)
  }
  ioctl(fd: number, request: number, arg?: IoctlArg) {
    const call = this.p().then((p) => p.ioctl(fd, request, arg))
    // Replies come from the helper's threads in any order: a blocked ATTACH may fail
    // before the test, still awaiting another call, has attached its handler. The test
    // awaits it later; this keeps Node from calling that an unhandled rejection.
    call.catch(() => undefined)
    return call
  }
  async mmap(length: number) {
    return (await this.p()).mmap(length)
  }
  async munmap(address: bigint, length: number) {
    return (await this.p()).munmap(address, length)
  }
  async read(address: bigint, length: number) {
    return (await this.p()).read(address, length)
  }
  async write(address: bigint, bytes: Uint8Array) {
    return (await this.p()).write(address, bytes)
  }
  async eventfd(initval?: number) {
    return (await this.p()).eventfd(initval)
  }
  async eventfdRead(fd: number) {
    return (await this.p()).eventfdRead(fd)
  }
  async eventfdWrite(fd: number, n: bigint | number) {
    return (await this.p()).eventfdWrite(fd, n)
  }
  async close(fd: number) {
    return (await this.p()).close(fd)
  }
  /** /proc/self/pagemap as the simulation sees the helper: its page in the simulation. */
  async pagemap(address: bigint) {
    const p = await this.p()
    return (await this.system.server).pagemap(p.pid, address)
  }
}

class NativeSystem implements ConformanceSystem {
  /** Syncs scheduled by guest accesses; every helper call waits for them first. */
  barrier: Promise<void> = Promise.resolve()
  /** Guest accesses start in order, each after a pull of the processes' bytes. */
  private order: Promise<void> = Promise.resolve()
  readonly inspect
  readonly physicalInterrupt

  constructor(
    private readonly platform: ReturnType<typeof createSimPlatform>,
    readonly server: Promise<SimServer>,
    private readonly socket: string,
    private readonly record: Live,
  ) {
    this.inspect = platform.inspect
    this.physicalInterrupt = (pirq: number) => platform.physicalInterrupt(pirq)
  }

  spawn(options?: { uid?: number; compat32?: boolean }): ConformanceProcess {
    if (options?.uid !== undefined || options?.compat32) {
      throw new Error('the native backend runs helpers as this user, 64-bit only')
    }
    const ready = this.server.then(() =>
      NativeProcess.start({
        helper: HELPER,
        checkDevice: false,
        env: { LD_PRELOAD: SHIM, HSM_SHIM_SOCKET: this.socket, HSM_SHIM_TRANSPORT: TRANSPORT },
      }),
    )
    ready.catch(() => {})
    this.record.procs.push(ready)
    return new ShimmedHelper(ready, this)
  }

  private sync(): Promise<void> {
    return this.server.then((s) => s.sync())
  }

  guestAccess = (access: GuestAccess): Promise<bigint> => {
    // The pages the processes wrote reach the simulation before the guest looks.
    const started = (this.order = this.order.then(() => this.sync()))
    const result = started.then(() => this.platform.guestAccess(access))
    // Once dispatched, and once done, what the simulation wrote reaches the processes.
    const after = () => {
      this.barrier = this.barrier.then(() => this.sync())
    }
    void started.then(() => this.platform.settle()).then(after)
    result.then(after, after)
    return result
  }

  settle = async (): Promise<void> => {
    // Guest accesses asked for so far are issued (each after its pull)...
    await this.order
    await this.platform.settle()
    await this.barrier
    await this.sync()
  }
}

export const nativeBackend: ConformanceBackend = {
  name: 'native',
  // No dup, signals, PFN mappings, other users or 32-bit processes through the helper.
  capabilities: new Set<Capability>(['guest', 'inspect']),
  create(options = {}) {
    if (!dir) throw new Error('useNativeBackend() was not called in this test file')
    const platform = createSimPlatform(options)
    const socket = join(dir, `s${count++}.sock`)
    const server = SimServer.listen(socket, { platform })
    const record: Live = { server, procs: [] }
    live.push(record)
    return new NativeSystem(platform, server, socket, record)
  },
}

/**
 * Build the helper and the shim, give the file a socket directory, end each test's
 * helpers after it, and skip the cases listed as known differences, saying why.
 */
export function useNativeBackend(known: ReadonlyMap<string, string> = new Map()): void {
  beforeAll(() => {
    buildHelper()
    dir = mkdtempSync(join(tmpdir(), 'hsmctl-native-'))
  })
  beforeEach((ctx) => {
    const reason = known.get(ctx.task.name)
    if (reason !== undefined) ctx.skip(`known difference: ${reason}`)
  })
  afterEach(teardown)
  afterAll(async () => {
    await teardown()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })
}
