// No test may depend on the machine's speed: a property bounds its work (numRuns), never
// its time. fast-check's time limits make a slow (loaded) machine fail a test, or run
// fewer cases there and miss what the counts after it expect.

import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { expect, it } from 'vitest'
import { ROOT } from './support/cli.js'

const TIME_LIMITS = /\b(interruptAfterTimeLimit|skipAllAfterTimeLimit|markInterruptAsFailure)\b/

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? testFiles(join(dir, e.name))
      : e.name.endsWith('.ts')
        ? [join(dir, e.name)]
        : [],
  )
}

it('no test limits a property by time (fast-check interruptAfterTimeLimit and kin)', () => {
  const here = relative(ROOT, import.meta.filename)
  const offenders = testFiles(join(ROOT, 'test'))
    .map((file) => relative(ROOT, file))
    .filter((file) => file !== here)
    .flatMap((file) =>
      readFileSync(join(ROOT, file), 'utf8')
        .split('\n')
        .flatMap((line, i) => (TIME_LIMITS.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : [])),
    )
  expect(offenders).toEqual([])
})
