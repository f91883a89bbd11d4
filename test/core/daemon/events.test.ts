// hsmd's event bus, its socket method and its daemon events, without a daemon: the ring
// (bounded, replay from a cursor or a time), filters, the long poll, a stopping daemon
// waiting for its followers, the last stop kept in the state dir, and what hsmd discovers.

import { spawn } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { daemonEvents, lastStopPath } from '../../../src/core/daemon/daemon-events.js'
import { Discovery } from '../../../src/core/daemon/discovery.js'
import { EventReaders, type EventsReply } from '../../../src/core/daemon/event-methods.js'
import { EventBus, eventMatches, expandEventType } from '../../../src/core/daemon/events.js'
import { UsageError } from '../../../src/core/errors.js'
import { parseSince } from '../../../src/core/parse/since.js'
import type { HypervisorVm } from '../../../src/core/vmm/platform.js'

const vmEvent = (vm: string, action = 'created') => ({ type: 'vm' as const, action, vm, vmid: 1 })

describe('EventBus', () => {
  it('numbers events in order and tells every listener once', () => {
    const bus = new EventBus()
    const heard: number[] = []
    const off = bus.on((e) => heard.push(e.seq))
    bus.emit(vmEvent('a'))
    bus.emit(vmEvent('a', 'started'))
    off()
    bus.emit(vmEvent('a', 'paused'))
    expect(heard).toEqual([1, 2])
    expect(bus.cursor).toBe(3)
    expect(bus.after(1).events.map((e) => e.action)).toEqual(['started', 'paused'])
  })

  it('keeps the last `capacity` events and counts what a late reader lost', () => {
    const bus = new EventBus({ capacity: 3 })
    for (let i = 0; i < 5; i++) bus.emit(vmEvent(`v${i}`))
    expect(bus.oldest).toBe(3)
    expect(bus.after(0)).toMatchObject({ dropped: 2 })
    expect(bus.after(0).events.map((e) => e.seq)).toEqual([3, 4, 5])
    expect(bus.after(3)).toMatchObject({ dropped: 0 })
  })

  it('cursorAt: the events at or after a time', () => {
    const bus = new EventBus()
    bus.emit(vmEvent('a'), new Date(1000))
    bus.emit(vmEvent('b'), new Date(2000))
    bus.emit(vmEvent('c'), new Date(3000))
    expect(bus.after(bus.cursorAt(2000)).events.map((e) => e.vm)).toEqual(['b', 'c'])
    expect(bus.after(bus.cursorAt(5000)).events).toEqual([])
    expect(bus.after(bus.cursorAt(0)).events).toHaveLength(3)
  })

  it('a listener that throws stops neither the change nor the others', () => {
    const bus = new EventBus()
    let heard = 0
    bus.on(() => {
      throw new Error('bad listener')
    })
    bus.on(() => heard++)
    expect(() => bus.emit(vmEvent('a'))).not.toThrow()
    expect(heard).toBe(1)
  })

  it('filters: by type (groups expanded) and by VM; the daemon’s own events reach every VM filter', () => {
    const bus = new EventBus()
    const daemon = bus.emit({ type: 'daemon', action: 'started' })
    const vm = bus.emit(vmEvent('a'))
    const fd = bus.emit({ type: 'irqfd', action: 'added', vm: 'b', vmid: 2 })
    expect(expandEventType('eventfd')).toEqual(['ioeventfd', 'irqfd'])
    expect(expandEventType('vms')).toBeUndefined()
    expect([daemon, vm, fd].filter((e) => eventMatches(e, { vms: ['a'] }))).toEqual([daemon, vm])
    expect([daemon, vm, fd].filter((e) => eventMatches(e, { types: ['irqfd'] }))).toEqual([fd])
  })
})

class FakeConnection extends EventEmitter {}
const connection = () => new FakeConnection() as unknown as Socket

