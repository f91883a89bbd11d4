// What the tap (helper/TAP.md) costs a traced program: a C client's ioctl round trips per
// second through the device shim, with and without libhsm-tap.so stacked on it, against
// the same simulation in the same run, rounds interleaved so that machine noise hits both
// alike. The client is build/shim-load (NOTIFY_REQUEST_FINISH on a VM with no default
// client, HSM's no-op, §4.7), 1 thread; the tap streams every call to a tap server in this
// process, as hsmd's would. Target: the tap keeps >= 80% of the round trips.
//
//   npm run build && npm run bench -- tap        (BENCH_CALLS=20000, BENCH_ROUNDS=7)
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { URL } from 'node:url'
import { execa } from 'execa'
import { fmt, median } from './_lib.js'

export const title = 'ioctl round trips/s of a C client under the shim, with the tap and without'

const dist = new URL('../../dist/', import.meta.url)
const load = (path) => import(new URL(path, dist).href)
const TARGET = 0.8

export async function run() {
  const [{ createSimPlatform }, { SimServer }, preflight, { TapServer }, { IoctlLog }] =
    await Promise.all([
      load('core/sim/index.js'),
      load('core/native/sim-server.js'),
      load('core/native/preflight.js'),
      load('core/native/tap-server.js'),
      load('core/trace/ioctl-log.js'),
    ])
  const shimLoad = preflight.shimLoadPath()
  const tap = preflight.tapPath()
  if (!existsSync(shimLoad) || !existsSync(tap)) {
    console.log(`shim-load or the tap is not built (${shimLoad}, ${tap}): make -C helper`)
    return
  }
  const calls = Number(process.env.BENCH_CALLS ?? 20_000)
  const rounds = Number(process.env.BENCH_ROUNDS ?? 7)
  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-bench-tap-'))
  const server = await SimServer.listen(join(dir, 'sim.sock'), { platform: createSimPlatform() })
  let published = 0
  const taps = new TapServer(join(dir, 'tap.sock'), {
    ioctls: new IoctlLog(),
    publish: () => published++,
  })
  await taps.listen()
  try {
    const shim = { LD_PRELOAD: preflight.shimPath(), HSM_SHIM_SOCKET: server.path }
    const traced = {
      LD_PRELOAD: `${tap} ${preflight.shimPath()}`,
      HSM_SHIM_SOCKET: server.path,
      HSM_TAP_SOCKET: taps.path,
    }
    const once = async (env) => {
      // execa's promise: the servers answering it run on this event loop
      const { stdout } = await execa(shimLoad, ['1', String(calls)], { env })
      const m = /per_second (\d+)/.exec(stdout)
      if (!m) throw new Error(`shim-load printed: ${stdout}`)
      return Number(m[1])
    }
    await once(shim) // warm-up
    const without = []
    const withTap = []
    for (let r = 0; r < rounds; r++) {
      without.push(await once(shim))
      withTap.push(await once(traced))
    }
    const [a, b] = [median(without), median(withTap)]
    // each round's pair ran back to back: the median of their ratios resists load swings
    const ratios = without.map((x, i) => withTap[i] / x)
    const ratio = median(ratios)
    const range = (xs) => `${fmt(Math.min(...xs), 0)}–${fmt(Math.max(...xs), 0)}`
    console.log(
      `shim-load, shim alone      ${fmt(a, 0).padStart(9)}/s   median of ${rounds} (${range(without)})`,
    )
    console.log(
      `shim-load, tap + shim      ${fmt(b, 0).padStart(9)}/s   median of ${rounds} (${range(withTap)})`,
    )
    const logged = taps.sessions().reduce((n, s) => n + s.ioctls, 0)
    const dropped = taps.sessions().reduce((n, s) => n + s.dropped, 0)
    console.log(
      `the tap streamed ${fmt(logged, 0)} ioctls (${fmt(dropped, 0)} dropped); load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    )
    console.log(
      `ratio, tap + shim / shim alone: ${(ratio * 100).toFixed(1)}% (median of the rounds' ratios, ${(Math.min(...ratios) * 100).toFixed(0)}–${(Math.max(...ratios) * 100).toFixed(0)}%)`,
    )
    console.log(
      `target: the tap keeps >= ${TARGET * 100}% of the round trips: ${ratio >= TARGET ? 'met' : 'NOT met'}`,
    )
  } finally {
    await taps.close()
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
