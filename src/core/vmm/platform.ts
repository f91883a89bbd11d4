// What the VM manager needs from a backend beyond the syscall interface: a process to
// own the VMs' fds, the host's devices (for pass-through), and, on the simulation only,
// a way to make a vCPU perform an access and read-only views of hypervisor state.

import type { HsmProcess } from '../hsm-process.js'

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

export interface VmmPlatform {
  readonly backend: 'sim' | 'native'
  /** The Service-VM process that holds every VM's fd. */
  readonly process: HsmProcess
  inventory(): Promise<HostInventoryView>
  /** Simulation only: a vCPU performs a trapped access; resolves with what the guest sees. */
  guestAccess?(request: GuestAccessRequest): Promise<bigint>
  /** Simulation only: the hypervisor's view of a VM (state, EPT, lines, MSIs...). */
  inspectVm?(vmid: number): unknown
}
