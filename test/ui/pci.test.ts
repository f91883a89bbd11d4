// The --json form of PCI records: packed BDFs and IDs become the text users type, and
// nothing else in the record changes.

import { describe, expect, it } from 'vitest'
import { formatBdf, packBdf } from '../../src/core/parse/bdf.js'
import { DEFAULT_INVENTORY } from '../../src/core/sim/hypervisor/inventory.js'
import { hostInventoryJson, pciText } from '../../src/ui/pci.js'
import { vmJson } from '../../src/ui/vm.js'

describe('pciText', () => {
  it('turns bdf, phys and virt into bb:dd.f, IDs into fixed-width hex', () => {
    expect(
      pciText({
        bdf: packBdf({ bus: 0, dev: 0x14, func: 0 }),
        vendor: 0x8086,
        device: 0x9ded,
        classCode: 0x0c0330,
        name: 'USB 3.1 xHCI',
        intxGsi: 16,
      }),
    ).toEqual({
      bdf: '00:14.0',
      vendor: '0x8086',
      device: '0x9ded',
      classCode: '0x0c0330',
      name: 'USB 3.1 xHCI',
      intxGsi: 16,
    })
  })

  it('keeps key order, leaves nested objects and absent keys alone', () => {
    const out = pciText({
      phys: 0xa0,
      virt: 0x18,
      quirk: false,
      intr: { type: 'intx', virtPin: 5, physPin: 16, picPin: false },
    })
    expect(Object.keys(out)).toEqual(['phys', 'virt', 'quirk', 'intr'])
    expect(out).toEqual({
      phys: '00:14.0',
      virt: '00:03.0',
      quirk: false,
      intr: { type: 'intx', virtPin: 5, physPin: 16, picPin: false },
    })
    // RESET_PTDEV_INTR of a device the VM does not know answers with phys only
    expect(pciText({ phys: 0xa0 })).toEqual({ phys: '00:14.0' })
  })

  it('is idempotent: text already converted stays as it is', () => {
    const once = pciText({ phys: 0xa0, virt: 0x18, vendor: 0x10 })
    expect(pciText(once)).toEqual(once)
  })
})

describe('whole results', () => {
  it('host devices: every function, in inventory order', () => {
    const wire = {
      pcpus: 4,
      userVmAffinity: '0xe',
      pci: DEFAULT_INVENTORY.pci.map((d) => ({
        ...d,
        bridge: d.bridge ?? false,
        bars: d.bars.map((b) => ({ ...b, base: `0x${b.base.toString(16)}`, size: '0x1' })),
      })),
      mmio: [],
    }
    const json = hostInventoryJson(wire)
    expect(json.pci.map((d) => d.bdf)).toEqual(DEFAULT_INVENTORY.pci.map((d) => formatBdf(d.bdf)))
    expect(json.pci.every((d) => /^0x[0-9a-f]{4}$/.test(d.vendor))).toBe(true)
    expect(json.pci.every((d) => /^0x[0-9a-f]{6}$/.test(d.classCode))).toBe(true)
    expect(json.pci[0]!.bars).toEqual(wire.pci[0]!.bars)
  })

  it('a VM: its ptdevs and vdevs, nothing else', () => {
    const vm = {
      name: 'demo',
      ptdevs: [{ phys: 0xfe, virt: 0x28, quirk: false }],
      vdevs: [{ vendor: 0x1af4, device: 0x110, legacyId: 0, slot: '0x20', ioAddr: [], ioSize: [] }],
      irqfds: [{ id: 1, msiAddr: '0xfee01000', msiData: '0x32', signals: 0 }],
    }
    expect(vmJson(vm as never)).toEqual({
      ...vm,
      ptdevs: [{ phys: '00:1f.6', virt: '00:05.0', quirk: false }],
      vdevs: [
        { vendor: '0x1af4', device: '0x0110', legacyId: 0, slot: '0x20', ioAddr: [], ioSize: [] },
      ],
    })
  })
})
