// ioctl round trips per second through the native backend under the device shim, each
// against a floor: build/frame-floor (helper/frame-floor.c), a bare C client and server
// exchanging the very frames a shimmed NOTIFY_REQUEST_FINISH exchanges (a 64-byte request,
// a 32-byte reply) over the same transport, waited on the same way (over the ring: the
// learned poll, then the client asleep on the ring's bell and the server on its socket),
// with no simulation, no helper and no shim. The ioctl is NOTIFY on a VM without a default client: a struct copy
// and HSM's lookup, nothing else (§4.7), so the figure is the cost of the path.
//
// - helper + shim: NativeProcess (this process) -> hsm-helper with libhsm-shim.so
//   preloaded -> SimServer (this process, as in hsmd --serve-sim) -> the simulation;
//   pipelined (1000 calls in flight to the helper, which runs them one by one, so one is
//   in flight on the ring) and one at a time (each call also wakes the helper from its
//   stdin, so its floor adds a blocking round trip per call); over the shim's ring (the
//   default) and over its socket (HSM_SHIM_TRANSPORT=socket). Pipelined over the ring, the
//   floor is `frame-floor ring-piped N 1000`: the same ring calls, one in flight, made by a
//   client fed 1000 at a time through a pipe by the server's own thread, as this process's
//   thread both serves the ring and feeds hsm-helper (it turns its event loop between ring
//   polls, and the client sleeps on its pipe between batches).
// - shim-load (helper/shim-load.c): a C program issuing the same ioctl under the shim, no
//   helper, from 1 thread (floor: 1 request in flight) and from 16 (floor: `frame-floor
//   ring-threads 16`, 16 client threads each waiting for its own reply as the shim's callers
//   do: the learned poll, then the ring's bell, or an eventfd while another thread holds the
//   bell, replies for other threads handed over by whoever drains the ring; the streaming
//   floor, one thread with 16 in flight, is printed as a note: it has no per-caller wake-up).
//
//   npm run build && npm run bench -- native        (BENCH_CALLS=10000 to change the count)
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { URL } from 'node:url'
import { execa } from 'execa'
import { derive, human, median, perSecond, rounds } from './_lib.js'

// Targets of the ring figures, 1 in flight, from what their floors show on the 2-vCPU VM.
// When the machine leaves both sides of a bare ring a CPU each they never sleep: 0.5 to 3 µs
// a round trip (330k to 2M/s), where a shimmed call costs 8 to 20 µs of work in the
// JavaScript server, the helper and the shim, so the path reaches 0.04 to 0.2 of the floor
// (pipelined 50k to 110k/s); on a loaded machine both wait for wake-ups and the path is 0.5
// to 0.9 of it. Each target is under the quiet medians (README "Figures", SHIM.md "Cost").
// Pipelined: quiet 0.058 to 0.2 (single rounds down to 0.042), loaded 0.59 to 0.87.
const PIPED_TARGET = 0.04
// shim-load, 1 thread: quiet 0.11 to 0.36, loaded 0.12 to 0.84.
const LOAD1_TARGET = 0.08
// shim-load, 16 threads, against 16 waiting threads: quiet 0.11 to 0.24, loaded 0.11 to 0.49.
const LOAD16_TARGET = 0.07

export const title = 'ioctl round trips/s through hsm-helper and the device shim'

const dist = new URL('../../dist/', import.meta.url)
const load = (path) => import(new URL(path, dist).href)

/** Calls per second from a line of frame-floor or shim-load (`... per_second R ...`). */
async function cRate(program, args, env) {
  const { stdout } = await execa(program, args.map(String), env ? { env } : {})
  const m = /per_second (\d+)/.exec(stdout)
  if (!m) throw new Error(`${program} printed: ${stdout}`)
  return Number(m[1])
}

