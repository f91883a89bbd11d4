// PCI values in --json output, written the way users type them: a function as `00:14.0`
// (what --phys takes and the tables print), vendor and device IDs as `0x8086`, a class
// code as `0x0c0330`. The daemon's wire keeps the packed numbers the ACRN structs carry;
// this is the one place that turns them into text, so that every command's JSON agrees
// and jq needs no bit arithmetic.

import type { Wire } from '../core/daemon/protocol.js'
import { formatBdf } from '../core/parse/bdf.js'
import { formatClassCode, formatPciId } from '../core/parse/pci-id.js'
import type { HostInventoryView } from '../core/vmm/platform.js'

/** Fields that hold a packed bus<<8 | dev<<3 | func. */
type BdfKey = 'bdf' | 'phys' | 'virt'
type PciKey = BdfKey | 'vendor' | 'device' | 'classCode'

/** T with its PCI fields as text (optional ones stay optional). */
export type PciText<T> = { [K in keyof T]: K extends PciKey ? string : T[K] }

const TEXT: Record<PciKey, (v: number) => string> = {
  bdf: (v) => formatBdf(v),
  phys: (v) => formatBdf(v),
  virt: (v) => formatBdf(v),
  vendor: formatPciId,
  device: formatPciId,
  classCode: formatClassCode,
}

/**
 * One PCI record (a host function, a ptdev, a vdev) with its top-level PCI fields as text.
 * Only for objects known to be PCI records: a `device` elsewhere may mean something else.
 */
export function pciText<T extends object>(record: T): PciText<T> {
  return Object.fromEntries(
    Object.entries(record).map(([key, value]) => [
      key,
      typeof value === 'number' && Object.hasOwn(TEXT, key) ? TEXT[key as PciKey](value) : value,
    ]),
  ) as PciText<T>
}

export type HostInventoryJson = Omit<Wire<HostInventoryView>, 'pci'> & {
  pci: PciText<Wire<HostInventoryView>['pci'][number]>[]
}

export function hostInventoryJson(inventory: Wire<HostInventoryView>): HostInventoryJson {
  return { ...inventory, pci: inventory.pci.map(pciText) }
}
