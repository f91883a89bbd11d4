// The VM manager's events, one call per change it made (after the ioctl succeeded): what
// each event says of a VM, a device or an eventfd, in the words the commands use (BDFs
// as 00:03.0, addresses in hex). Without a bus (tests of the manager alone) nothing is sent.

import type { EventAttributes, EventBus, EventType } from '../daemon/events.js'
import { formatBdf } from '../parse/bdf.js'
import type { IoeventfdSpec, IrqfdSpec, PtdevSpec } from './spec.js'

interface Vm {
  name: string
  vmid: number
}

const hex = (v: bigint | number) => `0x${v.toString(16)}`

export class VmEvents {
  constructor(private readonly bus: EventBus | undefined) {}

  private emit(type: EventType, action: string, vm: Vm, attributes: EventAttributes = {}): void {
    this.bus?.emit({ type, action, vm: vm.name, vmid: vm.vmid, attributes })
  }

  /** created, started, paused, reset, destroyed: hsmd's own VMs. */
  vm(vm: Vm, action: string, attributes: EventAttributes = {}): void {
    this.emit('vm', action, vm, { owner: 'hsmd', ...attributes })
  }

  /** The default client (acrn-dm's role), made with the VM and gone with it (§2.2). */
  ioreqClient(vm: Vm, created: boolean): void {
    this.emit('ioreq-client', created ? 'created' : 'destroyed', vm, { client: 'acrndm' })
  }

  vdev(
    vm: Vm,
    created: boolean,
    dev: { vendor: number; device: number; legacyId: number; slot: bigint },
  ): void {
    this.emit('vdev', created ? 'created' : 'destroyed', vm, {
      vendor: hex(dev.vendor),
      device: hex(dev.device),
      ...(dev.legacyId ? { legacyId: dev.legacyId } : {}),
      slot: hex(dev.slot),
    })
  }

  mmiodev(vm: Vm, assigned: boolean, dev: { devName: string; res: { gpa: bigint }[] }): void {
    this.emit('mmiodev', assigned ? 'assigned' : 'deassigned', vm, {
      name: dev.devName,
      gpa: hex(dev.res[0]?.gpa ?? 0n),
    })
  }

  ptdev(vm: Vm, assigned: boolean, dev: Pick<PtdevSpec, 'phys' | 'virt'>): void {
    this.emit('ptdev', assigned ? 'assigned' : 'deassigned', vm, {
      phys: formatBdf(dev.phys),
      virt: formatBdf(dev.virt),
    })
  }

  ioeventfd(vm: Vm, added: boolean, e: IoeventfdSpec & { id: number }): void {
    this.emit('ioeventfd', added ? 'added' : 'removed', vm, {
      id: e.id,
      space: e.pio ? 'pio' : 'mmio',
      addr: hex(e.addr),
      len: e.len,
      ...(e.datamatch !== undefined ? { datamatch: hex(e.datamatch) } : {}),
    })
  }

  irqfd(vm: Vm, added: boolean, q: IrqfdSpec & { id: number }): void {
    this.emit('irqfd', added ? 'added' : 'removed', vm, {
      id: q.id,
      msiAddr: hex(q.msiAddr),
      msiData: hex(q.msiData),
    })
  }
}
