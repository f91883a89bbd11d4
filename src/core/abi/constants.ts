// Constants of include/uapi/linux/acrn.h, keyed by their C names so that the
// conformance test can compare each one with the compiler's value, then grouped
// under domain names for the code that uses them. Kernel-internal and hypervisor
// constants follow, with the spec section they come from.

/** Every object-like macro and enumerator of the UAPI header except the ioctl requests. */
export const UAPI_CONSTANTS = {
  ACRN_IO_REQUEST_MAX: 16,

  ACRN_IOREQ_STATE_PENDING: 0,
  ACRN_IOREQ_STATE_COMPLETE: 1,
  ACRN_IOREQ_STATE_PROCESSING: 2,
  ACRN_IOREQ_STATE_FREE: 3,

  ACRN_IOREQ_TYPE_PORTIO: 0,
  ACRN_IOREQ_TYPE_MMIO: 1,
  ACRN_IOREQ_TYPE_PCICFG: 2,

  ACRN_IOREQ_DIR_READ: 0,
  ACRN_IOREQ_DIR_WRITE: 1,

  ACRN_MEM_ACCESS_RIGHT_MASK: 0x7,
  ACRN_MEM_ACCESS_READ: 0x1,
  ACRN_MEM_ACCESS_WRITE: 0x2,
  ACRN_MEM_ACCESS_EXEC: 0x4,
  ACRN_MEM_ACCESS_RWX: 0x7,

  ACRN_MEM_TYPE_MASK: 0x7c0,
  ACRN_MEM_TYPE_WB: 0x40,
  ACRN_MEM_TYPE_WT: 0x80,
  ACRN_MEM_TYPE_UC: 0x100,
  ACRN_MEM_TYPE_WC: 0x200,
  ACRN_MEM_TYPE_WP: 0x400,

  ACRN_MEMMAP_RAM: 0,
  ACRN_MEMMAP_MMIO: 1,

  ACRN_PTDEV_IRQ_INTX: 0,
  ACRN_PTDEV_IRQ_MSI: 1,
  ACRN_PTDEV_IRQ_MSIX: 2,

  ACRN_PTDEV_QUIRK_ASSIGN: 1 << 0,

  ACRN_MMIODEV_RES_NUM: 3,
  ACRN_PCI_NUM_BARS: 6,

  PMCMD_TYPE_MASK: 0xff,
  ACRN_PMCMD_GET_PX_CNT: 0,
  ACRN_PMCMD_GET_PX_DATA: 1,
  ACRN_PMCMD_GET_CX_CNT: 2,
  ACRN_PMCMD_GET_CX_DATA: 3,

  ACRN_IOEVENTFD_FLAG_PIO: 0x01,
  ACRN_IOEVENTFD_FLAG_DATAMATCH: 0x02,
  ACRN_IOEVENTFD_FLAG_DEASSIGN: 0x04,

  ACRN_IRQFD_FLAG_DEASSIGN: 0x01,

  ACRN_IOCTL_TYPE: 0xa2,
} as const

export const {
  ACRN_IO_REQUEST_MAX,
  ACRN_MMIODEV_RES_NUM,
  ACRN_PCI_NUM_BARS,
  ACRN_IOCTL_TYPE,
  PMCMD_TYPE_MASK,
  ACRN_PTDEV_QUIRK_ASSIGN,
} = UAPI_CONSTANTS

const C = UAPI_CONSTANTS

/** `processed` states of an I/O request slot (§4.1). PENDING is 0: a zeroed page looks pending. */
export const IoreqState = {
  PENDING: C.ACRN_IOREQ_STATE_PENDING,
  COMPLETE: C.ACRN_IOREQ_STATE_COMPLETE,
  PROCESSING: C.ACRN_IOREQ_STATE_PROCESSING,
  FREE: C.ACRN_IOREQ_STATE_FREE,
} as const

export const IoreqType = {
  PORTIO: C.ACRN_IOREQ_TYPE_PORTIO,
  MMIO: C.ACRN_IOREQ_TYPE_MMIO,
  PCICFG: C.ACRN_IOREQ_TYPE_PCICFG,
} as const

export const IoreqDir = {
  READ: C.ACRN_IOREQ_DIR_READ,
  WRITE: C.ACRN_IOREQ_DIR_WRITE,
} as const

export const MemAccess = {
  MASK: C.ACRN_MEM_ACCESS_RIGHT_MASK,
  READ: C.ACRN_MEM_ACCESS_READ,
  WRITE: C.ACRN_MEM_ACCESS_WRITE,
  EXEC: C.ACRN_MEM_ACCESS_EXEC,
  RWX: C.ACRN_MEM_ACCESS_RWX,
} as const

export const MemType = {
  MASK: C.ACRN_MEM_TYPE_MASK,
  WB: C.ACRN_MEM_TYPE_WB,
  WT: C.ACRN_MEM_TYPE_WT,
  UC: C.ACRN_MEM_TYPE_UC,
  WC: C.ACRN_MEM_TYPE_WC,
  WP: C.ACRN_MEM_TYPE_WP,
} as const

