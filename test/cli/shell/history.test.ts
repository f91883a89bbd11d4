// The shell's history file: kept across runs, newest first for readline, bounded.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { History, historyFile } from '../../../src/cli/shell/history.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-history-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('history', () => {
  it('survives a restart, newest first', () => {
    const file = join(dir, 'state', 'history') // the directory does not exist yet
    const first = new History(file)
    first.add('vm create demo')
    first.add('vm start demo')
    expect(new History(file).entries()).toEqual(['vm start demo', 'vm create demo'])
    expect(statSync(file).mode & 0o777).toBe(0o600)
  })

  it('skips blank lines, repeats of the last line and lines typed with a leading blank', () => {
    const file = join(dir, 'skips')
    const h = new History(file)
    for (const line of ['vm list', 'vm list', '', '   ', ' secret', 'vm show a  ', 'vm list'])
      h.add(line)
    expect(h.entries()).toEqual(['vm list', 'vm show a', 'vm list'])
    expect(readFileSync(file, 'utf8')).toBe('vm list\nvm show a\nvm list\n')
  })

  it('is bounded: loading trims the file to the newest entries', () => {
    const file = join(dir, 'bounded')
    writeFileSync(file, Array.from({ length: 30 }, (_, i) => `cmd ${i}`).join('\n') + '\n')
    const h = new History(file, 10)
    expect(h.entries()).toHaveLength(10)
    expect(h.entries()[0]).toBe('cmd 29')
    expect(readFileSync(file, 'utf8').split('\n')[0]).toBe('cmd 20')
    for (let i = 0; i < 5; i++) h.add(`more ${i}`)
    expect(h.entries()).toHaveLength(10)
    expect(h.entries()[9]).toBe('cmd 25')
  })

  it('without a file, only in memory', () => {
    const h = new History(undefined)
    h.add('vm list')
    expect(h.entries()).toEqual(['vm list'])
  })

  it('is kept per backend: what is typed against sim does not come back on native', () => {
    const env = { HSMCTL_STATE_DIR: join(dir, 'per-backend') }
    expect(historyFile('sim', env)).toBe(join(dir, 'per-backend', 'history-sim'))
    expect(historyFile('native', env)).toBe(join(dir, 'per-backend', 'history-native'))
    new History(historyFile('sim', env)).add('vm create sim-only')
    new History(historyFile('native', env)).add('vm create on-hardware')
    expect(new History(historyFile('sim', env)).entries()).toEqual(['vm create sim-only'])
    expect(new History(historyFile('native', env)).entries()).toEqual(['vm create on-hardware'])
  })

  it('does not keep a command that spans lines (the file holds one line per entry)', () => {
    const h = new History(undefined)
    h.add('vm create "two\nlines"')
    expect(h.entries()).toEqual([])
  })

  it('a history file planted as a link or a FIFO is neither followed nor waited on', () => {
    // issue 13, item 2: lines typed in the shell must not land in someone else's file
    const precious = join(dir, 'precious')
    const body = 'root-owned\n'.repeat(2000) // more lines than the size: load would trim it
    writeFileSync(precious, body)
    const link = join(dir, 'linked-history')
    symlinkSync(precious, link)
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    try {
      const h = new History(link, 10)
      expect(h.entries()).toEqual([])
      h.add('vm create secret')
      expect(readFileSync(precious, 'utf8')).toBe(body)
      const fifo = join(dir, 'fifo-history')
      execFileSync('mkfifo', [fifo])
      const f = new History(fifo) // would block forever on a plain open
      f.add('vm list')
      expect(f.entries()).toEqual(['vm list'])
      const said = stderr.mock.calls.map((c) => String(c[0])).join('')
      expect(said).toContain(`history not loaded: refusing to use ${link}: it is a symbolic link`)
      expect(said).toContain(`history not saved: refusing to use ${fifo}: it is a FIFO`)
    } finally {
      stderr.mockRestore()
    }
  })
})
