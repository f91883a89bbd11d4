// libhsm-tap.so (helper/TAP.md) stacked on the device shim, so that its "real device" is
// the simulation, served by a SimServer in this process; the tap streams to hsmd's tap
// service, here in this process too. What the tap reports must equal what the simulation
// saw: the same ioctls, decoded alike, and the same I/O requests completed by the
// program's default client. Also: what it does with calls the samples never make, and
// that it never holds the program up.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Ioctl } from '../../../src/core/abi/ioctls.js'
import { TapService } from '../../../src/core/daemon/tap-service.js'
import {
  shimLoadPath,
  shimPath,
  tapPath,
  vmSamplePath,
} from '../../../src/core/native/preflight.js'
import { type ServedIoctl, SimServer } from '../../../src/core/native/sim-server.js'
import { TapDecoder, type TapTotals } from '../../../src/core/native/tap-protocol.js'
import type { PublishedRequest } from '../../../src/core/trace/hub.js'
import { TraceHub } from '../../../src/core/trace/hub.js'
import { decodeIoctlEntry, type IoctlCall } from '../../../src/core/trace/ioctl-call.js'
import { IoctlSource } from '../../../src/core/trace/ioctl-log.js'
import { CLIENT_DEFAULT, records } from '../../../src/core/trace/record.js'
import { simVmmPlatform } from '../../../src/core/vmm/sim-platform.js'
import { buildHelper, helperUnavailable, ROOT } from './support.js'

