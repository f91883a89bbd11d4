// The README's command list is generated from the command metadata and must be current.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { ROOT } from './support/cli.js'

it('README.md lists every command (npm run readme)', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'gen-readme.js'), '--check'], {
    encoding: 'utf8',
  })
  expect(r.stderr).toBe('')
  expect(r.status).toBe(0)
})
