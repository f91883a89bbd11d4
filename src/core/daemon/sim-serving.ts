// hsmd's simulated platform served to programs under the device shim (helper/SHIM.md):
// from the start with `daemon run --serve-sim PATH`, or on request (the `sim.serve` method,
// which `hsmctl sim exec` calls) on a socket in the daemon's runtime directory. Either way
// the VMs those programs create show in `vm list` with the process that holds them.

import { join } from 'node:path'
import { UsageError } from '../errors.js'
import type { ServedIoctl, SimServer } from '../native/sim-server.js'
import type { VmmPlatform } from '../vmm/platform.js'
import { runtimeDir } from './paths.js'

/** What `sim.serve` answers. */
export interface SimServing {
  /** The unix socket shimmed programs connect to (HSM_SHIM_SOCKET). */
  socket: string
  /** Whether this call started serving it (false: it was served already). */
  started: boolean
  /** One sentence on the transport shimmed programs get (the ring, or why not). */
  transport: string
}

/** The socket `sim.serve` listens on when the daemon was not started with --serve-sim. */
export function simServeSocket(env: NodeJS.ProcessEnv = process.env): string {
  return join(runtimeDir(env), 'hsmd-sim-shim.sock')
}

export class SimService {
  private server: SimServer | undefined
  private starting: Promise<SimServing> | undefined

  constructor(
    private readonly platform: VmmPlatform,
    private readonly log?: (line: string) => void,
    /** Told about every ioctl a shimmed program made (`ioctl log`). */
    private readonly onIoctl?: (call: ServedIoctl) => void,
  ) {}

  /**
   * The platform the VM manager should use: the same, with `vm list`'s outside VMs
   * naming the shimmed process that holds each.
   */
  wrap(platform: VmmPlatform): VmmPlatform {
    const listed = platform.hypervisorVms?.bind(platform)
    if (!listed) return platform // the native backend sees only its own VMs
    return {
      ...platform,
      hypervisorVms: () =>
        listed().map((vm) => {
          const holder = this.holderOf(vm.vmid)
          return holder ? { ...vm, holder } : vm
        }),
    }
  }

  /** The pid of the shimmed process whose fds hold the VM, if one does. */
  holderPid(vmid: number): number | undefined {
    return this.server?.sessions().find((info) => info.vmids.includes(vmid))?.pid
  }

  private holderOf(vmid: number): string | undefined {
    const s = this.server?.sessions().find((info) => info.vmids.includes(vmid))
    return s ? `pid ${s.pid}${s.program ? ` (${s.program})` : ''}` : undefined
  }

  /** Serve on `path`, or say where it is served already (one socket per daemon). */
  serve(path: string, options: { flag?: string } = {}): Promise<SimServing> {
    if (this.starting) return this.starting.then((s) => ({ ...s, started: false }))
    this.starting = this.listen(path, options.flag)
    // a failed start may be tried again (another path, the stale file removed)
    this.starting.catch(() => (this.starting = undefined))
    return this.starting
  }

  /** `flag` names where the path came from (`--serve-sim`), for its errors. */
  private async listen(path: string, flag: string | undefined): Promise<SimServing> {
    const [{ SimServer }, { isSimPlatform }, { ringAddon, ringStatus }] = await Promise.all([
      import('../native/sim-server.js'),
      import('../vmm/sim-platform.js'),
      import('../native/ring.js'),
    ])
    if (!isSimPlatform(this.platform)) {
      throw new UsageError('this daemon drives the real device; only the sim daemon serves one', {
        hint: 'use the sim backend: --backend sim',
      })
    }
    this.server = await SimServer.listen(path, {
      platform: this.platform.sim,
      ...(flag ? { flag } : {}),
      ...(this.log ? { log: this.log } : {}),
      ...(this.onIoctl ? { onIoctl: this.onIoctl } : {}),
    })
    if (!ringAddon()) this.log?.(`serving the simulation: ${ringStatus()}`)
    return { socket: path, started: true, transport: ringStatus() }
  }

  async close(): Promise<void> {
    await this.starting?.catch(() => {})
    await this.server?.close()
  }
}
