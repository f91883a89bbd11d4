// Test records: arbitrary trace events as fast-check values, and packing them into the
// 32-byte record format the trace core works on.
import fc from 'fast-check'
import {
  packFlags,
  RECORD_SIZE,
  writeRecord,
  type TraceClient,
  type TraceDir,
  type TraceType,
} from '../../../src/core/trace/record.js'

export interface TestEvent {
  t: number
  vmid: number
  vcpu: number
  type: 0 | 1 | 2
  write: boolean
  client: 0 | 1 | 2
  size: 1 | 2 | 4 | 8
  addr: bigint
  value: bigint
  latencyNs: number
}

export const TYPE: readonly TraceType[] = ['pio', 'mmio', 'pcicfg']
export const CLIENT: readonly TraceClient[] = ['default', 'ioeventfd', 'kernel']
export const dirOf = (e: TestEvent): TraceDir => (e.write ? 'write' : 'read')

/** A few addresses (so that rows repeat), some above 4 GiB to exercise the high word. */
const ADDRS = [0x3f8n, 0x70n, 0xcfcn, 0xfed0_0000n, 0xfe00_3000n, 0x1_0000_0000n, 0xffff_ffff_ffffn]

export const arbEvent: fc.Arbitrary<TestEvent> = fc.record({
  t: fc.double({ min: 0, max: 1e9, noNaN: true }),
  vmid: fc.integer({ min: 1, max: 3 }),
  vcpu: fc.integer({ min: 0, max: 3 }),
  type: fc.constantFrom(0 as const, 1 as const, 2 as const),
  write: fc.boolean(),
  client: fc.constantFrom(0 as const, 1 as const, 2 as const),
  size: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const),
  addr: fc.constantFrom(...ADDRS),
  value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  // mostly small latencies, now and then huge ones up to the u32 ceiling
  latencyNs: fc.oneof(
    fc.integer({ min: 0, max: 10 }),
    fc.integer({ min: 0, max: 200_000 }),
    fc.integer({ min: 0, max: 0xffff_ffff }),
  ),
})

export function pack(events: readonly TestEvent[]): Uint8Array {
  const bytes = new Uint8Array(events.length * RECORD_SIZE)
  const view = new DataView(bytes.buffer)
  events.forEach((e, i) =>
    writeRecord(view, i * RECORD_SIZE, {
      ...e,
      flags: packFlags(e.type, e.write, e.client, e.size),
    }),
  )
  return bytes
}

/** One simple event for example-based tests. */
export function event(overrides: Partial<TestEvent> = {}): TestEvent {
  return {
    t: 0,
    vmid: 1,
    vcpu: 0,
    type: 0,
    write: true,
    client: 0,
    size: 1,
    addr: 0x3f8n,
    value: 0x41n,
    latencyNs: 1000,
    ...overrides,
  }
}
