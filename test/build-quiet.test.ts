// setup.sh and `npm run build` print nothing a user must wonder about (issue 13 item 21:
// "oclif update available from 4.24.0 to 6.0.10" on every build). The oclif dev CLI warns
// when its cache says a newer version exists, at start-up of any of its commands; each
// package.json script that runs it must switch that check off.

import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { ROOT } from './support/cli.js'

it('every npm script that runs the oclif dev CLI runs it without the update warning', () => {
  const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>
  }
  // `A=1 B=2 oclif manifest` inside `x && A=1 oclif manifest && y`
  const runs = Object.values(scripts)
    .flatMap((script) => script.split(/&&|\|\||;/))
    .map((step) => /^\s*((?:\w+=\S*\s+)*)oclif\s/.exec(step))
    .filter((m): m is RegExpExecArray => m !== null)
  expect(runs.length).toBeGreaterThan(0)
  for (const [, assignments] of runs) {
    const env = Object.fromEntries(
      assignments!
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map((a) => a.split('=') as [string, string]),
    )
    // --version starts it as `oclif manifest` does, hooks and all, and writes nothing
    const r = spawnSync(join(ROOT, 'node_modules', '.bin', 'oclif'), ['--version'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, ...env },
      timeout: 60_000,
    })
    expect(r.status, r.stderr).toBe(0)
    expect(r.stderr + r.stdout).not.toMatch(/update available/)
  }
})
