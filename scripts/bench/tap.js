// What the tap (helper/TAP.md) costs a traced program: a C client's ioctl round trips per
// second under the device shim with libhsm-tap.so stacked on it (the value), and without
// (the floor), against the same simulation in the same rounds. The client is
// build/shim-load (NOTIFY_REQUEST_FINISH on a VM with no default client, HSM's no-op,
// §4.7) from 1 thread; the tap streams every call to a tap server in this process, beside
// the simulation's server, as in hsmd. Target (issue 12): the tap keeps >= 80%.
//
// On a loaded machine the ratio swings around 1, above as often as below (0.7 to 3.4 at
// load 11 to 16 on 2 CPUs): each round trip is then mostly scheduling. Something that
// keeps this process's event loop turning speeds the floor up too: a child writing one
// byte every 2 ms to a socket here made the shim alone 2 to 7 times faster at load 15
// (the server's answers to a shim it must wake through the doorbell are slow to come),
// and the tap's batches do that as a side effect. The tap's own work per call is two
// vDSO clock reads, a table lookup and a 56-byte copy under a lock.
//
//   npm run build && npm run bench -- tap        (BENCH_CALLS=10000 to change the count)
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout } from 'node:timers'
import { URL } from 'node:url'
import { execa } from 'execa'
import { rounds, ROUNDS } from './_lib.js'

export const title =
  'ioctl round trips/s of a C client under the shim: with the tap stacked on it, and without'

const dist = new URL('../../dist/', import.meta.url)
const load = (path) => import(new URL(path, dist).href)

/** Calls per second from shim-load's line (`... per_second R ...`). */
async function cRate(program, args, env) {
  // execa's promise: the servers answering it run on this event loop
  const { stdout } = await execa(program, args.map(String), { env })
  const m = /per_second (\d+)/.exec(stdout)
  if (!m) throw new Error(`${program} printed: ${stdout}`)
  return Number(m[1])
}

export async function run(report) {
  const [{ createSimPlatform }, { SimServer }, preflight, { TapServer }, { IoctlLog }] =
    await Promise.all([
      load('core/sim/index.js'),
      load('core/native/sim-server.js'),
      load('core/native/preflight.js'),
      load('core/native/tap-server.js'),
      load('core/trace/ioctl-log.js'),
    ])
  for (const path of [preflight.shimLoadPath(), preflight.tapPath()]) {
    if (!existsSync(path)) throw new Error(`${path} is not built: make -C helper`)
  }
  const calls = Number(process.env.BENCH_CALLS ?? 10_000)
  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-bench-tap-'))
  const server = await SimServer.listen(join(dir, 'sim.sock'), { platform: createSimPlatform() })
  const taps = new TapServer(join(dir, 'tap.sock'), {
    ioctls: new IoctlLog(),
    publish: () => {},
    keepEnded: ROUNDS + 1, // every traced run, for the check
  })
  await taps.listen()
  try {
    const shim = { LD_PRELOAD: preflight.shimPath(), HSM_SHIM_SOCKET: server.path }
    const traced = {
      ...shim,
      LD_PRELOAD: `${preflight.tapPath()} ${preflight.shimPath()}`,
      HSM_TAP_SOCKET: taps.path,
    }
    const s = await rounds({
      shim: () => cRate(preflight.shimLoadPath(), [1, calls], shim),
      tap: () => cRate(preflight.shimLoadPath(), [1, calls], traced),
    })
    report.figure({
      label: 'shim-load under tap + shim, 1 thread',
      unit: 'ioctls/s',
      value: s.tap,
      floor: s.shim,
      floorLabel: 'shim-load under the shim alone, 1 thread, same simulation',
      target: { atLeast: 0.8 },
    })
    // every traced run (the warm-up round's too) streamed its calls: CREATE_VM, the
    // NOTIFYs, PAUSE_VM; a run's 56-byte records fit the tap's 1 MiB ring, so none drop
    const until = Date.now() + 30_000
    const sessions = () => taps.sessions()
    while (sessions().some((t) => t.connected) && Date.now() < until)
      await new Promise((r) => setTimeout(r, 20))
    const runs = sessions()
    const expected = (ROUNDS + 1) * (calls + 2)
    const streamed = runs.reduce((n, t) => n + t.ioctls, 0)
    const dropped = runs.reduce((n, t) => n + t.dropped, 0)
    report.check(
      'the tap streamed every call of every traced run, none dropped',
      streamed === expected && dropped === 0,
      `${streamed} of ${expected} ioctls, ${dropped} dropped`,
    )
  } finally {
    await taps.close()
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
