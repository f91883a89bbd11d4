// The daemon side: TraceHub.publish writes the record and counts it; the trace.stats and
// trace.read methods as a client calls them (filters, cursors, tail, reply size); and
// how rows and requests read (UX.md, "Live ioreq view").
import { describe, expect, it } from 'vitest'
import { TraceHub } from '../../../src/core/trace/hub.js'
import { eventText, latencyText, rowKeyText } from '../../../src/core/trace/format.js'
import {
  READ_MAX,
  traceMethods,
  type ReadReply,
  type StatsReply,
  type TraceVm,
} from '../../../src/core/trace/methods.js'
import {
  CLIENT_IOEVENTFD,
  CLIENT_KERNEL,
  pciAddr,
  records,
  TYPE_MMIO,
  TYPE_PCICFG,
  TYPE_PIO,
} from '../../../src/core/trace/record.js'
import { UsageError } from '../../../src/core/errors.js'

const request = (over: Partial<Parameters<TraceHub['publish']>[0]> = {}) => ({
  vmid: 1,
  vcpu: 0,
  type: TYPE_PIO,
  write: true,
  client: 0,
  size: 1,
  addr: 0x3f8n,
  value: 0x41n,
  latencyNs: 1500.4,
  t: 12.5,
  ...over,
})

function setup(capacity = 1 << 10) {
  const hub = new TraceHub(capacity)
  let vms: TraceVm[] = [{ vmid: 1, name: 'demo' }]
  const m = traceMethods(hub, () => vms)
  const call = <T>(method: string, params: unknown = {}) => m[method]!(params, {} as never) as T
  return { hub, call, setVms: (v: TraceVm[]) => (vms = v) }
}

describe('TraceHub.publish', () => {
  it('writes one 32-byte record per request and counts it in the statistics', () => {
    const { hub } = setup()
    hub.publish(request())
    hub.publish(
      request({
        vcpu: 3,
        type: TYPE_MMIO,
        write: false,
        client: CLIENT_IOEVENTFD,
        size: 8,
        addr: 0x1_fed0_0000n,
        value: 0xffff_ffff_ffff_ffffn,
        latencyNs: 5e12, // saturates
      }),
    )
    const [a, b] = [...records(hub.read(0).bytes)]
    expect(a).toEqual({
      t: 12.5,
      addr: 0x3f8n,
      value: 0x41n,
      latencyNs: 1500,
      vmid: 1,
      vcpu: 0,
      type: 'pio',
      dir: 'write',
      client: 'default',
      size: 1,
    })
    expect(b).toMatchObject({
      addr: 0x1_fed0_0000n,
      value: 0xffff_ffff_ffff_ffffn,
      latencyNs: 0xffff_ffff,
      vcpu: 3,
      type: 'mmio',
      dir: 'read',
      client: 'ioeventfd',
      size: 8,
    })
    expect(hub.published).toBe(2)
    expect(hub.stats.rows(undefined, true).map((r) => [r.addr, r.count, r.latMax])).toEqual([
      [0x3f8n, 1, 1500],
      [0x1_fed0_0000n, 1, 0xffff_ffff],
    ])
  })
})