describe('events.read', () => {
  const setup = () => {
    const bus = new EventBus()
    const state = { stopping: false, stopped: false }
    const readers = new EventReaders(bus, () => ({ ...state }))
    const read = readers.methods()['events.read']!
    const call = (params: unknown, c = connection()) =>
      read(params, { connection: c }) as Promise<EventsReply>
    return { bus, state, readers, call }
  }

  it('without a cursor: only the current one; with one: what came after it', async () => {
    const { bus, call } = setup()
    bus.emit(vmEvent('a'))
    expect(await call({})).toMatchObject({ events: [], cursor: 1 })
    bus.emit(vmEvent('b'))
    const r = await call({ after: 1 })
    expect(r.events.map((e) => e.vm)).toEqual(['b'])
    expect(r.cursor).toBe(2)
  })

  it('waits for the next event, and the cursor passes events the filter left out', async () => {
    const { bus, call } = setup()
    const pending = call({ after: 0, wait: 30_000, types: ['vm'] })
    let settled = false
    void pending.then(() => (settled = true))
    await new Promise((r) => setImmediate(r))
    expect(settled).toBe(false)
    bus.emit({ type: 'daemon', action: 'started' })
    expect(await pending).toMatchObject({ events: [], cursor: 1 })
  })

  it('a reader whose connection closes stops waiting', async () => {
    const { call } = setup()
    const c = connection()
    const pending = call({ after: 0, wait: 30_000 }, c)
    c.emit('close')
    expect(await pending).toMatchObject({ events: [], cursor: 0 })
  })

  it('refuses bad params', async () => {
    const { call } = setup()
    await expect(call({ after: -1 })).rejects.toThrow(UsageError)
    await expect(call({ after: 0, wait: 60_000 })).rejects.toThrow(/wait/)
    await expect(call({ after: 0, types: ['vms'] })).rejects.toThrow(/types/)
  })

  it('drained: a stopping daemon waits until each follower was sent the last event', async () => {
    const { bus, state, readers, call } = setup()
    const c = connection()
    const first = await call({ after: 0, wait: 1 }, c) // a follower, now between two reads
    expect(first.cursor).toBe(0)
    bus.emit({ type: 'daemon', action: 'stopping' })
    state.stopping = state.stopped = true
    bus.emit({ type: 'daemon', action: 'stopped' })
    let drained = false
    const waiting = readers.drained(30_000).then(() => (drained = true))
    await new Promise((r) => setImmediate(r))
    expect(drained).toBe(false) // it has not read `stopped` yet
    const last = await call({ after: first.cursor, wait: 30_000 }, c)
    expect(last.events.map((e) => e.action)).toEqual(['stopping', 'stopped'])
    expect(last.stopped).toBe(true)
    await waiting
    expect(drained).toBe(true)
  })

  it('drained: a follower that went away is not waited for', async () => {
    const { bus, readers, call } = setup()
    const c = connection()
    await call({ after: 0, wait: 1 }, c)
    bus.emit({ type: 'daemon', action: 'stopped' })
    const waiting = readers.drained(30_000)
    c.emit('close')
    await waiting
  })
})

describe('daemon events', () => {
  it('started first; the stop is kept and the next daemon replays it and numbers on', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hsmctl-events-state-'))
    const env = { HSMCTL_STATE_DIR: dir }
    mkdirSync(join(dir, 'sim')) // hsmd makes its backend's dir (backend-state.ts)
    const first = daemonEvents({ backend: 'sim', env, version: '1' })
    first.bus.emit(vmEvent('a'))
    first.stop()
    first.stopped()
    expect(first.state()).toEqual({ stopping: true, stopped: true })
    const kept = JSON.parse(readFileSync(lastStopPath('sim', env), 'utf8'))
    expect(kept).toMatchObject({ seq: 4, type: 'daemon', action: 'stopped' })
    const second = daemonEvents({ backend: 'sim', env, version: '1' })
    expect(second.bus.after(0).events.map((e) => [e.seq, e.action])).toEqual([
      [4, 'stopped'],
      [5, 'started'],
    ])
    // the other backend's daemon has its own numbering
    expect(daemonEvents({ backend: 'native', env, version: '1' }).bus.cursor).toBe(1)
  })

  it('a link where the stop is kept is not followed: the stop is logged as not kept', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hsmctl-events-state-'))
    const env = { HSMCTL_STATE_DIR: dir }
    mkdirSync(join(dir, 'sim'))
    const target = join(dir, 'elsewhere')
    symlinkSync(target, lastStopPath('sim', env))
    const logged: string[] = []
    const d = daemonEvents({ backend: 'sim', env, version: '1', log: (l) => logged.push(l) })
    d.stopped()
    expect(logged.join('\n')).toMatch(/could not keep the stop.*symbolic link/)
    expect(() => readFileSync(target)).toThrow()
  })
})

