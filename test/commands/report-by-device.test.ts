// `ioreq report FILE --by device` as a user runs it, on a recording made here byte by byte
// (what each device must show is known exactly; test/core/trace/devices.test.ts covers the
// grouping, test/commands/acrn-dm-report.test.ts a recording of acrn-dm's guest).

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { TraceFileWriter } from '../../src/core/trace/file.js'
import { pciAddr, RECORD_SIZE, packFlags, writeRecord } from '../../src/core/trace/record.js'
import { hsmctl } from '../support/cli.js'
import { expectError } from '../support/hsmd-session.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-by-device-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// VM 1 'dm': 3 bytes to COM1, the hostbridge's IDs, virtio-blk's BAR0 read and a kick in it
const requests: [type: number, addr: bigint, write: boolean, value: bigint, client: number][] = [
  [0, 0x3f8n, true, 0x41n, 0],
  [0, 0x3f8n, true, 0x42n, 0],
  [0, 0x3f8n, true, 0x43n, 0],
  [2, pciAddr(0, 0, 0, 0), false, 0x1275_1275n, 0],
  [2, pciAddr(0, 3, 0, 0x10), false, 0x2001n, 0],
  [0, 0x2010n, true, 0n, 1],
]
const file = join(dir, 'dm.hsmtrace')
{
  const bytes = new Uint8Array(requests.length * RECORD_SIZE)
  const view = new DataView(bytes.buffer)
  requests.forEach(([type, addr, write, value, client], i) =>
    writeRecord(view, i * RECORD_SIZE, {
      t: i + 1,
      addr,
      value,
      latencyNs: 1000 * (i + 1),
      vmid: 1,
      vcpu: 0,
      size: type === 2 ? 4 : 1,
      flags: packFlags(type, write, client, type === 2 ? 4 : 1),
    }),
  )
  const writer = new TraceFileWriter(file, {
    createdAt: '2026-01-01T00:00:00.000Z',
    stoppedAt: '2026-01-01T00:00:01.000Z',
    vms: [{ vmid: 1, name: 'dm' }],
  })
  writer.write(bytes)
  writer.close()
}

const report = (...args: string[]) => hsmctl(['ioreq', 'report', file, '--by', 'device', ...args])

describe('ioreq report --by device', () => {
  it('the table: a line per region, a device’s lines together, a total; notes on stderr', () => {
    const r = report()
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.split('\n')).toEqual([
      expect.stringMatching(/^VM +DEVICE +REGION +COUNT +% +READS +WRITES +AVG +MAX +CLIENT$/),
      expect.stringMatching(/^dm +COM1 +PIO 0x3f8-0x3ff +3 +50\.0 +0 +3 +2\.0us +3\.0us +default$/),
      expect.stringMatching(
        /^dm +PCI 00:03\.0 +PCICFG 00:03\.0 +1 +16\.7 +1 +0 +5\.0us +5\.0us +default$/,
      ),
      expect.stringMatching(
        /^dm +PCI 00:03\.0 +BAR0 PIO 0x2000\+ +1 +16\.7 +0 +1 +6\.0us +6\.0us +ioeventfd$/,
      ),
      expect.stringMatching(
        /^dm +PCI 00:00\.0 hostbridge +PCICFG 00:00\.0 +1 +16\.7 +1 +0 +4\.0us +4\.0us +default$/,
      ),
      expect.stringMatching(/^ +Total +6 +100\.0$/),
      '',
    ])
    expect(r.stderr).toBe(
      'note: BAR0 of 00:03.0 (PIO 0x2000): the guest never sized it in the recording, so requests from its base up to 0x20ff are counted to it\n',
    )
  })

  it('--json: the devices with their regions, the total and the notes', () => {
    const r = report('--json')
    expect(r.code, r.stderr).toBe(0)
    const json = JSON.parse(r.stdout)
    expect(json).toMatchObject({ file, records: 6, seconds: 1, total: 6 })
    expect(json.devices.map((d: { device: string; count: number }) => [d.device, d.count])).toEqual(
      [
        ['COM1', 3],
        ['PCI 00:03.0', 2],
        ['PCI 00:00.0 hostbridge', 1],
      ],
    )
    expect(json.devices[1]).toEqual({
      vm: 'dm',
      vmid: 1,
      device: 'PCI 00:03.0',
      kind: 'pci',
      bdf: '00:03.0',
      ids: null,
      count: 2,
      reads: 1,
      writes: 1,
      latAvgNs: 5500,
      latMaxNs: 6000,
      clients: { default: 1, ioeventfd: 1, kernel: 0 },
      pct: (2 / 6) * 100,
      regions: [
        expect.objectContaining({ region: 'config', where: 'PCICFG 00:03.0', type: 'pcicfg' }),
        expect.objectContaining({ region: 'BAR0', from: '0x2000', to: null, count: 1 }),
      ],
    })
    expect(json.notes).toHaveLength(1)
  })

  it('the filter flags narrow the requests counted', () => {
    const json = JSON.parse(report('--json', '--type', 'pio', '--dir', 'write').stdout)
    expect(json.total).toBe(4)
    expect(json.devices.map((d: { device: string }) => d.device)).toEqual(['COM1', 'PCI 00:03.0'])
  })

  it('formats and flags it does not take are usage errors', () => {
    expectError(
      report('--format', 'csv'),
      2,
      '--by: --by device prints a table (or --json), not csv',
    )
    expectError(report('--by-vcpu'), 2, '--by-vcpu: does not apply to --by device')
    expectError(
      hsmctl(['ioreq', 'report', file, '--by', 'vm']),
      2,
      /Expected --by=vm to be one of: address, device/,
    )
  })
})
