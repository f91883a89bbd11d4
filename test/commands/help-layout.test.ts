// Help text at 80 columns (issue 13 item 21): every command's DESCRIPTION is filled as
// one paragraph would be, not wrapped twice (the source's line breaks, then oclif's at 80),
// which left a short line in the middle of every paragraph. One shell reads every
// command's help, as `COMMAND --help` prints it (test/commands/shell.test.ts checks that).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { hsmctl, ROOT } from '../support/cli.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-help-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const WIDTH = 80

/** The DESCRIPTION section of one command's help, its lines without the indent. */
function description(help: string): string[] {
  const lines = help.split('\n')
  const start = lines.indexOf('DESCRIPTION')
  if (start < 0) return []
  const end = lines.findIndex((l, i) => i > start && /^[A-Z][A-Z ]+$/.test(l))
  return lines.slice(start + 1, end < 0 ? undefined : end)
}

it('every command’s description fills its lines to 80 columns, as one paragraph does', () => {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as {
    commands: Record<string, { description?: string; hidden?: boolean }>
  }
  const ids = Object.entries(manifest.commands)
    .filter(([, c]) => !c.hidden && c.description)
    .map(([id]) => id.replaceAll(':', ' '))
  expect(ids.length).toBeGreaterThan(20)
  const script = join(dir, 'help.hsm')
  writeFileSync(script, ids.map((id) => `help ${id}\n`).join(''))
  const r = hsmctl(['shell', '-f', script], { COLUMNS: String(WIDTH) })
  expect(r.code, r.stderr).toBe(0)
  const ragged: string[] = []
  for (const help of r.stdout.split(/^USAGE$/m)) {
    const lines = description(help)
    for (let i = 0; i + 1 < lines.length; i++) {
      const [line, next] = [lines[i]!, lines[i + 1]!]
      // two lines of one paragraph (at the section's indent: indented blocks are a
      // command or a list, laid out as written): the next word would have fitted here
      const indent = (s: string) => /^ */.exec(s)![0].length
      if (line.trim() === '' || next.trim() === '' || indent(line) !== 2 || indent(next) !== 2)
        continue
      const word = next.trim().split(' ')[0]!
      expect(line.length).toBeLessThanOrEqual(WIDTH)
      if (line.length + 1 + word.length <= WIDTH) ragged.push(`${line}⏎${next}`)
    }
  }
  expect(ragged).toEqual([])
})
