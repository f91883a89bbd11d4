// `ioreq report` on recordings of 1,000 and 10,000 distinct rows (3 requests each): the
// whole command's wall time (target: 10,000 rows in under 1 s), and the table rendering
// alone in-process, whose 10k/1k ratio is about 10 when it is linear (about 100 when it
// is quadratic, as cli-table3's layout was: 27.5 s for 8,000 rows).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { compareCommands, fmt, median } from './_lib.js'

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

/** Median ms of rendering the report's table for a recording, in-process. */
async function renderMs(path, runs = 7) {
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
  const times = []
  for (let i = 0; i < runs; i++) {
    const t = performance.now()
    renderTop(rows, model.totals, 'table', '')
    times.push(performance.now() - t)
  }
  return median(times)
}

export async function run() {
  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-bench-report-'))
  try {
    const small = join(dir, '1k.hsmtrace')
    const large = join(dir, '10k.hsmtrace')
    await writeRecording(small, 1_000)
    await writeRecording(large, 10_000)
    const env = { ...process.env, NODE_ENV: undefined, NO_COLOR: '1' }
    const t = compareCommands(
      {
        help: [process.execPath, [runJs, 'ioreq', 'report', '--help'], { env }],
        '1k': [process.execPath, [runJs, 'ioreq', 'report', small], { env }],
        '10k': [process.execPath, [runJs, 'ioreq', 'report', large], { env }],
      },
      7,
      1,
    )
    console.log(
      `command      1,000 rows ${fmt(t['1k'], 0)} ms   10,000 rows ${fmt(t['10k'], 0)} ms   (start-up: --help ${fmt(t.help, 0)} ms)   target 10,000 < 1000 ms: ${t['10k'] < 1000 ? 'met' : 'MISSED'}`,
    )
    await renderMs(large, 2) // warm-up: the first renders also compile the code
    const a = await renderMs(small)
    const b = await renderMs(large)
    console.log(
      `table alone  1,000 rows ${fmt(a, 1)} ms   10,000 rows ${fmt(b, 1)} ms   ratio ${fmt(b / a, 1)} (linear about 10, quadratic about 100)`,
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
