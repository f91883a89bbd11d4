// Device pass-through and virtual devices on the hypervisor side (§7.3-§7.7): which
// physical PCI function and MMIO device belongs to which VM (each to at most one),
// INTx remappings with their interrupt counts (what the interrupt monitor reports),
// and the vdevs created by HC_CREATE_VDEV.

import { Errno } from '../../abi/errno.js'
import {
  GsiOp,
  IntrMonitorCmd,
  INTR_MONITOR_BUFFER_MAX,
  MemAccess,
  MemType,
  PAGE_SIZE,
  PtdevIrq,
} from '../../abi/constants.js'
import { decode, offsetOf } from '../../abi/layout.js'
import {
  acrn_intr_monitor,
  acrn_mmiodev,
  acrn_pcidev,
  acrn_ptdev_irq,
  acrn_vdev,
} from '../../abi/structs.js'
import type { Hypervisor } from './hypervisor.js'
import type { HostMmioDevice } from './inventory.js'
import { VPIC_PINS } from './irqchip.js'
import type { HvVm } from './vm.js'

export interface AssignedPciDev {
  readonly physBdf: number
  readonly virtBdf: number
  readonly type: number
  readonly intrLine: number
  readonly intrPin: number
  /** The guest BAR values DEASSIGN/ASSIGN carried. */
  readonly bars: readonly number[]
}

export interface MmioResource {
  readonly userVmPa: bigint
  readonly serviceVmPa: bigint
  readonly size: bigint
  readonly memType: bigint
}

export interface AssignedMmioDev {
  readonly name: string
  /** The host device of the inventory the resources belong to. */
  readonly host: HostMmioDevice
  readonly res: readonly MmioResource[]
}

export interface IntxRemap {
  readonly virtBdf: number
  readonly physBdf: number
  readonly virtPin: number
  readonly physPin: number
  readonly isPicPin: boolean
  /** Physical interrupts taken on physPin while remapped (reported by the interrupt monitor). */
  count: number
}

export interface VirtualDevice {
  readonly id: bigint
  readonly vendor: number
  readonly device: number
  readonly legacyId: number
  readonly slot: bigint
  readonly ioAddr: readonly number[]
  readonly ioSize: readonly number[]
}

/** Who owns what: the read-only pass-through tables of the inspection API. */
export interface PassthroughTables {
  readonly pci: ReadonlyArray<AssignedPciDev & { readonly vmid: number }>
  readonly mmio: ReadonlyArray<AssignedMmioDev & { readonly vmid: number }>
  readonly intx: ReadonlyArray<Readonly<IntxRemap> & { readonly vmid: number }>
  readonly vdevs: ReadonlyArray<VirtualDevice & { readonly vmid: number }>
}

// EPT memory types as acrn_mmiodev.res.mem_type carries them (bits 5:3), mapped to the
// region attribute bits the rest of the model uses.
const EPT_MT_TO_ATTR: Readonly<Record<number, number>> = {
  0: MemType.UC,
  1: MemType.WC,
  4: MemType.WT,
  5: MemType.WP,
  6: MemType.WB,
}

const MONITOR_CMD = offsetOf(acrn_intr_monitor, 'cmd')
const MONITOR_BUF_CNT = offsetOf(acrn_intr_monitor, 'buf_cnt')
const MONITOR_BUFFER = offsetOf(acrn_intr_monitor, 'buffer')

const aligned = (v: bigint) => v % BigInt(PAGE_SIZE) === 0n

function num(value: unknown): number {
  return typeof value === 'bigint' ? Number(value) : (value as number)
}

export class Passthrough {
  /** Physical BDF -> the vmid it is assigned to. */
  private readonly pciOwner = new Map<number, number>()
  /** Inventory MMIO device -> the vmid it is assigned to. */
  private readonly mmioOwner = new Map<HostMmioDevice, number>()

  constructor(private readonly hv: Hypervisor) {}

  private read(pa: bigint, size: number): Uint8Array | undefined {
    return this.hv.memory.bytes(Number(pa), size)
  }

