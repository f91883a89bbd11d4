// The journal's listing kept between changes (issue 15): hsmd lists the journal at every
// `vm list`, and keeps what it read while the directory's watch (helper/hsm-watch-addon.c,
// inotify) reports nothing. Whatever another process does there (a tool, an editor,
// a second hsmd on the same state directory, a file planted by hand) must show at the next list, even a rewrite of
// the same size within the filesystem clock's tick, which leaves a file's times as they
// were. Each case runs with the watch and without it (HSMCTL_JOURNAL_WATCH=0, or where
// build/hsm_watch.node is not built), where the directory is read at every list.

import { execFileSync } from 'node:child_process'
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Journal } from '../../../src/core/vmm/journal.js'
import { canWatch, watchAddonPath } from '../../../src/core/vmm/journal-watch.js'
import { parseSpec } from '../../../src/core/vmm/spec.js'

const spec = (name: string, vcpus = 1) =>
  parseSpec(`name: ${name}\nvcpus: ${vcpus}\nmemory:\n  - { gpa: 0, size: 1M }\n`, 'test')

/** Another process writes `text` to `path` in place (truncate and write, no rename). */
const writeOutside = (path: string, text: string) =>
  execFileSync('sh', ['-c', 'printf %s "$1" > "$2"', 'sh', text, path])

const watchable = canWatch()
if (!watchable && process.env.HSMCTL_CI === '1')
  throw new Error(`HSMCTL_CI=1: ${watchAddonPath()} does not load; make -C helper builds it`)

let dir: string
let vms: string
let journal: Journal
const names = () => journal.list().map((e) => e.name)

it.skipIf(watchable)(
  `the watched journal: skipped, ${watchAddonPath()} is not built (make -C helper needs Node.js's node_api.h)`,
  () => {},
)

const modes: [string, boolean][] = [
  ['watched', true],
  ['read at every list (HSMCTL_JOURNAL_WATCH=0)', false],
]
describe.each(modes.filter(([, watch]) => watchable || !watch))(
  'the journal listing, %s',
  (_, watch) => {
    beforeEach(() => {
      if (!watch) process.env.HSMCTL_JOURNAL_WATCH = '0'
      dir = mkdtempSync(join(tmpdir(), 'hsmctl-journal-listing-'))
      vms = join(dir, 'vms')
      journal = new Journal(dir)
      journal.save(spec('a'))
      journal.save(spec('b'))
      expect(names()).toEqual(['a', 'b'])
    })

    afterEach(() => {
      delete process.env.HSMCTL_JOURNAL_WATCH
      journal?.close()
      if (dir) chmodSync(dir, 0o700)
      if (dir) rmSync(dir, { recursive: true, force: true })
    })

    it(
      watch
        ? 'a list with nothing changed does not read the directory again'
        : 'every list reads the directory',
      () => {
        expect(journal.watched).toBe(watch)
        const reads = journal.directoryReads
        for (let i = 0; i < 10; i++) expect(names()).toEqual(['a', 'b'])
        expect(journal.directoryReads - reads).toBe(watch ? 0 : 10)
      },
    )

    it('a file rewritten in place by another process, same size, at once', () => {
      // at once and of the same size: the file's times may not move (one clock tick)
      for (let vcpus = 2; vcpus <= 9; vcpus++) {
        const text = readFileSync(join(vms, 'a.json'), 'utf8')
        writeOutside(join(vms, 'a.json'), text.replace(/"vcpus": \d/, `"vcpus": ${vcpus}`))
        expect(journal.list().find((e) => e.name === 'a')?.spec?.vcpus).toBe(vcpus)
        expect(journal.get('a')?.spec?.vcpus).toBe(vcpus)
      }
    })

    it('files added, garbled, replaced by rename and removed outside', () => {
      writeOutside(join(vms, 'c.json'), JSON.stringify({ name: 'c', vcpus: 3, state: 'created' }))
      expect(journal.list().find((e) => e.name === 'c')?.spec?.vcpus).toBe(3)
      writeOutside(join(vms, 'c.json'), '{"name": "c", "vcp')
      expect(journal.list().find((e) => e.name === 'c')?.error).toMatch(/not valid JSON/)
      writeFileSync(join(dir, 'new'), JSON.stringify({ name: 'c', vcpus: 4, state: 'created' }))
      renameSync(join(dir, 'new'), join(vms, 'c.json'))
      expect(journal.list().find((e) => e.name === 'c')?.spec?.vcpus).toBe(4)
      execFileSync('rm', [join(vms, 'a.json'), join(vms, 'c.json')])
      expect(names()).toEqual(['b'])
      expect(journal.get('a')).toBeUndefined()
    })

    it('a second journal on the same directory (another process’s)', () => {
      const other = new Journal(dir)
      try {
        other.save(spec('c', 2))
        expect(names()).toEqual(['a', 'b', 'c'])
        other.save(spec('c', 3), { autostart: true })
        expect(journal.list().find((e) => e.name === 'c')).toMatchObject({
          autostart: true,
          spec: { vcpus: 3 },
        })
        other.remove('a')
        expect(names()).toEqual(['b', 'c'])
      } finally {
        other.close()
      }
    })

    it('a planted link or FIFO is listed as corrupt, not followed, not waited on', () => {
      const precious = join(dir, 'precious')
      writeFileSync(precious, JSON.stringify({ name: 'l', vcpus: 1, state: 'created' }))
      symlinkSync(precious, join(vms, 'l.json'))
      execFileSync('mkfifo', [join(vms, 'f.json')])
      const byName = new Map(journal.list().map((e) => [e.name, e]))
      expect(byName.get('l')?.error).toMatch(/^it is a symbolic link to .*precious/)
      expect(byName.get('f')?.error).toBe('it is a FIFO, not a regular file')
      // forgetting the link removes the link, not its target
      journal.remove('l')
      expect(names()).toEqual(['a', 'b', 'f'])
      expect(existsSync(precious)).toBe(true)
    })

    it('the directory replaced, or its parent moved and another put in its place', () => {
      rmSync(vms, { recursive: true })
      expect(names()).toEqual([])
      mkdirSync(vms, { mode: 0o700 })
      writeFileSync(join(vms, 'z.json'), JSON.stringify({ name: 'z', vcpus: 1, state: 'created' }))
      expect(names()).toEqual(['z'])
      // the watch is on the old directory, which sees no change of its own
      const moved = `${dir}-moved`
      renameSync(dir, moved)
      try {
        mkdirSync(vms, { recursive: true, mode: 0o700 })
        chmodSync(dir, 0o700)
        expect(names()).toEqual([])
      } finally {
        rmSync(moved, { recursive: true, force: true })
      }
    })

    it('a directory made writable by others is refused at the next list', () => {
      chmodSync(vms, 0o770)
      expect(() => journal.list()).toThrow(/writable by group/)
      chmodSync(vms, 0o700)
      expect(names()).toEqual(['a', 'b'])
    })
  },
)