export async function run(report) {
  const [{ createSimPlatform }, { SimServer }, { NativeProcess }, preflight, { Ioctl }, ring] =
    await Promise.all([
      load('core/sim/index.js'),
      load('core/native/sim-server.js'),
      load('core/native/helper-process.js'),
      load('core/native/preflight.js'),
      load('core/abi/ioctls.js'),
      load('core/native/ring.js'),
    ])
  for (const program of [preflight.frameFloorPath(), preflight.shimLoadPath()]) {
    if (!existsSync(program)) throw new Error(`${program} is not built: make -C helper`)
  }
  if (!ring.ringAddon()) throw new Error(`no shared-memory ring: ${ring.ringAddonError()}`)
  const calls = Number(process.env.BENCH_CALLS ?? 10_000)
  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-bench-'))
  const platform = createSimPlatform()
  const server = await SimServer.listen(join(dir, 'sim.sock'), { platform })
  const shimEnv = (transport) => ({
    LD_PRELOAD: preflight.shimPath(),
    HSM_SHIM_SOCKET: server.path,
    HSM_SHIM_TRANSPORT: transport,
  })
  const helpers = []
  try {
    const shimmed = async (transport) => {
      const proc = await NativeProcess.start({ checkDevice: false, env: shimEnv(transport) })
      helpers.push(proc)
      // One VM, no default client: NOTIFY is HSM's no-op (§4.7).
      const fd = await proc.open('/dev/acrn_hsm')
      const page = await proc.mmap(4096)
      const creation = new Uint8Array(48)
      const v = new DataView(creation.buffer)
      v.setBigUint64(32, page, true)
      v.setBigUint64(40, 0b10n, true)
      await proc.ioctl(fd, Ioctl.CREATE_VM, creation)
      return { proc, fd }
    }
    const overRing = await shimmed('ring')
    const overSocket = await shimmed('socket')
    if (server.shimTransports.ring !== 1) throw new Error('the shim did not take the ring')
    const notify = new Uint8Array(8) // vmid 0, reserved 0, vcpu 0
    const serial =
      ({ proc, fd }) =>
      async (n) => {
        for (let i = 0; i < n; i++) await proc.ioctl(fd, Ioctl.NOTIFY_REQUEST_FINISH, notify)
      }
    const pipelined =
      ({ proc, fd }) =>
      async (n) => {
        for (let done = 0; done < n; done += 1000) {
          const batch = []
          for (let i = 0; i < Math.min(1000, n - done); i++)
            batch.push(proc.ioctl(fd, Ioctl.NOTIFY_REQUEST_FINISH, notify))
          await Promise.all(batch)
        }
      }
    const floor = preflight.frameFloorPath()
    const shimLoad = preflight.shimLoadPath()
    const s = await rounds({
      ring1: () => cRate(floor, ['ring', calls, 1]),
      ringPiped: () => cRate(floor, ['ring-piped', calls, 1000]),
      shimPiped: () => perSecond(calls, pipelined(overRing)),
      shimSerial: () => perSecond(calls / 4, serial(overRing)),
      load1: () => cRate(shimLoad, [1, calls / 2], shimEnv('ring')),
      ring16: () => cRate(floor, ['ring', calls, 16]),
      threads16: () => cRate(floor, ['ring-threads', 16, calls / 16]),
      load16: () => cRate(shimLoad, [16, calls / 16], shimEnv('ring')),
      socket1: () => cRate(floor, ['socket', calls / 2, 1]),
      // Context only: the ring as both sides waited on it before they learned (a note).
      ringPoll1: () => cRate(floor, ['ring-poll', calls / 2, 1]),
      ringPoll16: () => cRate(floor, ['ring-poll', calls, 16]),
      socketPiped: () => perSecond(calls / 4, pipelined(overSocket)),
      socketSerial: () => perSecond(calls / 8, serial(overSocket)),
      loadSocket: () => cRate(shimLoad, [1, calls / 8], shimEnv('socket')),
    })
    // One at a time, each call also wakes the helper from its stdin: one blocking round
    // trip (the socket floor's) on top of the transport's own.
    const thenWake = (transport) => derive((t, w) => 1 / (1 / t + 1 / w), transport, s.socket1)
    const bare = 'bare C client and server'
    const figures = [
      [
        'helper + shim, ring, pipelined',
        s.shimPiped,
        s.ringPiped,
        `${bare}, ring, 1 in flight, the server's thread also feeding the client 1000 calls at a time through pipes`,
        PIPED_TARGET,
      ],
      [
        'helper + shim, ring, one at a time',
        s.shimSerial,
        thenWake(s.ring1),
        `${bare}: a ring round trip + a socket round trip (waking the peer) per call`,
        0.1,
      ],
      ['shim-load, ring, 1 thread', s.load1, s.ring1, `${bare}, ring, 1 in flight`, LOAD1_TARGET],
      [
        'shim-load, ring, 16 threads',
        s.load16,
        s.threads16,
        `${bare}, ring, 16 client threads each waiting for its own reply (poll, bell, hand-over)`,
        LOAD16_TARGET,
      ],
      [
        'helper + shim, socket, pipelined',
        s.socketPiped,
        s.socket1,
        `${bare}, socket, 1 in flight`,
        0.05,
      ],
      [
        'helper + shim, socket, one at a time',
        s.socketSerial,
        thenWake(s.socket1),
        `${bare}: two socket round trips per call`,
        0.07,
      ],
      [
        'shim-load, socket, 1 thread',
        s.loadSocket,
        s.socket1,
        `${bare}, socket, 1 in flight`,
        0.04,
      ],
    ]
    for (const [label, value, floorSeries, floorLabel, atLeast] of figures) {
      report.figure({
        label,
        unit: 'ioctls/s',
        value,
        floor: floorSeries,
        floorLabel,
        target: { atLeast },
      })
    }
    report.note(
      `the floors wait on the ring as the shim and the server do (a learned poll of at most 50 µs, then a futex or a doorbell); polled as before (up to 1 ms per reply, 200 µs in the server) the bare ring gave ${human(median(s.ringPoll1))} round trips/s with 1 in flight (ring floor now ${human(median(s.ring1))}) and ${human(median(s.ringPoll16))} with 16 (now ${human(median(s.ring16))})`,
    )
    report.note(
      `shim-load 16 threads against the streaming floor (one client thread, 16 in flight, no per-caller wake-up): ${human(median(s.ring16))} round trips/s, ratio ${(median(s.load16) / median(s.ring16)).toFixed(3)}; against its own (16 waiting threads): ${human(median(s.threads16))}`,
    )
    report.note(
      `helper + shim pipelined against the bare ring alone (no pipes, the server doing nothing else): ${human(median(s.ring1))} round trips/s, ratio ${(median(s.shimPiped) / median(s.ring1)).toFixed(3)}`,
    )
    report.note(
      'wall-clock rates: the calls cross processes, and the ring polls (CPU time would count its spinning)',
    )
    report.note(
      'on an oversubscribed machine a ring round trip waits for both sides to be on a CPU at once: ring figures and their floors swing by 10x or more',
    )
  } finally {
    for (const proc of helpers) await proc.exit()
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
