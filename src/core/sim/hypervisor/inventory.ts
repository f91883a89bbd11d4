// The host the simulated hypervisor runs on: pCPUs, physical memory map, PCI and MMIO
// devices, ACPI Px/Cx tables and the VM slots of the scenario. Everything the hypervisor
// model checks a request against (Appendix A) comes from here, so a test can describe
// the board it needs; DEFAULT_INVENTORY is a small four-core Whiskey Lake NUC.

import { packBdf } from '../../parse/bdf.js'

export interface PciBar {
  /** BAR index 0..5 (a 64-bit BAR occupies index and index + 1). */
  readonly index: number
  readonly kind: 'mem32' | 'mem64' | 'io'
  readonly base: bigint
  readonly size: bigint
  readonly prefetchable?: boolean
}

export interface HostPciDevice {
  /** Packed bus<<8 | dev<<3 | func, as `phys_bdf` carries it. */
  readonly bdf: number
  readonly vendor: number
  readonly device: number
  /** 24-bit class code: class<<16 | subclass<<8 | prog-if. */
  readonly classCode: number
  readonly name: string
  readonly bars: readonly PciBar[]
  /** INTx pin (1 = INTA#, 0 = none) and the host GSI it is routed to. */
  readonly intxPin: number
  readonly intxGsi: number
  /** Bridges cannot be assigned to a User VM (vpci_assign_pcidev). */
  readonly bridge?: boolean
}

export interface HostMmioDevice {
  /** At most 8 bytes, as `acrn_mmiodev.name` carries it (an ACPI HID). */
  readonly name: string
  readonly base: bigint
  readonly size: bigint
}

export interface MemRange {
  readonly base: bigint
  readonly size: bigint
}

/** One ACPI _PSS entry, as `struct acrn_pstate_data` reports it (§7.8). */
export interface Pstate {
  readonly coreFrequency: number
  readonly power: number
  readonly transitionLatency: number
  readonly busMasterLatency: number
  readonly control: number
  readonly status: number
}

/** One ACPI _CST entry, as `struct acrn_cstate_data` reports it (§7.8). */
export interface Cstate {
  readonly spaceId: number
  readonly bitWidth: number
  readonly bitOffset: number
  readonly accessSize: number
  readonly address: bigint
  readonly type: number
  readonly latency: number
  readonly power: number
}

/** A statically configured post-launched VM slot: CREATE_VM with this name lands here (A.1). */
export interface VmSlotConfig {
  readonly name: string
  readonly vmid: number
  /** The configured pCPU affinity; CREATE_VM may ask for a subset (A.2). */
  readonly cpuAffinity: bigint
}

export interface HostInventory {
  readonly cpuModel: string
  readonly pcpus: number
  readonly tscKhz: number
  /** Width of host and guest physical addresses; EPT ranges must stay below 2^bits. */
  readonly physAddrBits: number
  /** System RAM (ordinary, refcounted pages in the Service VM). */
  readonly ram: readonly MemRange[]
  /** Memory the hypervisor keeps for itself: never a valid Service-VM range (A.3). */
  readonly hypervisorRam: MemRange
  /** Pins of the physical IOAPICs: valid host GSIs for INTx remapping. */
  readonly ioapicPins: number
  readonly pci: readonly HostPciDevice[]
  readonly mmio: readonly HostMmioDevice[]
  readonly px: readonly Pstate[]
  readonly cx: readonly Cstate[]
  /** CONFIG_MAX_VM_NUM: VM slots including the Service VM (vmid 0). */
  readonly maxVms: number
  /** Affinity of a dynamically allocated slot (unknown or empty name). */
  readonly postLaunchedAffinity: bigint
  readonly vmSlots: readonly VmSlotConfig[]
  /** GSIs of a User VM: the pins of its virtual IOAPIC (VM_MAX_GSI). */
  readonly gsiCount: number
}

const bdf = (bus: number, dev: number, func: number) => packBdf({ bus, dev, func })
const KiB = 1024n
const MiB = 1024n * KiB
const GiB = 1024n * MiB

