// What the VM manager needs from a backend beyond the syscall interface: a process to
// own the VMs' fds, the host's devices (for pass-through), and, on the simulation only,
// a way to make a vCPU perform an access and read-only views of hypervisor state.

import type { HsmProcess } from '../hsm-process.js'
import type { PublishedRequest } from '../trace/hub.js'

export interface HostBar {
  index: number
  kind: 'mem32' | 'mem64' | 'io'
  base: bigint
  size: bigint
}

export interface HostPciDevice {
  /** Packed bus<<8 | dev<<3 | func. */
  bdf: number
  vendor: number
  device: number
  classCode: number
  name: string
  bars: HostBar[]
  intxPin: number
  intxGsi: number
  bridge: boolean
}

export interface HostMmioDevice {
  name: string
  base: bigint
  size: bigint
}

export interface HostInventoryView {
  pcpus: number
  /** pCPUs a dynamically created User VM may use (its vCPUs come from a subset, A.2). */
  userVmAffinity: bigint
  pci: HostPciDevice[]
  mmio: HostMmioDevice[]
}

export interface GuestAccessRequest {
  vmid: number
  vcpu: number
  type: 'pio' | 'mmio'
  dir: 'read' | 'write'
  addr: bigint
  size: number
  value: bigint
}

/** A VM the hypervisor runs that this daemon does not hold (another process's, or orphaned). */
export interface HypervisorVm {
  vmid: number
  /** The name CREATE_VM gave it (A.1), '' for none. */
  name: string
  state: 'created' | 'running' | 'paused'
  vcpus: number
  /** RAM mapped into it (write-back EPT regions), in bytes. */
  memory: bigint
  /** Who holds its fd, when known: `pid 1234 (vm-sample)`. */
  holder?: string
}

export interface VmmPlatform {
  readonly backend: 'sim' | 'native'
  /** The Service-VM process that holds every VM's fd. */
  readonly process: HsmProcess
  /** The HSM device node the process opens (default /dev/acrn_hsm). */
  readonly device?: string
  inventory(): Promise<HostInventoryView>
  /**
   * Simulation only: the largest anonymous mapping the process can still make (bytes), for
   * telling a user how much RAM a VM can get when an mmap fails.
   */
  mmapLimit?(): bigint
  /** Simulation only: a vCPU performs a trapped access; resolves with what the guest sees. */
  guestAccess?(request: GuestAccessRequest): Promise<bigint>
  /**
   * Simulation only: every request the platform completes, whoever handled it (the
   * default client, the kernel's ioeventfd client, or HSM itself for 0xCF8/0xCFC), with
   * its latency from PENDING to COMPLETE. Without it the daemon traces what its own
   * default client handles.
   */
  traceRequests?(sink: (request: PublishedRequest) => void): void
  /**
   * Simulation only: the requests outstanding now (a vCPU waiting for completion), their
   * latency 0: what a recorder notes as still pending when it stops.
   */
  outstandingRequests?(): PublishedRequest[]
  /**
   * Simulation only: what executes guest code (issue 10), or why nothing does. On
   * hardware the hypervisor runs the vCPUs and this is absent.
   */
  execution?(): { engine: string } | { reason: string }
  /** Simulation only: the hypervisor's view of a VM (state, EPT, lines, MSIs...). */
  inspectVm?(vmid: number): unknown
  /**
   * Simulation only: every VM the hypervisor has (the manager leaves out its own), e.g.
   * those of programs under the device shim when the daemon serves its platform.
   */
  hypervisorVms?(): HypervisorVm[]
}
