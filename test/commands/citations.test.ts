// What users read states the rule, never a section of a document they do not have
// (issue 13 item 21: hints said "(§3.5)" and "(Appendix A)"). The code's comments cite the
// spec as they should; its strings, which become messages, hints and help, do not.

import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import ts from 'typescript'
import { expect, it } from 'vitest'
import { ROOT } from '../support/cli.js'
import { expectError, hsmdSession } from '../support/hsmd-session.js'

const CITATION = /§|Appendix|\bspec \d|\(A\.\d\)/

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sources(join(dir, e.name))
      : e.name.endsWith('.ts')
        ? [join(dir, e.name)]
        : [],
  )
}

it('no string in src/ (a message, a hint, help) cites the spec', () => {
  const cited: string[] = []
  for (const file of sources(join(ROOT, 'src'))) {
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest)
    const visit = (node: ts.Node): void => {
      if (
        (ts.isStringLiteral(node) ||
          ts.isNoSubstitutionTemplateLiteral(node) ||
          ts.isTemplateHead(node) ||
          ts.isTemplateMiddle(node) ||
          ts.isTemplateTail(node)) &&
        CITATION.test(node.text)
      ) {
        const { line } = source.getLineAndCharacterOfPosition(node.getStart(source))
        cited.push(`${file.slice(ROOT.length + 1)}:${line + 1}: ${node.text.slice(0, 100)}`)
      }
      ts.forEachChild(node, visit)
    }
    visit(source)
  }
  expect(cited).toEqual([])
})

const s = hsmdSession('citations')

it('the HSM’s refusal to unset RAM says why in its own words (the README’s example)', () => {
  expect(s.run('vm', 'create', 'demo', '--memory', '1M').code).toBe(0)
  const r = s.run('memseg', 'unset', 'demo', '--gpa', '0', '--size', '1M', '--type', 'ram', '--yes')
  expectError(
    r,
    1,
    'UNSET_MEMSEG failed: EINVAL (Invalid argument)',
    'only MMIO segments can be unset; RAM stays mapped until the VM is destroyed',
  )
  expect(r.stderr).not.toMatch(CITATION)
})