const ratio = (mhz: number) => Math.floor(mhz / 100) << 8

export const DEFAULT_INVENTORY: HostInventory = Object.freeze<HostInventory>({
  cpuModel: 'Intel(R) Core(TM) i7-8665U CPU @ 1.90GHz',
  pcpus: 4,
  tscKhz: 1_900_000,
  physAddrBits: 39,
  ram: [
    { base: 0x0n, size: 0x9f000n },
    { base: 0x100000n, size: 2n * GiB - 0x100000n },
    { base: 4n * GiB, size: 14n * GiB },
  ],
  hypervisorRam: { base: 0x7000_0000n, size: 64n * MiB },
  ioapicPins: 120,
  pci: [
    {
      bdf: bdf(0, 0, 0),
      vendor: 0x8086,
      device: 0x3e34,
      classCode: 0x060000,
      name: 'Host bridge',
      bars: [],
      intxPin: 0,
      intxGsi: 0,
      bridge: true,
    },
    {
      bdf: bdf(0, 2, 0),
      vendor: 0x8086,
      device: 0x3ea0,
      classCode: 0x030000,
      name: 'UHD Graphics 620',
      bars: [
        { index: 0, kind: 'mem64', base: 0xa000_0000n, size: 16n * MiB },
        { index: 2, kind: 'mem64', base: 0x9000_0000n, size: 256n * MiB, prefetchable: true },
        { index: 4, kind: 'io', base: 0x3000n, size: 0x40n },
      ],
      intxPin: 1,
      intxGsi: 16,
    },
    {
      bdf: bdf(0, 0x14, 0),
      vendor: 0x8086,
      device: 0x9ded,
      classCode: 0x0c0330,
      name: 'USB 3.1 xHCI',
      bars: [{ index: 0, kind: 'mem64', base: 0xa110_0000n, size: 64n * KiB }],
      intxPin: 1,
      intxGsi: 16,
    },
    {
      bdf: bdf(0, 0x16, 0),
      vendor: 0x8086,
      device: 0x9de0,
      classCode: 0x078000,
      name: 'Management Engine',
      bars: [{ index: 0, kind: 'mem64', base: 0xa113_0000n, size: 4n * KiB }],
      intxPin: 1,
      intxGsi: 16,
    },
    {
      bdf: bdf(0, 0x17, 0),
      vendor: 0x8086,
      device: 0x9dd3,
      classCode: 0x010601,
      name: 'SATA AHCI',
      bars: [
        { index: 0, kind: 'mem32', base: 0xa112_0000n, size: 8n * KiB },
        { index: 5, kind: 'mem32', base: 0xa113_3000n, size: 2n * KiB },
      ],
      intxPin: 1,
      intxGsi: 16,
    },
    {
      bdf: bdf(0, 0x1c, 0),
      vendor: 0x8086,
      device: 0x9dbc,
      classCode: 0x060400,
      name: 'PCIe root port',
      bars: [],
      intxPin: 1,
      intxGsi: 16,
      bridge: true,
    },
    {
      bdf: bdf(0, 0x1f, 3),
      vendor: 0x8086,
      device: 0x9dc8,
      classCode: 0x040300,
      name: 'HD Audio',
      bars: [
        { index: 0, kind: 'mem64', base: 0xa112_8000n, size: 16n * KiB },
        { index: 4, kind: 'mem64', base: 0xa100_0000n, size: 1n * MiB },
      ],
      intxPin: 1,
      intxGsi: 17,
    },
    {
      bdf: bdf(0, 0x1f, 6),
      vendor: 0x8086,
      device: 0x15be,
      classCode: 0x020000,
      name: 'Ethernet I219-V',
      bars: [{ index: 0, kind: 'mem32', base: 0xa114_0000n, size: 128n * KiB }],
      intxPin: 1,
      intxGsi: 18,
    },
    {
      bdf: bdf(1, 0, 0),
      vendor: 0x144d,
      device: 0xa808,
      classCode: 0x010802,
      name: 'NVMe SSD 970 EVO',
      bars: [{ index: 0, kind: 'mem64', base: 0xa120_0000n, size: 16n * KiB }],
      intxPin: 1,
      intxGsi: 16,
    },
    {
      bdf: bdf(2, 0, 0),
      vendor: 0x8086,
      device: 0x1539,
      classCode: 0x020000,
      name: 'Ethernet I211',
      bars: [
        { index: 0, kind: 'mem32', base: 0xa130_0000n, size: 128n * KiB },
        { index: 2, kind: 'io', base: 0x2000n, size: 0x20n },
        { index: 3, kind: 'mem32', base: 0xa132_0000n, size: 16n * KiB },
      ],
      intxPin: 1,
      intxGsi: 19,
    },
  ],
  mmio: [
    { name: 'MSFT0101', base: 0xfed4_0000n, size: 0x5000n },
    { name: 'INT34BB', base: 0xfd6a_0000n, size: 0x1_0000n },
  ],
  px: [1901, 1900, 1800, 1600, 1400, 1200, 1000, 800].map((mhz, i) => ({
    coreFrequency: mhz,
    power: [15000, 15000, 13600, 11700, 9900, 8300, 6800, 5400][i]!,
    transitionLatency: 10,
    busMasterLatency: 10,
    control: ratio(mhz === 1901 ? 4800 : mhz),
    status: ratio(mhz === 1901 ? 4800 : mhz),
  })),
  cx: [
    {
      spaceId: 0x7f,
      bitWidth: 1,
      bitOffset: 2,
      accessSize: 1,
      address: 0x00n,
      type: 1,
      latency: 1,
      power: 1000,
    },
    {
      spaceId: 0x7f,
      bitWidth: 1,
      bitOffset: 2,
      accessSize: 1,
      address: 0x21n,
      type: 2,
      latency: 151,
      power: 500,
    },
    {
      spaceId: 0x7f,
      bitWidth: 1,
      bitOffset: 2,
      accessSize: 1,
      address: 0x60n,
      type: 3,
      latency: 1034,
      power: 200,
    },
  ],
  maxVms: 8,
  postLaunchedAffinity: 0b1110n,
  vmSlots: [],
  gsiCount: 48,
})