export const Memmap = {
  RAM: C.ACRN_MEMMAP_RAM,
  MMIO: C.ACRN_MEMMAP_MMIO,
} as const

export const PtdevIrq = {
  INTX: C.ACRN_PTDEV_IRQ_INTX,
  MSI: C.ACRN_PTDEV_IRQ_MSI,
  MSIX: C.ACRN_PTDEV_IRQ_MSIX,
} as const

export const PmCmd = {
  GET_PX_CNT: C.ACRN_PMCMD_GET_PX_CNT,
  GET_PX_DATA: C.ACRN_PMCMD_GET_PX_DATA,
  GET_CX_CNT: C.ACRN_PMCMD_GET_CX_CNT,
  GET_CX_DATA: C.ACRN_PMCMD_GET_CX_DATA,
} as const

export const IoeventfdFlag = {
  PIO: C.ACRN_IOEVENTFD_FLAG_PIO,
  DATAMATCH: C.ACRN_IOEVENTFD_FLAG_DATAMATCH,
  DEASSIGN: C.ACRN_IOEVENTFD_FLAG_DEASSIGN,
} as const

export const IrqfdFlag = {
  DEASSIGN: C.ACRN_IRQFD_FLAG_DEASSIGN,
} as const

// --- Kernel driver (drivers/virt/acrn/acrn_drv.h) --------------------------------

/** vmid of an fd with no VM (§1.4); also what the hypervisor writes back on a failed create. */
export const ACRN_INVALID_VMID = 0xffff
/** RAM mapping records per VM object, counted over its whole life (§3.4, §2.4). */
export const ACRN_MEM_MAPPING_MAX = 256
export const PAGE_SIZE = 4096
export const PAGE_SHIFT = 12

/**
 * Access widths a trapped request can carry (§4.1): a PIO request's value is 32 bits, an
 * MMIO request's 64.
 */
export const ACCESS_SIZES: Readonly<Record<'pio' | 'mmio', readonly number[]>> = {
  pio: [1, 2, 4],
  mmio: [1, 2, 4, 8],
}

/** `1, 2 or 4`: the widths of ACCESS_SIZES for messages. */
export function accessSizesText(type: 'pio' | 'mmio'): string {
  const sizes = ACCESS_SIZES[type]
  return `${sizes.slice(0, -1).join(', ')} or ${sizes.at(-1)}`
}

/** Per-VM flag bits kept by HSM (§2.1). */
export const VmFlag = {
  DESTROYED: 0,
  CLEARING_IOREQ: 1,
} as const

/** `vm_memory_region_op.type` (§3.2). */
export const MemRegionOp = {
  ADD: 0,
  DEL: 2,
} as const

// --- Hypervisor (acrn-hypervisor acrn_common.h) ------------------------------------

/**
 * vCPUs a VM may have: one ioreq slot each, and HSM scans only slots below vcpu_num
 * without checking it against 16, so the hypervisor's cap is what keeps them apart (§4.1).
 */
export const MAX_VCPUS_PER_VM = ACRN_IO_REQUEST_MAX

/** `acrn_irqline_ops.op`, the high 32 bits of SET_IRQLINE's value (§7.1). */
export const GsiOp = {
  SET_HIGH: 0,
  SET_LOW: 1,
  RAISING_PULSE: 2,
  FALLING_PULSE: 3,
} as const

/** `acrn_intr_monitor.cmd` (§7.3). */
export const IntrMonitorCmd = {
  GET_DATA: 0,
  DELAY_INT: 1,
} as const
/** `acrn_intr_monitor.buffer` holds 48 u64: (pirq, count) pairs for up to 24 devices. */
export const INTR_MONITOR_BUFFER_MAX = 48

/** Hypercall ids (§8): (0x80 << 24) | (group base + offset). */
export const Hypercall = {
  SOS_REMOVE_CPU: 0x80000001,
  CREATE_VM: 0x80000010,
  DESTROY_VM: 0x80000011,
  START_VM: 0x80000012,
  PAUSE_VM: 0x80000013,
  RESET_VM: 0x80000015,
  SET_VCPU_REGS: 0x80000016,
  INJECT_MSI: 0x80000023,
  VM_INTR_MONITOR: 0x80000024,
  SET_IRQLINE: 0x80000025,
  SET_IOREQ_BUFFER: 0x80000030,
  NOTIFY_REQUEST_FINISH: 0x80000031,
  VM_SET_MEMORY_REGIONS: 0x80000042,
  SET_PTDEV_INTR: 0x80000053,
  RESET_PTDEV_INTR: 0x80000054,
  ASSIGN_PCIDEV: 0x80000055,
  DEASSIGN_PCIDEV: 0x80000056,
  ASSIGN_MMIODEV: 0x80000057,
  DEASSIGN_MMIODEV: 0x80000058,
  CREATE_VDEV: 0x80000059,
  DESTROY_VDEV: 0x8000005a,
  PM_GET_CPU_STATE: 0x80000080,
} as const
