// Requests outstanding on the simulation (a vCPU waiting for its slot, §4.1), as a recorder
// notes the ones still pending when it stops: described exactly as the trace describes the
// same request when it completes (same PENDING time, address, size, direction), and gone
// once completed.
import { describe, expect, it } from 'vitest'
import type { PublishedRequest } from '../../../src/core/trace/hub.js'
import { TYPE_PIO } from '../../../src/core/trace/record.js'
import { simVmmPlatform } from '../../../src/core/vmm/sim-platform.js'
import type { ConformanceSystem } from '../sim/conformance/backend.js'
import { peek, runningVm, serve } from '../sim/conformance/helpers.js'

describe('outstandingRequests (simulation)', () => {
  it('a write no client answered yet is outstanding until its client completes it', async () => {
    const platform = simVmmPlatform()
    const sim = platform.sim
    const sys: ConformanceSystem = {
      spawn: (o) => sim.spawn(o),
      guestAccess: (a) => sim.guestAccess(a),
      settle: () => sim.settle(),
      inspect: sim.inspect,
    }
    const completed: PublishedRequest[] = []
    platform.traceRequests!((r) => completed.push(r))
    expect(platform.outstandingRequests!()).toEqual([])
    const vm = await runningVm(sys)
    const access = sim.guestAccess({
      vmid: vm.vmid,
      vcpu: 0,
      type: 'pio',
      dir: 'write',
      addr: 0x3f8,
      size: 1,
      value: 0x21,
    })
    await sim.settle()
    expect((await peek(access)).state).toBe('pending')
    const [pending, ...more] = platform.outstandingRequests!()
    expect(more).toEqual([])
    expect(pending).toMatchObject({
      vmid: vm.vmid,
      vcpu: 0,
      type: TYPE_PIO,
      write: true,
      client: 0,
      size: 1,
      addr: 0x3f8n,
      value: 0x21n,
      latencyNs: 0,
    })
    expect(completed).toEqual([])

    await serve(vm)
    await access
    expect(platform.outstandingRequests!()).toEqual([])
    expect(completed).toHaveLength(1)
    const { latencyNs, ...done } = completed[0]!
    expect(latencyNs).toBeGreaterThanOrEqual(0)
    expect(done).toEqual({ ...pending, latencyNs: undefined, t: pending!.t })
  })
})
