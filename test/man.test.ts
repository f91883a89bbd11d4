// The man pages generated at build time (scripts/gen-man.js) are clean under
// `mandoc -T lint`, one per command plus hsmctl.1, with the exit codes in each.

import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from './support/cli.js'

const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as {
  commands: Record<string, unknown>
}
const haveMandoc = spawnSync('mandoc', ['-V'], { stdio: 'ignore' }).error === undefined
if (!haveMandoc) {
  if (process.env.HSMCTL_CI === '1')
    throw new Error('mandoc is missing (Debian: apt-get install mandoc)')
  console.warn('\n*** SKIPPED the mandoc lint of the man pages: mandoc is not installed ***\n')
}

const pages = readdirSync(join(ROOT, 'man')).filter((f) => f.endsWith('.1'))

describe('man pages', () => {
  it('there is hsmctl.1 and one page per command', () => {
    const expected = Object.keys(manifest.commands).map(
      (id) => `hsmctl-${id.replaceAll(':', '-')}.1`,
    )
    expect(pages.sort()).toEqual(['hsmctl.1', ...expected].sort())
  })

  it('every page documents the exit codes', () => {
    for (const page of pages) {
      const text = readFileSync(join(ROOT, 'man', page), 'utf8')
      expect([page, text.includes('.SH EXIT STATUS') && text.includes('.B 130')]).toEqual([
        page,
        true,
      ])
    }
  })

  it.skipIf(!haveMandoc).each(pages)('%s is clean under mandoc -T lint', (page) => {
    const r = spawnSync('mandoc', ['-T', 'lint', join(ROOT, 'man', page)], { encoding: 'utf8' })
    expect(r.stdout + r.stderr).toBe('')
  })
})
