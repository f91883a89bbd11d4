// openPrivateFile, the one way hsmctl opens a file in its own directories (issue 13, item
// 2): every way of opening, against a planted symbolic link (its target untouched), a FIFO
// (no hang), a hard link (not written) and a directory, each refused with the path and why.

import { execFileSync } from 'node:child_process'
import {
  closeSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  openPrivateFile,
  readPrivateFile,
  UnsafePathError,
  type OpenHow,
} from '../../../src/core/daemon/private-files.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-private-files-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const HOWS: OpenHow[] = ['read', 'append', 'create', 'replace']
const PRECIOUS = 'root-owned data that must survive\n'
let n = 0

function target(): string {
  const file = join(dir, `target-${n++}`)
  writeFileSync(file, PRECIOUS, { mode: 0o644 })
  return file
}

function refused(fn: () => unknown, what: RegExp) {
  let error: unknown
  try {
    const fd = fn()
    if (typeof fd === 'number') closeSync(fd)
  } catch (e) {
    error = e
  }
  expect(error, 'expected a refusal').toBeInstanceOf(UnsafePathError)
  expect((error as Error).message).toMatch(what)
  expect((error as UnsafePathError).exitCode).toBe(4)
  expect((error as UnsafePathError).hint).toMatch(/rm /)
}

describe('openPrivateFile', () => {
  it('opens and creates regular files 0600', () => {
    const file = join(dir, 'plain')
    const fd = openPrivateFile(file, 'replace')
    writeSync(fd, 'abc')
    closeSync(fd)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    const again = openPrivateFile(file, 'replace') // emptied, then written from the start
    writeSync(again, 'x')
    closeSync(again)
    expect(readFileSync(file, 'utf8')).toBe('x')
    const add = openPrivateFile(file, 'append')
    writeSync(add, 'y')
    closeSync(add)
    expect(readPrivateFile(file).toString()).toBe('xy')
  })

  for (const how of HOWS) {
    it(`${how}: a symbolic link is refused and its target is untouched`, () => {
      const victim = target()
      const link = join(dir, `link-${how}`)
      symlinkSync(victim, link)
      refused(
        () => openPrivateFile(link, how),
        new RegExp(
          `refusing to use ${link}: it is a symbolic link to ${victim}, not a regular file`,
        ),
      )
      expect(readFileSync(victim, 'utf8')).toBe(PRECIOUS)
      expect(statSync(victim).mode & 0o777).toBe(0o644)
    })

    it(`${how}: a FIFO is refused without blocking`, () => {
      const fifo = join(dir, `fifo-${how}`)
      execFileSync('mkfifo', [fifo])
      refused(() => openPrivateFile(fifo, how), /it is a FIFO, not a regular file/)
    })

    it(`${how}: a directory is refused`, () => {
      const sub = join(dir, `dir-${how}`)
      mkdirSync(sub)
      refused(() => openPrivateFile(sub, how), /it is a directory, not a regular file/)
    })
  }

  for (const how of ['append', 'replace'] as const) {
    it(`${how}: a file with another hard link is not written`, () => {
      const victim = target()
      const hard = join(dir, `hard-${how}`)
      linkSync(victim, hard)
      refused(() => openPrivateFile(hard, how), /it has 2 hard links/)
      expect(readFileSync(victim, 'utf8')).toBe(PRECIOUS)
    })
  }

  it('create: an existing file is not reused', () => {
    const file = target()
    expect(() => openPrivateFile(file, 'create')).toThrow(/EEXIST/)
    expect(readFileSync(file, 'utf8')).toBe(PRECIOUS)
  })
})
