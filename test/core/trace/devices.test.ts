// A recording's requests grouped by device (`ioreq report --by device`): every request in
// exactly one device and region whatever the records (property), PC ports by name, PCI
// functions by the IDs and BARs the guest's config accesses show (sized, unsized, 64-bit,
// moved, a bridge's header), the rest by port or page, with notes saying so.

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { devicesOfRecording } from '../../../src/core/trace/devices.js'
import type { TraceFile } from '../../../src/core/trace/file.js'
import { compileRecordFilter } from '../../../src/core/trace/filter.js'
import { pciAddr, RECORD_SIZE } from '../../../src/core/trace/record.js'
import { arbEvent, pack, type TestEvent } from './records.js'

const file = (events: TestEvent[], vms = [{ vmid: 1, name: 'demo' }]): TraceFile => ({
  header: { createdAt: '2026-01-01T00:00:00.000Z', vms },
  records: pack(events),
  count: events.length,
  partialTail: 0,
})

let clock = 0
const ev = (e: Partial<TestEvent> & Pick<TestEvent, 'type' | 'addr'>): TestEvent => ({
  t: ++clock,
  vmid: 1,
  vcpu: 0,
  write: false,
  client: 0,
  size: 4,
  value: 0n,
  latencyNs: 100,
  ...e,
})
const pio = (port: number, write = false, value = 0n, size: 1 | 2 | 4 = 1) =>
  ev({ type: 0, addr: BigInt(port), write, value, size })
const mmio = (gpa: number, write = false) => ev({ type: 1, addr: BigInt(gpa), write })
const cfg = (dev: number, reg: number, value: number, write = false, size: 1 | 2 | 4 = 4) =>
  ev({ type: 2, addr: pciAddr(0, dev, 0, reg), write, value: BigInt(value), size })