  /** HC_ASSIGN_PCIDEV: only while the VM is CREATED; the function must be a free endpoint. */
  assignPcidev(vm: HvVm, p2: bigint): number {
    if (vm.state !== 'created') return -Errno.EINVAL
    const bytes = this.read(p2, acrn_pcidev.size)
    if (!bytes) return -Errno.EINVAL
    const dev = decode(acrn_pcidev, bytes)
    const physBdf = num(dev.phys_bdf)
    const virtBdf = num(dev.virt_bdf)
    const host = this.hv.inventory.pci.find((d) => d.bdf === physBdf)
    // Not present, a bridge, or already assigned to a VM (owned by someone other than the Service VM).
    if (!host || host.bridge || this.pciOwner.has(physBdf)) return -Errno.ENODEV
    if (vm.pci.has(virtBdf)) return -Errno.EINVAL
    vm.pci.set(
      virtBdf,
      Object.freeze({
        physBdf,
        virtBdf,
        type: num(dev.type),
        intrLine: num(dev.intr_line),
        intrPin: num(dev.intr_pin),
        bars: Object.freeze((dev.bar as number[]).slice()),
      }),
    )
    this.pciOwner.set(physBdf, vm.vmid)
    return 0
  }

  /** HC_DEASSIGN_PCIDEV: the function must be assigned to this VM at that virtual BDF. */
  deassignPcidev(vm: HvVm, p2: bigint): number {
    if (vm.state === 'powered-off') return -Errno.EINVAL
    const bytes = this.read(p2, acrn_pcidev.size)
    if (!bytes) return -Errno.EINVAL
    const dev = decode(acrn_pcidev, bytes)
    const assigned = vm.pci.get(num(dev.virt_bdf))
    if (!assigned || assigned.physBdf !== num(dev.phys_bdf)) return -Errno.ENODEV
    this.releasePci(vm, assigned)
    return 0
  }

  private releasePci(vm: HvVm, dev: AssignedPciDev): void {
    vm.pci.delete(dev.virtBdf)
    this.pciOwner.delete(dev.physBdf)
    // Its INTx remappings go with it.
    for (let i = vm.intx.length - 1; i >= 0; i--) {
      if (vm.intx[i]!.physBdf === dev.physBdf) vm.intx.splice(i, 1)
    }
  }

  private decodeMmiodev(p2: bigint): { name: string; res: MmioResource[] } | undefined {
    const bytes = this.read(p2, acrn_mmiodev.size)
    if (!bytes) return undefined
    const dev = decode(acrn_mmiodev, bytes)
    const nameBytes = dev.name as Uint8Array
    const end = nameBytes.indexOf(0)
    const name = new TextDecoder().decode(nameBytes.subarray(0, end < 0 ? 8 : end))
    const res = (dev.res as Array<Record<string, bigint>>).map((r) => ({
      userVmPa: r.user_vm_pa!,
      serviceVmPa: r.service_vm_pa!,
      size: r.size!,
      memType: r.mem_type!,
    }))
    return { name, res }
  }

  private hostMmioFor(res: readonly MmioResource[]): HostMmioDevice | undefined {
    const first = res.find((r) => r.size > 0n)
    if (!first) return undefined
    return this.hv.inventory.mmio.find(
      (d) => first.serviceVmPa >= d.base && first.serviceVmPa + first.size <= d.base + d.size,
    )
  }

  /**
   * HC_ASSIGN_MMIODEV: only while the VM is CREATED; every resource page aligned; the
   * resources must belong to a free MMIO device of the host. Maps them into the EPT.
   */
  assignMmiodev(vm: HvVm, p2: bigint): number {
    if (vm.state !== 'created') return -Errno.EINVAL
    const dev = this.decodeMmiodev(p2)
    if (!dev) return -Errno.EINVAL
    const used = dev.res.filter((r) => r.size > 0n)
    if (!used.every((r) => aligned(r.userVmPa) && aligned(r.serviceVmPa) && aligned(r.size))) {
      return -Errno.EINVAL
    }
    const host = this.hostMmioFor(used)
    if (!host || this.mmioOwner.has(host)) return -Errno.EINVAL
    const limit = this.hv.memory.limit
    if (used.some((r) => Number(r.userVmPa + r.size) > limit)) return -Errno.EINVAL
    for (const r of used) {
      const memType = EPT_MT_TO_ATTR[Number((r.memType >> 3n) & 0x7n)] ?? MemType.UC
      vm.ept.add(Number(r.userVmPa), Number(r.serviceVmPa), Number(r.size), memType | MemAccess.RWX)
    }
    this.mmioOwner.set(host, vm.vmid)
    vm.mmio.push(Object.freeze({ name: dev.name, host, res: Object.freeze(used) }))
    return 0
  }