/** The default inventory with some fields replaced; checked for the limits the models rely on. */
export function defineInventory(overrides: Partial<HostInventory> = {}): HostInventory {
  const inventory: HostInventory = { ...DEFAULT_INVENTORY, ...overrides }
  if (inventory.pcpus < 1 || inventory.pcpus > 64) {
    throw new RangeError(`inventory: ${inventory.pcpus} pCPUs (1..64 supported)`)
  }
  if (inventory.maxVms < 2 || inventory.maxVms > 256) {
    throw new RangeError(
      `inventory: maxVms ${inventory.maxVms} (2..256: the Service VM and one User VM at least)`,
    )
  }
  if (inventory.physAddrBits < 32 || inventory.physAddrBits > 52) {
    throw new RangeError(`inventory: physAddrBits ${inventory.physAddrBits} (32..52)`)
  }
  const all = (1n << BigInt(inventory.pcpus)) - 1n
  if ((inventory.postLaunchedAffinity & ~all) !== 0n || inventory.postLaunchedAffinity === 0n) {
    throw new RangeError('inventory: postLaunchedAffinity names pCPUs the host does not have')
  }
  for (const slot of inventory.vmSlots) {
    if (slot.vmid < 1 || slot.vmid >= inventory.maxVms) {
      throw new RangeError(
        `inventory: VM slot ${slot.name} has vmid ${slot.vmid} outside 1..${inventory.maxVms - 1}`,
      )
    }
    if ((slot.cpuAffinity & ~all) !== 0n || slot.cpuAffinity === 0n) {
      throw new RangeError(`inventory: VM slot ${slot.name} names pCPUs the host does not have`)
    }
  }
  for (const dev of inventory.mmio) {
    if (new TextEncoder().encode(dev.name).length > 8) {
      throw new RangeError(`inventory: MMIO device name ${dev.name} is longer than 8 bytes`)
    }
  }
  return Object.freeze(inventory)
}
