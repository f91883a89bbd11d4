// hsmd: start-up of `hsmctl vm list --json` against a running daemon, as a ratio to
// `node -e 0` measured alongside (target <= 1.6), and requests per second from one
// client over the socket (target >= 20,000), one at a time and pipelined.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { compareCommands, fmt, opsPerSecond } from './_lib.js'

export const title = 'hsmctl vm list start-up (ratio to node -e 0) and daemon requests/s'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const runJs = join(root, 'bin', 'run.js')

export async function run() {
  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-bench-'))
  const env = {
    ...process.env,
    HSMCTL_RUNTIME_DIR: join(dir, 'run'),
    HSMCTL_STATE_DIR: join(dir, 'state'),
  }
  const cli = (...args) => spawnSync(process.execPath, [runJs, ...args], { env, encoding: 'utf8' })
  try {
    cli('daemon', 'start')
    for (const name of ['a', 'b', 'c']) cli('vm', 'create', name, '--vcpus', '1', '--memory', '1M')
    const runs = Number(process.env.BENCH_RUNS ?? 15)
    const t = compareCommands(
      {
        node: [process.execPath, ['-e', '0']],
        list: [process.execPath, [runJs, 'vm', 'list', '--json'], { env }],
      },
      runs,
    )
    console.log(`node -e 0                 median ${fmt(t.node)} ms   (baseline, ${runs} runs)`)
    console.log(
      `hsmctl vm list --json     median ${fmt(t.list)} ms   ratio ${fmt(t.list / t.node, 2)}x   (target <= 1.6x)`,
    )

    const { connect } = await import(join(root, 'dist', 'core', 'daemon', 'client.js'))
    const { socketPath } = await import(join(root, 'dist', 'core', 'daemon', 'paths.js'))
    const client = await connect(socketPath('sim', env))
    const n = 20_000
    const serial = await opsPerSecond(
      async (count) => {
        for (let i = 0; i < count; i++) await client.call('vm.list')
      },
      n / 4,
      3,
    )
    const pipelined = await opsPerSecond(
      async (count) => {
        const window = 64
        let sent = 0
        const lanes = Array.from({ length: window }, async () => {
          while (sent < count) {
            sent++
            await client.call('vm.list')
          }
        })
        await Promise.all(lanes)
      },
      n,
      3,
    )
    const status = await opsPerSecond(
      async (count) => {
        await Promise.all(Array.from({ length: count }, () => client.call('daemon.status')))
      },
      n,
      3,
    )
    client.close()
    console.log(`vm.list one at a time     ${fmt(serial, 0)} req/s`)
    console.log(`vm.list pipelined (64)    ${fmt(pipelined, 0)} req/s   (target >= 20,000)`)
    console.log(`daemon.status all at once ${fmt(status, 0)} req/s`)
  } finally {
    cli('daemon', 'stop')
    rmSync(dir, { recursive: true, force: true })
  }
}