describe('parseSince', () => {
  const now = Date.parse('2026-12-07T12:00:00Z')
  it.each([
    ['10m', now - 600_000],
    ['1h30m', now - 5_400_000],
    ['2d', now - 2 * 86_400_000],
    ['1765100000', 1_765_100_000_000],
    ['2026-12-07T11:00:00Z', Date.parse('2026-12-07T11:00:00Z')],
  ])('%s', (text, expected) => {
    expect(parseSince(text, { now })).toBe(expected)
  })

  it('a time of day is today, local', () => {
    const local = new Date(now)
    local.setHours(0, 5, 0, 0)
    expect(parseSince('00:05', { now: local.getTime() + 1 })).toBe(local.getTime())
  })

  it.each([
    ['soon', /not a duration or a time/],
    ['10 minutes', /not a duration or a time/],
    ['24:00', /not a time of day/],
    ['2026-13-40', /not a valid date/],
    ['2027-01-01T00:00:00Z', /in the future/],
  ])('refuses %s', (text, message) => {
    expect(() => parseSince(text, { now, flag: '--since' })).toThrow(message)
  })
})

describe('Discovery', () => {
  it('acrn-dm: a monitor socket whose pid is that acrn-dm appears, and goes with its process; its VM’s states as seen', async () => {
    const mngrDir = mkdtempSync(join(tmpdir(), 'hsmctl-events-mngr-'))
    // a stand-in whose last argument is the VM name, as acrn-dm's is
    const proc = spawn('sh', ['-c', 'sleep 600', 'evfake'], { stdio: 'ignore' })
    const pid = proc.pid!
    const bus = new EventBus()
    const vms: HypervisorVm[] = []
    const discovery = new Discovery({ bus, mngrDir, hypervisorVms: () => vms, pollMs: 3_600_000 })
    try {
      discovery.start() // what is there now is known, not reported
      writeFileSync(join(mngrDir, `evfake.monitor.${pid}.socket`), '')
      writeFileSync(join(mngrDir, 'other.monitor.1.socket'), '') // pid 1 is not acrn-dm
      vms.push({
        vmid: 3,
        name: 'evfake',
        state: 'running',
        vcpus: 1,
        memory: 0n,
        holder: `pid ${pid} (acrn-dm)`,
      })
      vms.push({ vmid: 4, name: 'mine', state: 'created', vcpus: 1, memory: 0n }) // hsmd's own
      discovery.look()
      discovery.look() // nothing new: nothing reported twice
      vms[0]!.state = 'paused'
      discovery.look()
      // acrn-dm dies, then the simulation drops its VM, in that order: the look the socket
      // files' inotify events start while this test awaits the exit must not find the VM
      // gone before its process
      proc.kill('SIGKILL')
      await new Promise((r) => proc.once('exit', r))
      vms.splice(0)
      discovery.look()
    } finally {
      discovery.stop()
      proc.kill('SIGKILL')
    }
    expect(bus.after(0).events.map((e) => [e.type, e.action, e.vm, e.vmid])).toEqual([
      ['acrn-dm', 'appeared', 'evfake', 3],
      ['vm', 'created', 'evfake', 3],
      ['vm', 'paused', 'evfake', 3],
      ['acrn-dm', 'gone', 'evfake', 3],
      ['vm', 'destroyed', 'evfake', 3],
    ])
  })
})
