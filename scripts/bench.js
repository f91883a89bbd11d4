#!/usr/bin/env node
// `npm run bench`: every benchmark in scripts/bench/*.js. Each figure is quoted with a floor
// measured in the same rounds (scripts/bench/_lib.js), its ratio to it and a target for
// that ratio; the run ends with every figure in one table and exits 1 if a target was
// missed or a check failed. Run `npm run build` first: benchmarks use the built dist/ and
// helper/build/.
//
//   npm run bench                      all of them
//   npm run bench -- native trace      some of them, by name
//   npm run bench -- --json            the summary as JSON on stdout (the rest on stderr)
//   BENCH_ROUNDS=9 npm run bench       more rounds per figure (default 5)
//   BENCH_STEP_TIMEOUT_S=600            the hang guard: a step (a measure's round, a set-up)
//                                      running longer is named, its child processes killed,
//                                      and its benchmark marked not measurable (exit 1)
import { readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Report, runGuarded } from './bench/_lib.js'

const dir = join(dirname(fileURLToPath(import.meta.url)), 'bench')
const args = process.argv.slice(2)
const options = args.filter((a) => a.startsWith('-'))
const only = args.filter((a) => !a.startsWith('-'))
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.js') && !f.startsWith('_'))
  .map((f) => f.replace(/\.js$/, ''))
  .sort()
const unknown = [...only.filter((n) => !all.includes(n)), ...options.filter((o) => o !== '--json')]
if (unknown.length) {
  console.error(
    `bench: no benchmark or option ${unknown.join(', ')}; benchmarks: ${all.join(', ')}; option: --json`,
  )
  process.exit(2)
}

const report = new Report({ json: options.includes('--json') })
let allEnded = true
for (const name of all.filter((n) => only.length === 0 || only.includes(n))) {
  const mod = await import(pathToFileURL(join(dir, `${name}.js`)).href)
  if (!(await runGuarded(report, name, mod.title ?? '', mod.run))) allEnded = false
}
report.summary()
process.exitCode = report.failed ? 1 : 0
// a benchmark given up on may hold a server or a timer open
if (!allEnded) process.exit()
