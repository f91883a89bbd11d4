// What the conformance suite runs against. Every suite is a function of a backend, so the
// same cases run on the simulation (here) and later through the native helper. Cases
// that need more than the HsmProcess interface (a guest to drive, hypervisor inspection,
// dup, signals, PFN mappings, other users) check the backend's capabilities and skip
// when it lacks one.

import type { HsmProcess } from '../../../../src/core/hsm-process.js'
import {
  createSimPlatform,
  type GuestAccess,
  type SimInspector,
  type SimPlatformOptions,
  type SpawnOptions,
} from '../../../../src/index.js'

/** An HsmProcess with the sim-only extras a backend may offer. */
export interface ConformanceProcess extends HsmProcess {
  dup?(fd: number): Promise<number>
  interrupt?(): number
  mmapPfn?(physPages: readonly bigint[], options?: { writable?: boolean }): Promise<bigint>
  pagemap?(address: bigint): Promise<bigint>
  exit?(): Promise<void>
}

export interface ConformanceSystem {
  spawn(options?: SpawnOptions): ConformanceProcess
  /** Make a vCPU trap (capability 'guest'). */
  guestAccess?(access: GuestAccess): Promise<bigint>
  /** Raise a host GSI (capability 'guest'). */
  physicalInterrupt?(pirq: number): boolean
  /** Let queued kernel work run. */
  settle(): Promise<void>
  /** Hypervisor state (capability 'inspect'). */
  inspect?: SimInspector
}

export type Capability = 'guest' | 'inspect' | 'dup' | 'signal' | 'pfnmap' | 'users' | 'compat32'

export interface ConformanceBackend {
  readonly name: string
  readonly capabilities: ReadonlySet<Capability>
  /** A fresh system: hypervisor, HSM and no VMs. */
  create(options?: SimPlatformOptions): ConformanceSystem
}

export const simBackend: ConformanceBackend = {
  name: 'sim',
  capabilities: new Set<Capability>([
    'guest',
    'inspect',
    'dup',
    'signal',
    'pfnmap',
    'users',
    'compat32',
  ]),
  create(options = {}) {
    const platform = createSimPlatform(options)
    return {
      spawn: (spawnOptions) => platform.spawn(spawnOptions),
      guestAccess: (access) => platform.guestAccess(access),
      physicalInterrupt: (pirq) => platform.physicalInterrupt(pirq),
      settle: () => platform.settle(),
      inspect: platform.inspect,
    }
  },
}
