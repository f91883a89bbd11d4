// `ioreq report` on recordings of 1,000 and 10,000 distinct rows (3 requests each): the
// whole command's CPU time against the same command's start-up (`ioreq report --help`:
// node, oclif and the command loaded, no recording), and the table rendering alone
// in-process, 10,000 rows against 1,000: about 10 when it is linear (about 100 when it is
// quadratic, as cli-table3's layout was: 27.5 s for 8,000 rows).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { rounds, START_UP_ROUNDS, startUpMeasures, wallNote } from './_lib.js'

export const title = 'ioreq report: 1,000 and 10,000 rows, the command and its table'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const dist = (path) => import(join(root, 'dist', path))
const runJs = join(root, 'bin', 'run.js')

async function writeRecording(path, rows) {
  const { writeRecord, packFlags } = await dist('core/trace/record.js')
  const { TraceFileWriter } = await dist('core/trace/file.js')
  const n = rows * 3
  const bytes = new Uint8Array(n * 32)
  const view = new DataView(bytes.buffer)
  for (let i = 0; i < n; i++)
    writeRecord(view, i * 32, {
      t: (i / n) * 10_000,
      addr: BigInt(0x1000 + (i % rows)),
      value: 0n,
      latencyNs: 1000 + (i % 977),
      vmid: 1,
      vcpu: 0,
      size: 4,
      flags: packFlags(0, i % 2 === 0, 0, 4),
    })
  const writer = new TraceFileWriter(path, {
    createdAt: '2026-01-01T00:00:00.000Z',
    stoppedAt: '2026-01-01T00:00:10.000Z',
    vms: [{ vmid: 1, name: 'demo' }],
  })
  writer.write(bytes)
  writer.close()
}

/**
 * A measure: CPU ms of rendering the report's table for a recording, in-process, per
 * render of `times` (a small table is too quick to time once).
 */
async function render(path, times) {
  const { readTraceFile } = await dist('core/trace/file.js')
  const { TraceStats } = await dist('core/trace/stats.js')
  const { TopModel } = await dist('core/trace/view.js')
  const { renderTop } = await dist('ui/trace.js')
  const stats = new TraceStats()
  stats.ingest(readTraceFile(path).records)
  const model = new TopModel()
  model.update([], 0)
  model.update(stats.rows(), 10_000)
  const rows = model.rows()
  return () => {
    const start = process.cpuUsage()
    for (let i = 0; i < times; i++) renderTop(rows, model.totals, 'table', '')
    const used = process.cpuUsage(start)
    return (used.user + used.system) / 1000 / times
  }
}

export async function run(report) {
  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-bench-report-'))
  try {
    const small = join(dir, '1k.hsmtrace')
    const large = join(dir, '10k.hsmtrace')
    await writeRecording(small, 1_000)
    await writeRecording(large, 10_000)
    const env = { ...process.env, NODE_ENV: undefined, NO_COLOR: '1' }
    const walls = {}
    const t = await rounds(
      startUpMeasures(
        {
          help: [process.execPath, [runJs, 'ioreq', 'report', '--help'], { env }],
          '1k': [process.execPath, [runJs, 'ioreq', 'report', small], { env }],
          '10k': [process.execPath, [runJs, 'ioreq', 'report', large], { env }],
        },
        walls,
      ),
      { count: START_UP_ROUNDS, warmup: 1 },
    )
    const help = 'hsmctl ioreq report --help (the same start-up, no recording)'
    for (const [rows, atMost] of [
      ['1k', 1.5],
      ['10k', 3],
    ]) {
      report.figure({
        label: `hsmctl ioreq report, ${rows === '1k' ? '1,000' : '10,000'} rows`,
        unit: 'CPU ms',
        value: t[rows],
        floor: t.help,
        floorLabel: help,
        target: { atMost },
      })
    }
    report.note(wallNote(walls, { help: '--help', '1k': '1,000 rows', '10k': '10,000 rows' }))
    // the warm-up round renders both once: the first renders also compile the code
    const r = await rounds({
      small: await render(small, 20),
      large: await render(large, 2),
    })
    report.figure({
      label: 'the report table alone, 10,000 rows',
      unit: 'CPU ms',
      value: r.large,
      floor: r.small,
      floorLabel: 'the same table of 1,000 rows (linear: 10x, quadratic: 100x)',
      target: { atMost: 20 },
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