describe('devicesOfRecording', () => {
  it('counts every request once: devices sum to the total, regions to their device', () => {
    fc.assert(
      fc.property(fc.array(arbEvent, { maxLength: 200 }), (events) => {
        const report = devicesOfRecording(file(events))
        expect(report.total).toBe(events.length)
        expect(report.devices.reduce((n, d) => n + d.count, 0)).toBe(events.length)
        for (const d of report.devices) {
          expect(d.regions.reduce((n, r) => n + r.count, 0)).toBe(d.count)
          expect(d.reads + d.writes).toBe(d.count)
        }
      }),
    )
  })

  it('PC ports by their standard names; other ports one by one, MMIO by page, both noted', () => {
    const report = devicesOfRecording(
      file([
        pio(0x3f8, true, 0x41n),
        pio(0x3fd),
        pio(0x40, true),
        pio(0x43, true),
        pio(0x70, true),
        pio(0x71),
        pio(0xcf8, true, 0x80000000n, 4),
        pio(0xcf9, true, 6n),
        pio(0x404, true, 0x2000n, 2),
        pio(0x510, true),
        mmio(0xfed00010),
        mmio(0xc0001004, true),
        mmio(0xc0001ff0),
      ]),
    )
    const summary = report.devices.map((d) => [
      d.device,
      d.kind,
      d.regions.map((r) => r.where),
      d.count,
    ])
    expect(summary).toEqual([
      ['COM1', 'standard', ['PIO 0x3f8-0x3ff'], 2],
      ['MMIO page 0xc0001000', 'page', ['MMIO 0xc0001000-0xc0001fff'], 2],
      ['PIT', 'standard', ['PIO 0x40-0x43'], 2],
      ['RTC', 'standard', ['PIO 0x70-0x71'], 2],
      ['HPET', 'standard', ['MMIO 0xfed00000-0xfed003ff'], 1],
      ['PCI config address', 'standard', ['PIO 0xcf8'], 1],
      ['PM1a control', 'standard', ['PIO 0x404-0x405'], 1],
      ['port 0x510', 'port', ['PIO 0x510'], 1],
      ['reset control', 'standard', ['PIO 0xcf9'], 1],
    ])
    expect(report.devices[0]).toMatchObject({ reads: 1, writes: 1, pct: (2 / 13) * 100 })
    expect(report.notes).toEqual([
      'ports of no known device or BAR are listed one by one',
      "MMIO outside the BARs the recording shows (the guest's config accesses) is grouped by 4 KiB page",
    ])
  })

  it('a PCI function: named by its IDs, its sized BARs’ requests counted to it', () => {
    const report = devicesOfRecording(
      file([
        cfg(3, 0, 0x1001_1af4),
        cfg(3, 0x10, 0x2001), // BAR0: I/O at 0x2000
        cfg(3, 0x10, 0xffffffff, true),
        cfg(3, 0x10, 0x0000ffc1), // 64 ports, a 16-bit decoder
        cfg(3, 0x10, 0x2001, true),
        cfg(3, 0x14, 0x80000000), // BAR1: memory at 0x80000000
        cfg(3, 0x14, 0xffffffff, true),
        cfg(3, 0x14, 0xfffff000), // 4 KiB
        cfg(3, 0x14, 0x80000000, true),
        pio(0x2012, true, 7n),
        pio(0x203f),
        pio(0x2040), // past BAR0
        mmio(0x80000ffc),
        mmio(0x80001000), // past BAR1
      ]),
    )
    const blk = report.devices.find((d) => d.bdf === '00:03.0')!
    expect(blk).toMatchObject({ device: 'PCI 00:03.0 virtio-blk', ids: '1af4:1001', count: 12 })
    expect(blk.regions.map((r) => [r.where, r.count, r.to])).toEqual([
      ['PCICFG 00:03.0', 9, '00:03.0'],
      ['BAR0 PIO 0x2000-0x203f', 2, '0x203f'],
      ['BAR1 MMIO 0x80000000-0x80000fff', 1, '0x80000fff'],
    ])
    expect(report.devices.map((d) => d.device)).toEqual(
      expect.arrayContaining(['port 0x2040', 'MMIO page 0x80001000']),
    )
    expect(report.notes.some((n) => n.startsWith('BAR'))).toBe(false)
  })

  it('an unsized BAR reaches at most 256 ports, and stops at the next BAR; noted', () => {
    const report = devicesOfRecording(
      file([
        cfg(3, 0x10, 0x2001),
        cfg(4, 0x10, 0x2041),
        pio(0x2020, true),
        pio(0x2050, true),
        pio(0x2140, true),
      ]),
    )
    expect(
      report.devices.map((d) => [d.device, d.regions.map((r) => `${r.where} ${r.count}`)]),
    ).toEqual([
      ['PCI 00:03.0', ['PCICFG 00:03.0 1', 'BAR0 PIO 0x2000+ 1']],
      ['PCI 00:04.0', ['PCICFG 00:04.0 1', 'BAR0 PIO 0x2040+ 1']],
      ['port 0x2140', ['PIO 0x2140 1']],
    ])
    expect(report.notes).toContain(
      'BAR0 of 00:03.0 (PIO 0x2000): the guest never sized it in the recording, so requests from its base up to 0x203f are counted to it',
    )
  })

  it('notes for at most 10 unsized BARs, then how many more', () => {
    const events = Array.from({ length: 12 }, (_, dev) => [
      cfg(dev, 0x10, 0x3000 + dev * 0x100 + 1),
      pio(0x3000 + dev * 0x100, true),
    ]).flat()
    const notes = devicesOfRecording(file(events)).notes
    expect(notes).toHaveLength(11)
    expect(notes[0]).toMatch(/^BAR0 of 00:00\.0 \(PIO 0x3000\): the guest never sized it/)
    expect(notes[10]).toBe('... and 2 more BARs the guest never sized')
  })

  it('a BAR the guest moves: requests before the move at the old base, after it at the new', () => {
    const report = devicesOfRecording(
      file([
        cfg(5, 0x10, 0xc0000000), // seen first: held from the start
        cfg(5, 0x10, 0xffffffff, true),
        cfg(5, 0x10, 0xffffe000), // 8 KiB
        mmio(0xc0000100),
        cfg(5, 0x10, 0xd0000000, true), // moved
        mmio(0xc0000100), // nobody's now
        mmio(0xd0001ff0),
      ]),
    )
    const dev = report.devices.find((d) => d.bdf === '00:05.0')!
    expect(dev.regions.map((r) => `${r.where} ${r.count}`)).toEqual([
      'PCICFG 00:05.0 4',
      'BAR0 MMIO 0xc0000000-0xc0001fff 1',
      'BAR0 MMIO 0xd0000000-0xd0001fff 1',
    ])
    expect(report.devices.find((d) => d.kind === 'page')?.device).toBe('MMIO page 0xc0000000')
  })

  it('a 64-bit BAR: base from both registers; a bridge (header type 1) has only two BARs', () => {
    const report = devicesOfRecording(
      file([
        cfg(6, 0x18, 0x0000000c), // BAR2 low: memory, 64-bit, prefetchable
        cfg(6, 0x1c, 0x00000040), // BAR3: its high half
        cfg(6, 0x18, 0xffffffff, true),
        cfg(6, 0x18, 0xffffc00c), // 16 KiB
        cfg(6, 0x18, 0x0000000c, true),
        cfg(8, 0x0c, 0x00010000), // header type 1
        cfg(8, 0x18, 0x00020100), // bus numbers, not a BAR
        mmio(0x40_0000_3ff0),
        mmio(0x0002_0100),
      ]),
    )
    expect(report.devices.find((d) => d.bdf === '00:06.0')!.regions.map((r) => r.where)).toEqual([
      'PCICFG 00:06.0',
      'BAR2 MMIO 0x4000000000-0x4000003fff',
    ])
    expect(report.devices.find((d) => d.bdf === '00:08.0')!.regions.map((r) => r.where)).toEqual([
      'PCICFG 00:08.0',
    ])
  })

  it('the filter narrows what is counted, not what is known: BARs come from all the config requests', () => {
    const events = [cfg(3, 0, 0x1001_1af4), cfg(3, 0x10, 0x2001), pio(0x2010, true)]
    const report = devicesOfRecording(file(events), compileRecordFilter({ types: ['pio'] }))
    expect(report.total).toBe(1)
    expect(report.devices).toMatchObject([
      { device: 'PCI 00:03.0 virtio-blk', count: 1, regions: [{ region: 'BAR0', count: 1 }] },
    ])
  })

  it('devices are per VM, named as the header names the VM', () => {
    const report = devicesOfRecording(
      file(
        [pio(0x3f8, true), { ...pio(0x3f8, true), vmid: 2 }],
        [
          { vmid: 1, name: 'one' },
          { vmid: 2, name: 'two' },
          { vmid: 2, name: 'again' },
        ],
      ),
    )
    expect(report.devices.map((d) => `${d.vm} ${d.device}`)).toEqual([
      'one COM1',
      'two / again COM1',
    ])
  })

  it('an empty recording: no devices', () => {
    expect(devicesOfRecording(file([]))).toEqual({ total: 0, devices: [], notes: [] })
    expect(RECORD_SIZE).toBe(32)
  })
})