const TAP_PROBE = join(ROOT, 'helper', 'build', 'tap-probe')
const dir = mkdtempSync(join(tmpdir(), 'hsmctl-tap-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

class Program {
  out = ''
  err = ''
  readonly exited: Promise<number | null>
  constructor(readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.on('data', (d: Buffer) => (this.out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (this.err += d.toString()))
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)))
  }
  async waitFor(line: RegExp, ms = 30_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms
    for (;;) {
      const m = this.out.match(line)
      if (m) return m
      if (Date.now() > deadline) throw new Error(`no ${line}; output:\n${this.out}${this.err}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }
}

/** Poll until `ok` (a hang guard only: the work is bounded by the program's calls). */
async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** A simulation served to shimmed programs, and hsmd's tap service, in this process. */
async function setup(name: string, { platformTraces = true } = {}) {
  const vmm = simVmmPlatform()
  const completed: PublishedRequest[] = []
  vmm.traceRequests!((r) => completed.push(r))
  // the daemon's trace: on hardware (platformTraces false) only the taps fill it
  const trace = new TraceHub(1 << 10)
  const taps = TapService.create({
    backend: 'sim',
    env: { HSMCTL_RUNTIME_DIR: join(dir, name) },
    trace,
    platformTraces,
  })
  mkdirSync(join(dir, name), { recursive: true, mode: 0o700 })
  await taps.listen()
  const served: ((c: ServedIoctl) => void)[] = []
  const server = await SimServer.listen(join(dir, name, 'sim.sock'), {
    platform: vmm.sim,
    onIoctl: (c) => {
      taps.simIoctl(c)
      for (const f of served) f(c)
    },
  })
  const env = (tap = true) => ({
    ...process.env,
    LD_PRELOAD: tap ? `${tapPath()} ${shimPath()}` : shimPath(),
    HSM_SHIM_SOCKET: server.path,
    HSM_TAP_SOCKET: taps.server.path,
  })
  const calls = (pid: number, source: number): IoctlCall[] =>
    taps.ioctls
      .read(0, Infinity, (e) => e.pid === pid && e.source === source)
      .entries.map(decodeIoctlEntry)
  const session = (pid: number) => taps.server.sessions().find((s) => s.pid === pid)
  return {
    vmm,
    completed,
    served,
    trace,
    taps,
    server,
    env,
    calls,
    session,
    close: async () => {
      await server.close()
      await taps.close()
    },
  }
}

/** What both sides decode alike: the fds and times are each side's own. */
const comparable = (c: IoctlCall) => ({
  name: c.name,
  arg: c.arg,
  out: c.out,
  unreadable: c.unreadable,
  result: c.result,
  errno: c.errno,
})
const sorted = (calls: IoctlCall[]) => calls.map((c) => JSON.stringify(comparable(c))).sort()

const requestOf = (r: {
  vmid: number
  vcpu: number
  type: number | string
  write: boolean
  addr: bigint
  size: number
  value: bigint
}) => ({
  vmid: r.vmid,
  vcpu: r.vcpu,
  type: r.type,
  write: r.write,
  addr: r.addr,
  size: r.size,
  value: r.value,
})

describe.skipIf(helperUnavailable)('libhsm-tap.so stacked on the shim', () => {
  let s: Awaited<ReturnType<typeof setup>> | undefined
  beforeAll(() => buildHelper(), 120_000)
  afterEach(async () => {
    await s?.close()
    s = undefined
  })

  it("vm-sample: the tap's ioctls and I/O requests are those the simulation saw", async () => {
    s = await setup('sample')
    const p = new Program(spawn(vmSamplePath(), [], { env: s.env() }))
    try {
      const [, vmidText, vcpuText] = await p.waitFor(/vmid (\d+), (\d+) vCPUs?/)
      await p.waitFor(/Start VM! \[0\]/)
      const vmid = Number(vmidText)
      const vcpus = Number(vcpuText)
      expect(vcpus).toBeGreaterThan(1)
      // port I/O on every vCPU, writes and reads of each size; 0xcf8 the HSM keeps (§4.6)
      const accesses = [
        { addr: 0x3f8, size: 1, dir: 'write' as const, value: 0x41 },
        { addr: 0x60, size: 1, dir: 'read' as const },
        { addr: 0x80, size: 4, dir: 'write' as const, value: 0xdead_beef },
        { addr: 0x1f0, size: 2, dir: 'read' as const },
        { addr: 0xcf8, size: 4, dir: 'write' as const, value: 0x8000_0000 },
        { addr: 0x510, size: 4, dir: 'read' as const },
      ]
      let n = 0
      for (let round = 0; round < 5; round++) {
        for (const a of accesses) {
          await s.vmm.sim.guestAccess({
            vmid,
            vcpu: n++ % vcpus,
            type: 'pio',
            dir: a.dir,
            addr: a.addr,
            size: a.size,
            ...(a.value !== undefined ? { value: a.value } : {}),
          })
        }
      }
      p.child.kill('SIGINT')
      expect(await p.exited).toBe(0)
      const pid = p.child.pid!
      await until('the tap to say goodbye', () => s!.session(pid)?.connected === false)

      const tap = s.calls(pid, IoctlSource.TAP)
      const sim = s.calls(pid, IoctlSource.SIM)
      expect(tap.map((c) => c.name)).toEqual(
        expect.arrayContaining([
          'CREATE_VM',
          'SET_MEMSEG',
          'SET_VCPU_REGS',
          'CREATE_IOREQ_CLIENT',
          'START_VM',
          'ATTACH_IOREQ_CLIENT',
          'NOTIFY_REQUEST_FINISH',
          'PAUSE_VM',
          'DESTROY_IOREQ_CLIENT',
          'DESTROY_VM',
        ]),
      )
      expect(sorted(tap)).toEqual(sorted(sim))
      expect(tap.find((c) => c.name === 'CREATE_VM')?.out).toMatchObject({ vmid, vcpu_num: vcpus })

      // the requests the program completed, in order, with the values it answered
      const byTap = [...records(s.taps.tapTrace.read(0).bytes)].map((e) =>
        requestOf({ ...e, write: e.dir === 'write', type: e.type }),
      )
      const typeName = ['pio', 'mmio', 'pcicfg']
      const bySim = s.completed
        .filter((r) => r.vmid === vmid && r.client === CLIENT_DEFAULT)
        .map((r) => requestOf({ ...r, type: typeName[r.type]! }))
      expect(bySim).toHaveLength(25) // 0xcf8 five times went to the HSM, not the program
      expect(byTap).toEqual(bySim)
      expect(
        byTap.filter((r) => !r.write).every((r) => r.value === (1n << BigInt(8 * r.size)) - 1n),
      ).toBe(true)
      // the tap's own totals: nothing dropped, every call counted
      expect(s.session(pid)).toMatchObject({
        program: 'vm-sample',
        dropped: 0,
        ioctls: tap.length,
        ioreqs: 25,
        vms: [],
      })
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL')
    }
  }, 120_000)

  it("as on hardware (the platform sees no request): a traced VM's requests join the daemon's trace, by its program's name for it", async () => {
    s = await setup('hardware', { platformTraces: false })
    const p = new Program(spawn(vmSamplePath(), ['--name', 'hwvm'], { env: s.env() }))
    try {
      const vmid = Number((await p.waitFor(/vmid (\d+)/))[1])
      await p.waitFor(/Start VM! \[0\]/)
      for (const [addr, dir] of [
        [0x3f8, 'write'],
        [0x64, 'read'],
        [0x3f8, 'write'],
      ] as const)
        await s.vmm.sim.guestAccess({ vmid, vcpu: 0, type: 'pio', dir, addr, size: 1, value: 7 })
      const sim = s.completed.map((r) =>
        requestOf({ ...r, type: ['pio', 'mmio', 'pcicfg'][r.type]! }),
      )
      const of = (hub: TraceHub) =>
        [...records(hub.read(0).bytes)].map((e) => requestOf({ ...e, write: e.dir === 'write' }))
      await until('the tap to report the three requests', () => of(s!.trace).length === 3)
      // the daemon's trace holds exactly what the program completed, as the tap's own does
      expect(of(s.trace)).toEqual(sim)
      expect(of(s.taps.tapTrace)).toEqual(sim)
      // and the VM is known by the name CREATE_VM gave it, unless the daemon has that name
      expect(s.taps.traceVms([])).toEqual([{ vmid, name: 'hwvm' }])
      expect(s.taps.traceVms([{ vmid: 99, name: 'hwvm' }])).toEqual([
        { vmid: 99, name: 'hwvm' },
        { vmid, name: `outside-${vmid}` },
      ])
      p.child.kill('SIGINT')
      expect(await p.exited).toBe(0)
      // destroyed by vm-sample at SIGINT, its process gone: no longer listed
      await until('the tap to say goodbye', () => s!.session(p.child.pid!)?.connected === false)
      expect(s.taps.traceVms([])).toEqual([])
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL')
    }
  }, 120_000)

  it('tap-probe: a bad pointer, a file that is not the HSM, a dup, a value, an unknown request, a fork', async () => {
    s = await setup('probe')
    const p = new Program(spawn(TAP_PROBE, [], { env: s.env() }))
    expect(await p.exited, p.err).toBe(0)
    const pid = p.child.pid!
    const child = Number((await p.waitFor(/child (\d+)/))[1])
    await until('both taps to say goodbye', () =>
      [pid, child].every((x) => s!.session(x)?.connected === false),
    )
    const said = [...p.out.matchAll(/^(.+) (-?\d+) (\d+)$/gm)].map((m) => ({
      what: m[1]!,
      result: Number(m[2]),
      errno: Number(m[3]),
    }))
    const tap = s.calls(pid, IoctlSource.TAP)
    // every call the program made on an HSM fd, in order, with the result it got; the one
    // on /dev/null (ACRN's type, another file) passed on untraced
    expect(said.map((x) => x.what)).toContain('null PAUSE_VM')
    const onHsm = said.filter((x) => x.what !== 'null PAUSE_VM' && !x.what.startsWith('child'))
    expect(tap.map((c) => [c.name, c.result])).toEqual(
      onHsm.map((x) => [
        x.what === 'unknown' ? 'ioctl 0x0000a27f' : x.what.replace(/^dup /, ''),
        x.result,
      ]),
    )
    expect(tap[0]!.arg).toMatchObject({ uuid: '"probe"' })
    expect(tap[1]).toMatchObject({ unreadable: true, errno: 'EFAULT' })
    expect(tap[1]!.arg).toBeUndefined()
    expect(tap[2]!.arg).toEqual({ value: '0x4' })
    // the simulation saw the same (not the child's: under the shim its fd is /dev/null)
    expect(sorted(s.calls(pid, IoctlSource.SIM))).toEqual(sorted(tap))
    // the child connected as a process of its own
    expect(s.calls(child, IoctlSource.TAP).map((c) => [c.name, c.errno])).toEqual([
      ['PAUSE_VM', 'ENOTTY'],
    ])
    expect(s.session(child)).toMatchObject({ program: 'tap-probe', ioctls: 1, dropped: 0 })
  }, 60_000)

  it('every call of a flood arrives when hsmd reads, none dropped', async () => {
    s = await setup('flood')
    const calls = 5000
    const p = new Program(spawn(shimLoadPath(), ['1', String(calls)], { env: s.env() }))
    expect(await p.exited, p.err).toBe(0)
    const pid = p.child.pid!
    await until('the tap to say goodbye', () => s!.session(pid)?.connected === false)
    // CREATE_VM, the flood, PAUSE_VM
    expect(s.session(pid)).toMatchObject({ ioctls: calls + 2, dropped: 0 })
    expect(s.calls(pid, IoctlSource.TAP)).toHaveLength(calls + 2)
  }, 120_000)

  it('never waits for hsmd: with nobody reading, the program runs to its end and the drops are counted', async () => {
    s = await setup('stuck')
    // a tap socket that accepts and reads nothing until the program has made every call
    const path = join(dir, 'stuck', 'nobody-reads.sock')
    let peer: Socket | undefined
    const chunks: Buffer[] = []
    const net = createServer((socket) => {
      peer = socket
      socket.pause()
      socket.on('data', (d: Buffer) => chunks.push(d))
    })
    await new Promise<void>((resolve) => net.listen(path, resolve))
    try {
      // 56-byte records: many times the tap's 1 MiB ring and the socket's buffers
      const calls = 40_000
      // its last call (PAUSE_VM, which the simulation sees) made while nothing was read:
      // from then on, read what the tap sends
      const lastCall = new Promise<void>((resolve) =>
        s!.served.push((c) => {
          if (c.request === Ioctl.PAUSE_VM) resolve()
        }),
      )
      const p = new Program(
        spawn(shimLoadPath(), ['1', String(calls)], {
          // at exit it waits for the reader this long at most: a hang guard here
          env: { ...s.env(), HSM_TAP_SOCKET: path, HSM_TAP_EXIT_MS: '60000' },
        }),
      )
      await lastCall
      expect(peer).toBeDefined()
      const ended = new Promise<void>((resolve) => peer!.on('end', resolve))
      peer!.resume()
      expect(await p.exited, p.err).toBe(0)
      await ended
      let ioctls = 0
      const totals: TapTotals[] = []
      new TapDecoder({
        hello: () => {},
        ioctl: () => ioctls++,
        ioreq: () => {},
        totals: (t) => totals.push(t),
      }).push(Buffer.concat(chunks))
      const last = totals.at(-1)!
      expect(last.ioctls).toBe(BigInt(calls + 2))
      expect(last.dropped).toBeGreaterThan(0n)
      expect(BigInt(ioctls) + last.dropped).toBe(last.ioctls)
    } finally {
      net.close()
    }
  }, 360_000)

  it('vm-sample ends, and does not spin, when the device goes away under it', async () => {
    s = await setup('gone')
    const p = new Program(spawn(vmSamplePath(), [], { env: s.env(false) }))
    try {
      await p.waitFor(/Start VM! \[0\]/)
      await s.server.close() // the shim's calls fail with EIO from now on
      expect(await p.exited).toBe(1)
      expect(p.out).toMatch(/ATTACH_IOREQ_CLIENT failed: Input\/output error\n$/)
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL')
    }
  }, 60_000)

  it('passes calls on untouched without HSM_TAP_SOCKET, and says once that hsmd is not there', async () => {
    s = await setup('absent')
    const { HSM_TAP_SOCKET: _unset, ...env } = s.env()
    // the servers answering the program run on this event loop: no spawnSync
    const off = new Program(spawn(shimLoadPath(), ['1', '200'], { env }))
    expect(await off.exited, off.err).toBe(0)
    expect(off.err).toBe('')
    const absent = new Program(
      spawn(shimLoadPath(), ['2', '200'], {
        env: { ...env, HSM_TAP_SOCKET: join(dir, 'absent', 'nobody.sock') },
      }),
    )
    expect(await absent.exited, absent.err).toBe(0)
    expect(absent.out).toMatch(/^calls 400 /)
    expect(absent.err.match(/hsm-tap: cannot reach hsmd at .*nobody\.sock/g)).toHaveLength(1)
    expect(s.taps.server.sessions()).toEqual([])
  }, 60_000)
})
