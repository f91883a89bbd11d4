// hsmd: start-up of `hsmctl vm list --json` against a running daemon (the fast path, no
// oclif: src/cli/fast.ts) against `node -e 0`, in CPU time (the command's and the
// daemon's share; wall-clock medians noted); and requests from one client, one at a
// time, 64 in flight and all at once, against the same calls answered by a bare server:
// hsmd's socket server in a process of its own replying the daemon's own answers
// (scripts/bench/_rpc-floor.js), so the same lines cross the same kind of socket. The
// requests are counted per second of CPU time of both ends (this process and the
// server's), which a loaded machine does not skew as it skews wall-clock rates.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  perCpuSecondWith,
  rounds,
  START_UP,
  START_UP_ROUNDS,
  startUpMeasures,
  wallNote,
} from './_lib.js'

export const title = 'hsmd: hsmctl vm list start-up and requests/s over the socket'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const runJs = join(root, 'bin', 'run.js')

/** The three ways one client calls: one at a time, 64 in flight, all n at once. */
const ways = {
  serial: (client, method) => (n) =>
    (async () => {
      for (let i = 0; i < n; i++) await client.call(method)
    })(),
  window: (client, method) => async (n) => {
    let sent = 0
    const lane = async () => {
      while (sent < n) {
        sent++
        await client.call(method)
      }
    }
    await Promise.all(Array.from({ length: 64 }, lane))
  },
  burst: (client, method) => (n) =>
    Promise.all(Array.from({ length: n }, () => client.call(method))),
}

export async function run(report) {
  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-bench-'))
  const env = {
    ...process.env,
    HSMCTL_RUNTIME_DIR: join(dir, 'run'),
    HSMCTL_STATE_DIR: join(dir, 'state'),
    // hsmd's 3 VMs only: not the host's acrn-dm VMs (bench acrn-dm times those)
    HSMCTL_ACRN_MNGR_DIR: join(dir, 'no-acrn', 'mngr'),
    HSMCTL_ACRN_CONF_DIR: join(dir, 'no-acrn', 'conf'),
  }
  const cli = (...args) => {
    const r = spawnSync(process.execPath, [runJs, ...args], { env, encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`hsmctl ${args.join(' ')}: ${r.stderr}`)
  }
  let floorServer
  const clients = []
  try {
    cli('daemon', 'start')
    for (const name of ['a', 'b', 'c']) cli('vm', 'create', name, '--vcpus', '1', '--memory', '1M')
    const { connect } = await import(join(root, 'dist', 'core', 'daemon', 'client.js'))
    const { socketPath } = await import(join(root, 'dist', 'core', 'daemon', 'paths.js'))
    const daemon = await connect(socketPath('sim', env))
    clients.push(daemon)
    const { pid: daemonPid } = await daemon.call('daemon.status')
    const walls = {}
    const s = await rounds(
      startUpMeasures(
        {
          node: START_UP.node,
          // the daemon's share of answering counts too
          list: [process.execPath, [runJs, 'vm', 'list', '--json'], { env }, [daemonPid]],
        },
        walls,
      ),
      { count: START_UP_ROUNDS, warmup: 2 },
    )
    report.figure({
      label: 'hsmctl vm list --json (3 VMs)',
      unit: 'CPU ms',
      value: s.list,
      floor: s.node,
      floorLabel: 'node -e 0 (vm list takes the fast path: no oclif)',
      target: { atMost: 1.6 },
    })
    report.note(wallNote(walls, { node: 'node -e 0', list: 'hsmctl vm list --json' }))

    const replies = {
      'vm.list': await daemon.call('vm.list'),
      'daemon.status': await daemon.call('daemon.status'),
    }
    const floorPath = join(dir, 'floor.sock')
    floorServer = spawn(
      process.execPath,
      [join(here, '_rpc-floor.js'), floorPath, JSON.stringify(replies)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    await once(floorServer.stdout, 'data')
    const floor = await connect(floorPath)
    clients.push(floor)

    const n = Number(process.env.BENCH_CALLS ?? 20_000)
    const cases = [
      ['vm.list, one at a time', 'serial', 'vm.list', n / 4, 0.45],
      ['vm.list, 64 in flight', 'window', 'vm.list', n, 0.45],
      ['daemon.status, all at once', 'burst', 'daemon.status', n, 0.6],
    ]
    const measures = {}
    for (const [, way, method, count] of cases) {
      measures[`${way} floor`] = () =>
        perCpuSecondWith([floorServer.pid], count, ways[way](floor, method))
      measures[way] = () => perCpuSecondWith([daemonPid], count, ways[way](daemon, method))
    }
    const r = await rounds(measures)
    for (const [label, way, method, , atLeast] of cases) {
      report.figure({
        label,
        unit: 'requests/CPU-s',
        value: r[way],
        floor: r[`${way} floor`],
        floorLabel: `hsmd's socket server alone, replying a fixed ${method} answer`,
        target: { atLeast },
      })
    }
  } finally {
    for (const c of clients) c.close()
    floorServer?.kill('SIGTERM')
    spawnSync(process.execPath, [runJs, 'daemon', 'stop'], { env })
    rmSync(dir, { recursive: true, force: true })
  }
}
