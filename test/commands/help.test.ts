// `hsmctl --help` and a topic's --help list the topics under them, each with its own
// description (package.json oclif.topics), not the summary of one of its commands.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { hsmctl, ROOT } from '../support/cli.js'

const pjson = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as {
  commands: Record<string, { summary?: string }>
}
const described: Record<string, { description?: string }> = pjson.oclif.topics ?? {}

/** Every topic a command id implies: 'vm', 'vm:regs' from 'vm:regs:set'. */
const topics = [
  ...new Set(
    Object.keys(manifest.commands).flatMap((id) =>
      id
        .split(':')
        .slice(0, -1)
        .map((_, i, parts) => parts.slice(0, i + 1).join(':')),
    ),
  ),
].sort()
const summaries = new Set(Object.values(manifest.commands).map((c) => c.summary))

/** The TOPICS section of a help text as topic → description, wrapped lines joined. */
function topicSection(help: string): Map<string, string> {
  const section = help.split(/^TOPICS\n/m)[1]?.split('\n\n')[0] ?? ''
  const out = new Map<string, string>()
  let last = ''
  for (const line of section.split('\n')) {
    const m = /^ {2}(\S+(?: \S+)*?) {2,}(.*)$/.exec(line)
    if (m) out.set((last = m[1]!.replaceAll(' ', ':')), m[2]!)
    else if (last) out.set(last, `${out.get(last)} ${line.trim()}`)
  }
  return out
}

describe('topic help', () => {
  it('every topic has a description of its own in package.json', () => {
    for (const topic of topics) {
      const description = described[topic]?.description
      expect([topic, typeof description]).toEqual([topic, 'string'])
      expect([topic, summaries.has(description)]).toEqual([topic, false])
    }
  })

  it.each([[[] as string[]], [['vm']], [['ptdev']]])(
    'hsmctl %j --help lists its topics with their descriptions',
    (words) => {
      const r = hsmctl([...words, '--help'])
      expect(r.code, r.stderr).toBe(0)
      const shown = topicSection(r.stdout)
      const under = topics.filter(
        (t) => t.split(':').length === words.length + 1 && t.startsWith(words.join(':')),
      )
      expect([...shown.keys()].sort()).toEqual(under)
      for (const topic of under) {
        expect([topic, shown.get(topic)]).toEqual([topic, described[topic]?.description])
      }
    },
  )
})
