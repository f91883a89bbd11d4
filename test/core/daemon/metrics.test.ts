// What hsmd's /metrics says, from a trace hub fed by hand (issue 14 item 4): exact
// histogram edges, dropped records, VMs by state and owner kind.

import { describe, expect, it } from 'vitest'
import { Registry } from 'prom-client'
import { ownerKind, renderMetrics, type MetricsVm } from '../../../src/core/daemon/metrics.js'
import { TraceHub } from '../../../src/core/trace/hub.js'
import { traceMethods } from '../../../src/core/trace/methods.js'
import {
  CLIENT_DEFAULT,
  CLIENT_IOEVENTFD,
  TYPE_MMIO,
  TYPE_PIO,
} from '../../../src/core/trace/record.js'

const vms: MetricsVm[] = [
  { name: 'a', vmid: 1, state: 'running', owner: 'hsmd' },
  { name: 'b', vmid: 2, state: 'paused', owner: 'hsmd' },
  { name: 'dm', vmid: 3, state: 'running', owner: 'acrn-dm (pid 77)' },
  { name: 'old', vmid: null, state: 'journaled', owner: 'journal' },
  { name: 'x', vmid: 4, state: 'created', owner: 'outside process' },
  { name: 'y', vmid: 5, state: 'created', owner: 'outside process' },
]

function render(hub: TraceHub, openMetrics = false) {
  return renderMetrics(
    {
      backend: 'sim',
      version: '9.9.9',
      startedAtMs: Date.now() - 5000,
      connections: () => 2,
      vms: async () => vms,
      trace: hub,
    },
    openMetrics ? Registry.OPENMETRICS_CONTENT_TYPE : Registry.PROMETHEUS_CONTENT_TYPE,
  )
}

const line = (text: string, prefix: string) =>
  text.split('\n').find((l) => l.startsWith(prefix + ' ')) ?? `(no ${prefix})`

describe('renderMetrics', () => {
  it('histogram buckets end exactly on the trace buckets: 255 ns is in le=2.55e-7, 256 ns not', async () => {
    const hub = new TraceHub(64)
    const req = { vmid: 1, vcpu: 0, type: TYPE_PIO, write: true, client: CLIENT_DEFAULT, size: 1 }
    for (const latencyNs of [100, 255, 256, 1023, 1024, 5_000_000_000])
      hub.publish({ ...req, addr: 0x3f8n, value: 0n, latencyNs })
    const text = await render(hub)
    const labels = 'vm="a",vmid="1",type="pio",dir="write",client="default"'
    const bucket = (le: string) =>
      Number(line(text, `hsmctl_ioreq_latency_seconds_bucket{${labels},le="${le}"}`).split(' ')[1])
    expect(bucket('2.55e-7')).toBe(2)
    expect(bucket('0.000001023')).toBe(4)
    expect(bucket('0.000004095')).toBe(5)
    // the trace saturates at 2^32-1 ns: the last finite bound holds everything
    expect(bucket('4.294967295')).toBe(6)
    expect(bucket('+Inf')).toBe(6)
    expect(line(text, `hsmctl_ioreq_latency_seconds_count{${labels}}`)).toMatch(/ 6$/)
    const sum = (100 + 255 + 256 + 1023 + 1024 + 0xffff_ffff) / 1e9
    expect(
      Number(line(text, `hsmctl_ioreq_latency_seconds_sum{${labels}}`).split(' ')[1]),
    ).toBeCloseTo(sum, 9)
    expect(line(text, `hsmctl_ioreqs_total{${labels}}`)).toMatch(/ 6$/)
  })

  it('counts per VM, type, direction and client, addresses and vCPUs merged', async () => {
    const hub = new TraceHub(64)
    const base = {
      type: TYPE_MMIO,
      write: true,
      client: CLIENT_IOEVENTFD,
      size: 4,
      value: 1n,
      latencyNs: 10,
    }
    hub.publish({ ...base, vmid: 2, vcpu: 0, addr: 0xfe003000n })
    hub.publish({ ...base, vmid: 2, vcpu: 1, addr: 0xfe003004n })
    hub.publish({
      ...base,
      vmid: 2,
      vcpu: 1,
      addr: 0xfe003000n,
      write: false,
      client: CLIENT_DEFAULT,
    })
    hub.publish({ ...base, vmid: 9, vcpu: 0, addr: 0x1000n })
    const text = await render(hub)
    expect(
      line(text, 'hsmctl_ioreqs_total{vm="b",vmid="2",type="mmio",dir="write",client="ioeventfd"}'),
    ).toMatch(/ 2$/)
    expect(
      line(text, 'hsmctl_ioreqs_total{vm="b",vmid="2",type="mmio",dir="read",client="default"}'),
    ).toMatch(/ 1$/)
    // a vmid no listed VM has: its requests still count, with an empty name
    expect(
      line(text, 'hsmctl_ioreqs_total{vm="",vmid="9",type="mmio",dir="write",client="ioeventfd"}'),
    ).toMatch(/ 1$/)
    expect(line(text, 'hsmctl_trace_records_total')).toBe('hsmctl_trace_records_total 4')
  })

  it('records a reader lost to the ring are dropped records', async () => {
    const hub = new TraceHub(16)
    const read = traceMethods(hub, () => [])['trace.read']!
    const req = { vmid: 1, vcpu: 0, type: TYPE_PIO, write: false, client: CLIENT_DEFAULT, size: 1 }
    for (let i = 0; i < 40; i++) hub.publish({ ...req, addr: 0x60n, value: 0n, latencyNs: 1 })
    const reply = (await read({ cursor: 0 }, undefined as never)) as { dropped: number }
    expect(reply.dropped).toBe(24)
    await read({ cursor: 10 }, undefined as never) // 14 more
    const text = await render(hub)
    expect(line(text, 'hsmctl_trace_dropped_records_total')).toBe(
      'hsmctl_trace_dropped_records_total 38',
    )
    expect(line(text, 'hsmctl_trace_ring_records')).toBe('hsmctl_trace_ring_records 16')
  })

  it('VMs by state and owner kind; the daemon gauges', async () => {
    const text = await render(new TraceHub(16), true)
    for (const [labels, n] of [
      ['state="running",owner="hsmd"', 1],
      ['state="paused",owner="hsmd"', 1],
      ['state="running",owner="acrn-dm"', 1],
      ['state="journaled",owner="journal"', 1],
      ['state="created",owner="outside"', 2],
    ] as const)
      expect(line(text, `hsmctl_vms{${labels}}`)).toBe(`hsmctl_vms{${labels}} ${n}`)
    expect(line(text, 'hsmctl_daemon_connections')).toBe('hsmctl_daemon_connections 2')
    expect(line(text, 'hsmctl_daemon_info{backend="sim",version="9.9.9"}')).toMatch(/ 1$/)
    const uptime = Number(line(text, 'hsmctl_daemon_uptime_seconds').split(' ')[1])
    expect(uptime).toBeGreaterThanOrEqual(5)
    expect(text).toMatch(/^# TYPE hsmctl_trace_dropped_records counter$/m)
    expect(text.endsWith('# EOF\n')).toBe(true)
    expect(
      ['acrn-dm (pid 1)', 'outside process', 'script', 'journal', 'hsmd'].map(ownerKind),
    ).toEqual(['acrn-dm', 'outside', 'script', 'journal', 'hsmd'])
  })
})
