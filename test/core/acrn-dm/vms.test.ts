// One view of every VM (src/core/acrn-dm/vms.ts): hsmd's rows as they are, an acrn-dm and
// the HSM's VM it holds as one row (matched by pid), registered scripts not running as
// stopped, a crashed acrn-dm's socket as gone, other processes' VMs as outside.
import { describe, expect, it } from 'vitest'
import { MonitorError } from '../../../src/core/acrn-dm/monitor.js'
import {
  dmOptions,
  holderPid,
  mergeVms,
  type AcrnDmInstance,
} from '../../../src/core/acrn-dm/vms.js'

const row = (over: object) => ({
  vmid: null,
  state: 'running',
  vcpus: 1,
  memory: '0x100000',
  uptimeSeconds: null,
  ...over,
})

function dm(
  name: string,
  pid: number,
  query: AcrnDmInstance['query'],
  alive = true,
): AcrnDmInstance {
  return {
    name,
    pid,
    path: `/run/acrn/mngr/${name}.monitor.${pid}.socket`,
    process: alive
      ? {
          pid,
          argv: ['acrn-dm', '-m', '1G', '--cpu_affinity', '1,2', name],
          session: pid,
          uptimeSeconds: 5,
        }
      : undefined,
    query,
  }
}

describe('mergeVms', () => {
  it('makes an acrn-dm and the HSM VM its pid holds one row, with the HSM’s numbers', () => {
    const rows = mergeVms({
      daemon: [
        row({ name: 'demo', vmid: 1, owner: 'hsmd', uptimeSeconds: 3 }),
        row({
          name: 'vm1',
          vmid: 2,
          owner: 'outside process',
          holder: 'pid 700 (acrn-dm)',
          memory: '0x8000000',
          state: 'created',
        }),
        row({ name: 'sample', vmid: 3, owner: 'outside process', holder: 'pid 800 (vm-sample)' }),
      ] as never,
      acrnDm: [dm('vm1', 700, { mode: 0 })],
      registry: [
        { name: 'vm1', script: '/c/vm1.sh', args: ['vm1'] },
        { name: 'idle', script: '/nonexistent/idle.sh', args: undefined },
      ],
    })
    expect(rows.map((r) => [r.name, r.owner, r.state, r.vmid])).toEqual([
      ['demo', 'hsmd', 'running', 1],
      ['idle', 'script', 'stopped', null],
      ['sample', 'outside process', 'running', 3],
      ['vm1', 'acrn-dm (pid 700)', 'created', 2],
    ])
    expect(rows[3]).toMatchObject({
      memory: '0x8000000',
      uptimeSeconds: 5,
      acrnDm: { pid: 700, mode: 0, modeName: 'NONE', hsmState: 'created' },
      script: { path: '/c/vm1.sh', args: ['vm1'] },
    })
  })

  it('gives acrn-dm’s own mode when it is not running, and its options where no HSM view exists', () => {
    const rows = mergeVms({
      daemon: [],
      acrnDm: [dm('s', 1, { mode: 4 }), dm('h', 2, { mode: 5 })],
      registry: [],
    })
    expect(rows.map((r) => [r.name, r.state, r.memory, r.vcpus])).toEqual([
      ['h', 'halted', '0x40000000', 2],
      ['s', 'suspended', '0x40000000', 2],
    ])
  })

  it('says not-answering when DM_QUERY timed out, never "started" as acrnctl does', () => {
    const error = new MonitorError('/x', { kind: 'timeout', ms: 1000 })
    const [r] = mergeVms({ daemon: [], acrnDm: [dm('hung', 9, { error })], registry: [] })
    expect(r).toMatchObject({
      state: 'not-answering',
      acrnDm: { mode: null, error: expect.stringMatching(/no answer/) },
    })
  })

  it('shows a crashed acrn-dm’s socket as gone, or its script as stopped', () => {
    const error = new MonitorError('/x', { kind: 'connect', code: 'ECONNREFUSED', message: '' })
    const rows = mergeVms({
      daemon: [],
      acrnDm: [dm('dead', 5, { error }, false), dm('back', 6, { error }, false)],
      registry: [{ name: 'back', script: '/c/back.sh', args: [] }],
    })
    expect(rows.map((r) => [r.name, r.owner, r.state])).toEqual([
      ['back', 'script', 'stopped'],
      ['dead', 'acrn-dm (pid 5)', 'gone'],
    ])
  })

  it('matches vm1 and vm10 by their exact names', () => {
    const rows = mergeVms({
      daemon: [],
      acrnDm: [dm('vm10', 10, { mode: 0 })],
      registry: [
        { name: 'vm1', script: '/c/vm1.sh', args: [] },
        { name: 'vm10', script: '/c/vm10.sh', args: [] },
      ],
    })
    expect(rows.map((r) => [r.name, r.state])).toEqual([
      ['vm1', 'stopped'],
      ['vm10', 'running'],
    ])
  })
})

describe('dmOptions: RAM and vCPUs from acrn-dm’s command line', () => {
  it.each([
    [['acrn-dm', 'v'], 256n << 20n, null],
    [['acrn-dm', '-m', '2G', '--cpu_affinity', '1,2,3', 'v'], 2n << 30n, 3],
    [['acrn-dm', '--memsize=512M', 'v'], 512n << 20n, null],
    [['acrn-dm', '-m128M', 'v'], 128n << 20n, null],
    [['acrn-dm', '-m', '128', 'v'], null, null], // no unit: acrn-dm refuses it
  ])('%j', (argv, memory, vcpus) => {
    expect(dmOptions(argv)).toEqual({ memory, vcpus })
  })
})

it('holderPid reads the pid of the daemon’s holder text', () => {
  expect(holderPid('pid 1234 (acrn-dm)')).toBe(1234)
  expect(holderPid(undefined)).toBeUndefined()
})
