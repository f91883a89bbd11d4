// Start-up: `hsmctl abi --json`, an oclif command with no daemon, against node importing
// @oclif/core alone (what the CLI adds beyond its framework); and that import against
// `node -e 0` (what the framework costs), each run interleaved with its floor. Times are
// CPU time (user + system) of each run, which a loaded machine does not stretch; the
// wall-clock medians of the same runs are noted under them.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { rounds, START_UP, START_UP_ROUNDS, startUpMeasures, wallNote } from './_lib.js'

export const title = 'start-up: hsmctl abi --json and the oclif framework (CPU time)'

const runJs = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'run.js')

export async function run(report) {
  const walls = {}
  const s = await rounds(
    startUpMeasures(
      {
        node: START_UP.node,
        oclif: START_UP.oclif,
        abi: [process.execPath, [runJs, 'abi', '--json']],
      },
      walls,
    ),
    { count: START_UP_ROUNDS, warmup: 2 },
  )
  report.figure({
    label: 'node importing @oclif/core',
    unit: 'CPU ms',
    value: s.oclif,
    floor: s.node,
    floorLabel: 'node -e 0',
    target: { atMost: 3 },
  })
  report.figure({
    label: 'hsmctl abi --json',
    unit: 'CPU ms',
    value: s.abi,
    floor: s.oclif,
    floorLabel: 'node importing @oclif/core',
    target: { atMost: 1.6 },
  })
  report.note(
    wallNote(walls, { node: 'node -e 0', oclif: 'node + @oclif/core', abi: 'hsmctl abi --json' }),
  )
}