  /** HC_DEASSIGN_MMIODEV: the device must be assigned to this VM; unmaps its resources. */
  deassignMmiodev(vm: HvVm, p2: bigint): number {
    if (vm.state === 'powered-off') return -Errno.EINVAL
    const dev = this.decodeMmiodev(p2)
    if (!dev) return -Errno.EINVAL
    const host = this.hostMmioFor(dev.res)
    const index = vm.mmio.findIndex((m) => m.host === host)
    if (!host || index < 0) return -Errno.EINVAL
    for (const r of vm.mmio[index]!.res) vm.ept.del(Number(r.userVmPa), Number(r.size))
    vm.mmio.splice(index, 1)
    this.mmioOwner.delete(host)
    return 0
  }

  private decodePtdev(vm: HvVm, p2: bigint) {
    const bytes = this.read(p2, acrn_ptdev_irq.size)
    if (!bytes) return undefined
    const irq = decode(acrn_ptdev_irq, bytes)
    const intx = irq.intx as Record<string, number>
    const virtBdf = num(irq.virt_bdf)
    const physBdf = num(irq.phys_bdf)
    const dev = vm.pci.get(virtBdf)
    return {
      type: num(irq.type),
      virtBdf,
      physBdf,
      virtPin: intx.virt_pin!,
      physPin: intx.phys_pin!,
      isPicPin: intx.is_pic_pin! !== 0,
      deviceMatches: dev !== undefined && dev.physBdf === physBdf,
    }
  }

  /**
   * HC_SET_PTDEV_INTR: INTx only (MSI pass-through goes through the vPCI capability, not
   * this call); the device must be assigned to the VM; pins in range; a physical pin is
   * remapped to one VM at a time. Failures are -1.
   */
  setPtdevIntr(vm: HvVm, p2: bigint): number {
    if (vm.state === 'powered-off') return -1
    const irq = this.decodePtdev(vm, p2)
    if (!irq || irq.type !== PtdevIrq.INTX || !irq.deviceMatches) return -1
    if (irq.virtPin >= (irq.isPicPin ? VPIC_PINS : vm.irq.gsiCount)) return -1
    if (irq.physPin >= this.hv.inventory.ioapicPins) return -1
    for (const other of this.hv.userVms()) {
      const existing = other.intx.findIndex((e) => e.physPin === irq.physPin)
      if (existing < 0) continue
      if (other !== vm) return -1
      other.intx.splice(existing, 1)
    }
    vm.intx.push({
      virtBdf: irq.virtBdf,
      physBdf: irq.physBdf,
      virtPin: irq.virtPin,
      physPin: irq.physPin,
      isPicPin: irq.isPicPin,
      count: 0,
    })
    return 0
  }

  /** HC_RESET_PTDEV_INTR: same checks; removing a remapping that is not there succeeds. */
  resetPtdevIntr(vm: HvVm, p2: bigint): number {
    if (vm.state === 'powered-off') return -1
    const irq = this.decodePtdev(vm, p2)
    if (!irq || irq.type !== PtdevIrq.INTX || !irq.deviceMatches) return -1
    const index = vm.intx.findIndex((e) => e.virtPin === irq.virtPin && e.isPicPin === irq.isPicPin)
    if (index >= 0) vm.intx.splice(index, 1)
    return 0
  }

