// Trace filters: the parsers behind the flags, the row predicate and the in-place record
// predicate (which must agree), the wire form and the description in the header.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../src/core/errors.js'
import {
  compileFilter,
  compileRecordFilter,
  describeFilter,
  filterFromWire,
  filterToWire,
  isEmptyFilter,
  parseAddrRange,
  parseClients,
  parseDirs,
  parseTypes,
  type TraceFilter,
} from '../../../src/core/trace/filter.js'
import { filterRecords } from '../../../src/core/trace/methods.js'
import { records } from '../../../src/core/trace/record.js'
import { arbEvent, CLIENT, dirOf, pack, TYPE } from './records.js'

describe('filter parsers', () => {
  it.each([
    ['0x3f8', 0x3f8n, 0x3f8n],
    ['0x3f0-0x3ff', 0x3f0n, 0x3ffn],
    ['0xfed00000+0x1000', 0xfed00000n, 0xfed00fffn],
    ['1016', 1016n, 1016n],
  ])('address range %s', (text, from, to) => {
    expect(parseAddrRange(text)).toEqual({ from, to })
  })

  it.each(['0x3ff-0x3f0', '1-2-3', 'zz', '0x10+0', ''])('address range %j is refused', (text) => {
    expect(() => parseAddrRange(text)).toThrow(UsageError)
  })

  it('types, directions and clients take their names and the usual aliases', () => {
    expect(parseTypes(['PIO', 'port', 'mmio', 'pci'])).toEqual(['pio', 'pio', 'mmio', 'pcicfg'])
    expect(parseDirs(['r', 'out', 'Write', 'in'])).toEqual(['read', 'write', 'write', 'read'])
    expect(parseClients(['kernel', 'ioeventfd', 'default'])).toEqual([
      'kernel',
      'ioeventfd',
      'default',
    ])
    expect(() => parseTypes(['dma'])).toThrow(/--type: 'dma' is not one of pio, mmio, pcicfg/)
    expect(() => parseClients(['acrndm'])).toThrow(/--client/)
  })
})

const arbFilter: fc.Arbitrary<TraceFilter> = fc.record(
  {
    vmids: fc.uniqueArray(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
    vcpus: fc.uniqueArray(fc.integer({ min: 0, max: 3 }), { maxLength: 2 }),
    types: fc.subarray(['pio', 'mmio', 'pcicfg'] as const),
    dirs: fc.subarray(['read', 'write'] as const),
    clients: fc.subarray(['default', 'ioeventfd', 'kernel'] as const),
    addr: fc
      .tuple(fc.bigInt({ min: 0n, max: 1n << 48n }), fc.bigInt({ min: 0n, max: 1n << 48n }))
      .map(([a, b]) => (a <= b ? { from: a, to: b } : { from: b, to: a })),
  },
  { requiredKeys: [] },
)

describe('compiled filters', () => {
  it('the record predicate agrees with the row predicate on every record', () => {
    fc.assert(
      fc.property(arbFilter, fc.array(arbEvent, { maxLength: 60 }), (filter, events) => {
        const byRow = compileFilter(filter)
        const byRecord = compileRecordFilter(filter)
        const bytes = pack(events)
        const words = new Uint32Array(bytes.buffer)
        events.forEach((e, i) => {
          const row = byRow({
            vmid: e.vmid,
            vcpu: e.vcpu,
            type: TYPE[e.type]!,
            dir: dirOf(e),
            client: CLIENT[e.client]!,
            addr: e.addr,
          })
          expect(byRecord ? byRecord(words, i * 8) : true).toBe(row)
        })
        // and filterRecords keeps exactly those, in order
        const kept = [...records(filterRecords(bytes, filter))].map((r) => r.t)
        expect(kept).toEqual(
          events.filter((_, i) => (byRecord ? byRecord(words, i * 8) : true)).map((e) => e.t),
        )
      }),
      { numRuns: 300 },
    )
  })

  it('an empty filter compiles to nothing (no per-record work)', () => {
    expect(compileRecordFilter({})).toBeUndefined()
    expect(compileRecordFilter({ types: [], vmids: [] })).toBeUndefined()
    expect(isEmptyFilter({ types: [] })).toBe(true)
    expect(isEmptyFilter({ dirs: ['read'] })).toBe(false)
  })

  it('the address range compares all 64 bits', () => {
    const keep = compileRecordFilter({ addr: { from: 0x1_0000_0000n, to: 0x1_0000_0fffn } })!
    const words = new Uint32Array(
      pack([
        { ...sample, addr: 0x0000_0100n },
        { ...sample, addr: 0x1_0000_0100n },
        { ...sample, addr: 0x2_0000_0100n },
      ]).buffer,
    )
    expect([0, 8, 16].map((o) => keep(words, o))).toEqual([false, true, false])
  })

  it('a merged row (vcpu -1) passes a vCPU filter: the daemon filtered before merging', () => {
    const keep = compileFilter({ vcpus: [1] })
    expect(keep({ ...row, vcpu: -1 })).toBe(true)
    expect(keep({ ...row, vcpu: 0 })).toBe(false)
  })
})

const sample = {
  t: 0,
  vmid: 1,
  vcpu: 0,
  type: 1 as const,
  write: false,
  client: 0 as const,
  size: 4 as const,
  addr: 0n,
  value: 0n,
  latencyNs: 0,
}
const row = {
  vmid: 1,
  vcpu: 0,
  type: 'pio' as const,
  dir: 'read' as const,
  client: 'default' as const,
  addr: 0x3f8n,
}

describe('filters on the wire and in words', () => {
  it('round-trips through JSON', () => {
    fc.assert(
      fc.property(arbFilter, (filter) => {
        const wire = JSON.parse(JSON.stringify(filterToWire(filter)))
        expect(filterFromWire(wire)).toEqual(filter)
      }),
    )
  })

  it.each([
    ['a list', []],
    ['bad vmids', { vmids: [-1] }],
    ['bad types', { types: ['dma'] }],
    ['bad clients', { clients: 'kernel' }],
    ['bad addr', { addr: 5 }],
    ['reversed addr', { addr: { from: '0x10', to: '0x1' } }],
  ])('refuses %s', (_what, wire) => {
    expect(() => filterFromWire(wire)).toThrow(UsageError)
  })

  it('describes itself for the watch header', () => {
    expect(describeFilter({})).toBe('none')
    expect(
      describeFilter(
        {
          vmids: [1],
          vcpus: [0],
          types: ['pio'],
          dirs: ['write'],
          clients: ['default'],
          addr: { from: 0x3f0n, to: 0x3ffn },
        },
        (id) => (id === 1 ? 'demo' : String(id)),
      ),
    ).toBe('vm demo vcpu 0 type pio dir write client default addr 0x3f0-0x3ff')
  })
})
