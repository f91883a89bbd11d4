// Start-up: `hsmctl abi --json`, an oclif command with no daemon, against node importing
// @oclif/core alone (what the CLI adds beyond its framework); and that import against
// `node -e 0` (what the framework costs), each run interleaved with its floor.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { rounds, START_UP, START_UP_ROUNDS, timeCommand } from './_lib.js'

export const title = 'start-up: hsmctl abi --json and the oclif framework'

const runJs = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'run.js')

export async function run(report) {
  const s = await rounds(
    {
      node: () => timeCommand(...START_UP.node),
      oclif: () => timeCommand(...START_UP.oclif),
      abi: () => timeCommand(process.execPath, [runJs, 'abi', '--json']),
    },
    { count: START_UP_ROUNDS, warmup: 2 },
  )
  report.figure({
    label: 'node importing @oclif/core',
    unit: 'ms',
    value: s.oclif,
    floor: s.node,
    floorLabel: 'node -e 0',
    target: { atMost: 2 },
  })
  report.figure({
    label: 'hsmctl abi --json',
    unit: 'ms',
    value: s.abi,
    floor: s.oclif,
    floorLabel: 'node importing @oclif/core',
    target: { atMost: 3 },
  })
}
