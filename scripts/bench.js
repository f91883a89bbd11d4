#!/usr/bin/env node
// `npm run bench`: every benchmark in scripts/bench/*.js, each reporting figures as ratios
// to a baseline measured in the same run (these machines are noisy). Run `npm run build`
// first; benchmarks use the built dist/. Pass names to run a subset: npm run bench -- abi
import { readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const dir = join(dirname(fileURLToPath(import.meta.url)), 'bench')
const only = process.argv.slice(2)
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.js') && !f.startsWith('_'))
  .filter((f) => only.length === 0 || only.includes(f.replace(/\.js$/, '')))
  .sort()

for (const file of files) {
  const mod = await import(pathToFileURL(join(dir, file)).href)
  console.log(`\n== ${file.replace(/\.js$/, '')}: ${mod.title ?? ''}`)
  await mod.run()
}
