// The simulated backend: createSimPlatform and the types of its inspection API.
export { createSimPlatform, type SimPlatform, type SimPlatformOptions } from './platform.js'
export { SimProcess, type SpawnOptions } from './kernel/process.js'
export { HSM_DEVICE, type HsmFileState } from './hsm/hsm.js'
export {
  GuestAccessError,
  type GuestAccess,
  type GuestAccessDir,
  type GuestAccessFailure,
  type GuestAccessType,
} from './hypervisor/io.js'
export {
  DEFAULT_INVENTORY,
  defineInventory,
  type Cstate,
  type HostInventory,
  type HostMmioDevice,
  type HostPciDevice,
  type MemRange,
  type PciBar,
  type Pstate,
  type VmSlotConfig,
} from './hypervisor/inventory.js'
export type { EptRegion } from './hypervisor/ept.js'
export type { GsiState, LineState, MsiDelivery } from './hypervisor/irqchip.js'
export type {
  AssignedMmioDev,
  AssignedPciDev,
  IntxRemap,
  MmioResource,
  PassthroughTables,
  VirtualDevice,
} from './hypervisor/passthrough.js'
export type { VmState } from './hypervisor/vm.js'
export type {
  IntrMonitorState,
  SimInspector,
  SlotInfo,
  SlotStateName,
  VcpuInfo,
  VmInfo,
} from './inspect.js'
