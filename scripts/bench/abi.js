// `hsmctl abi --json`: median wall time, as a ratio to `node -e 0` measured alongside.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { compareCommands, fmt } from './_lib.js'

export const title = 'hsmctl abi --json start-up, ratio to node -e 0'

const run_js = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'run.js')

export async function run() {
  const runs = Number(process.env.BENCH_RUNS ?? 15)
  const t = compareCommands(
    {
      node: [process.execPath, ['-e', '0']],
      abi: [process.execPath, [run_js, 'abi', '--json']],
    },
    runs,
  )
  console.log(`node -e 0            median ${fmt(t.node)} ms   (baseline, ${runs} runs)`)
  console.log(`hsmctl abi --json    median ${fmt(t.abi)} ms   ratio ${fmt(t.abi / t.node, 2)}x`)
}