describe('trace.stats and trace.read', () => {
  it('trace.stats: rows, the published count and the VM table; a filter narrows the rows', () => {
    const { hub, call } = setup()
    for (let i = 0; i < 5; i++) hub.publish(request({ vcpu: i % 2 }))
    hub.publish(request({ type: TYPE_PCICFG, addr: pciAddr(0, 3, 0, 0x10), write: false }))
    const all = call<StatsReply>('trace.stats')
    expect(all).toMatchObject({ published: 6, rowCount: 2, vms: [{ vmid: 1, name: 'demo' }] })
    const one = call<StatsReply>('trace.stats', { filter: { vcpus: [1] }, byVcpu: false })
    expect(one.rows.map((r) => [rowKeyText(r), r.count])).toEqual([['PIO 0x3f8 OUT', 2]])
    expect(() => call('trace.stats', { filter: { types: ['dma'] } })).toThrow(UsageError)
  })

  it('trace.read: from a cursor, filtered, never more than READ_MAX records a reply', () => {
    const { hub, call } = setup(1 << 16)
    const n = READ_MAX + 1000
    for (let i = 0; i < n; i++) hub.publish(request({ t: i, client: i % 2 ? CLIENT_KERNEL : 0 }))
    const first = call<ReadReply>('trace.read', { cursor: 0, max: 1_000_000 })
    expect(first).toMatchObject({
      count: READ_MAX,
      matched: READ_MAX,
      cursor: READ_MAX,
      published: n,
    })
    // base64 of READ_MAX records fits a socket line (MAX_LINE, 1 MiB)
    expect(JSON.stringify(first).length).toBeLessThan(1 << 20)
    const rest = call<ReadReply>('trace.read', { cursor: first.cursor })
    expect(rest).toMatchObject({ count: 1000, cursor: n, dropped: 0 })
    const kernel = call<ReadReply>('trace.read', {
      cursor: n - 10,
      filter: { clients: ['kernel'] },
    })
    const got = [...records(new Uint8Array(Buffer.from(kernel.records, 'base64')))]
    expect(got.map((e) => [e.t, e.client])).toEqual(
      [n - 9, n - 7, n - 5, n - 3, n - 1].map((t) => [t, 'kernel']),
    )
  })

  it('trace.read with tail: the newest records, how many matched, and what was dropped', () => {
    const { hub, call } = setup(64)
    for (let i = 0; i < 100; i++) hub.publish(request({ t: i }))
    const r = call<ReadReply>('trace.read', { cursor: 10, max: 3, tail: true })
    expect(r).toMatchObject({ count: 3, matched: 64, dropped: 26, cursor: 100 })
    expect([...records(new Uint8Array(Buffer.from(r.records, 'base64')))].map((e) => e.t)).toEqual([
      97, 98, 99,
    ])
  })

  it.each([
    [{ cursor: -1 }, /cursor/],
    [{ cursor: 'x' }, /cursor/],
    [{ max: 2_000_000 }, /max/],
    [{ tail: 'yes' }, /tail/],
  ])('trace.read refuses %j', (params, message) => {
    const { call } = setup()
    expect(() => call('trace.read', params)).toThrow(message)
  })

  it('a destroyed VM’s rows are dropped, so a VM given its vmid starts from zero', () => {
    const { hub, call, setVms } = setup()
    hub.publish(request())
    expect(call<StatsReply>('trace.stats').rows[0]!.count).toBe(1)
    setVms([])
    expect(call<StatsReply>('trace.stats').rows).toEqual([])
    setVms([{ vmid: 1, name: 'again' }])
    hub.publish(request())
    expect(call<StatsReply>('trace.stats').rows[0]!.count).toBe(1)
  })
})

describe('how requests read', () => {
  it.each([
    [{ type: 'pio', dir: 'write', addr: 0x3f8n }, 'PIO 0x3f8 OUT'],
    [{ type: 'pio', dir: 'read', addr: 0x71n }, 'PIO 0x71 IN'],
    [{ type: 'mmio', dir: 'write', addr: 0xfed00000n }, 'MMIO 0xfed00000 W'],
    [{ type: 'pcicfg', dir: 'read', addr: pciAddr(0, 3, 0, 0x10) }, 'PCICFG 00:03.0+0x10 R'],
    [
      { type: 'pcicfg', dir: 'write', addr: pciAddr(0xa, 0x1f, 7, 0xffc) },
      'PCICFG 0a:1f.7+0xffc W',
    ],
  ] as const)('row key %s', (key, text) => {
    expect(rowKeyText({ vmid: 1, vcpu: 0, client: 'default', ...key })).toBe(text)
  })

  it.each([
    [850, '850ns'],
    [1234, '1.2us'],
    [12_345, '12us'],
    [4_100_000, '4.1ms'],
    [45_000_000, '45ms'],
  ])('latency %d ns is %s', (ns, text) => {
    expect(latencyText(ns)).toBe(text)
  })

  it('a log line: time, VM, vCPU, type, direction, address, size, value, client, latency', () => {
    const [e] = [
      ...records(
        (() => {
          const hub = new TraceHub(8)
          hub.publish(
            request({
              t: 1234.5678,
              vcpu: 1,
              type: TYPE_PCICFG,
              addr: pciAddr(0, 3, 0, 0x10),
              write: false,
              size: 4,
              value: 0xfebc0000n,
              latencyNs: 12_345,
            }),
          )
          return hub.read(0).bytes
        })(),
      ),
    ]
    expect(
      eventText(e!, () => 'demo')
        .split(/\s+/)
        .filter(Boolean),
    ).toEqual([
      '1.234568',
      'demo',
      'vcpu1',
      'PCICFG',
      'R',
      '00:03.0+0x10',
      '4B',
      '0xfebc0000',
      'default',
      '12us',
    ])
  })
})