  /** HC_CREATE_VDEV: one vdev per slot. */
  createVdev(vm: HvVm, p2: bigint): number {
    if (vm.state === 'powered-off') return -Errno.EINVAL
    const bytes = this.read(p2, acrn_vdev.size)
    if (!bytes) return -Errno.EINVAL
    const v = decode(acrn_vdev, bytes)
    const id = v.id as { value: bigint; fields: Record<string, number> }
    const slot = v.slot as bigint
    if (vm.vdevs.has(slot)) return -Errno.EINVAL
    vm.vdevs.set(
      slot,
      Object.freeze({
        id: id.value,
        vendor: id.fields.vendor!,
        device: id.fields.device!,
        legacyId: id.fields.legacy_id!,
        slot,
        ioAddr: Object.freeze((v.io_addr as number[]).slice()),
        ioSize: Object.freeze((v.io_size as number[]).slice()),
      }),
    )
    return 0
  }

  /** HC_DESTROY_VDEV: the slot must hold a vdev. */
  destroyVdev(vm: HvVm, p2: bigint): number {
    if (vm.state === 'powered-off') return -Errno.EINVAL
    const bytes = this.read(p2, acrn_vdev.size)
    if (!bytes) return -Errno.EINVAL
    const slot = decode(acrn_vdev, bytes).slot as bigint
    return vm.vdevs.delete(slot) ? 0 : -Errno.EINVAL
  }

  /**
   * HC_VM_INTR_MONITOR(vmid, page address), handled synchronously (§7.3): GET_DATA fills
   * (physical IRQ, count) pairs up to buf_cnt u64 entries; DELAY_INT sets the delay.
   */
  intrMonitor(vm: HvVm, p2: bigint): number {
    if (vm.state === 'powered-off') return -Errno.EINVAL
    const page = this.read(p2, acrn_intr_monitor.size)
    if (!page) return -Errno.EINVAL
    const view = new DataView(page.buffer, page.byteOffset, acrn_intr_monitor.size)
    const cmd = view.getUint32(MONITOR_CMD, true)
    const bufCnt = view.getUint32(MONITOR_BUF_CNT, true)
    if (bufCnt > INTR_MONITOR_BUFFER_MAX) return -Errno.EINVAL
    if (cmd === IntrMonitorCmd.GET_DATA) {
      let pos = 0
      for (const e of vm.intx) {
        if (pos + 2 > bufCnt) break
        view.setBigUint64(MONITOR_BUFFER + pos * 8, BigInt(e.physPin), true)
        view.setBigUint64(MONITOR_BUFFER + (pos + 1) * 8, BigInt(e.count), true)
        pos += 2
      }
      view.setUint32(MONITOR_BUF_CNT, pos, true)
      return 0
    }
    if (cmd === IntrMonitorCmd.DELAY_INT) {
      vm.intrDelayMs = view.getBigUint64(MONITOR_BUFFER, true)
      return 0
    }
    return -Errno.EINVAL
  }

  /**
   * A physical interrupt on host GSI `pirq` (not a hypercall: the device raised it).
   * Counted for the interrupt monitor and, while the owner runs, pulsed on its virtual line.
   */
  physicalInterrupt(pirq: number): boolean {
    for (const vm of this.hv.userVms()) {
      const e = vm.intx.find((x) => x.physPin === pirq)
      if (!e) continue
      e.count++
      if (vm.state === 'running') vm.irq.setIrqline(e.virtPin, GsiOp.RAISING_PULSE, vm.execution)
      return true
    }
    return false
  }

  /** At VM destroy, devices return to the Service VM. */
  releaseAll(vm: HvVm): void {
    for (const dev of [...vm.pci.values()]) this.releasePci(vm, dev)
    for (const dev of vm.mmio) this.mmioOwner.delete(dev.host)
    vm.mmio.length = 0
    vm.intx.length = 0
  }

  tables(): PassthroughTables {
    const pci = []
    const mmio = []
    const intx = []
    const vdevs = []
    for (const vm of this.hv.userVms()) {
      for (const d of vm.pci.values()) pci.push(Object.freeze({ ...d, vmid: vm.vmid }))
      for (const d of vm.mmio) mmio.push(Object.freeze({ ...d, vmid: vm.vmid }))
      for (const d of vm.intx) intx.push(Object.freeze({ ...d, vmid: vm.vmid }))
      for (const d of vm.vdevs.values()) vdevs.push(Object.freeze({ ...d, vmid: vm.vmid }))
    }
    return Object.freeze({ pci, mmio, intx, vdevs })
  }
}
