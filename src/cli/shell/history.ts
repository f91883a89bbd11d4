// The shell's history, kept across runs in a file in the state directory (one line per
// entry, oldest first) and bounded: trimmed to the newest entries when it is loaded. Each
// entry is appended as it is typed, so several shells at once all keep theirs.

import { closeSync, writeSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { stateDir, type Backend } from '../../core/daemon/paths.js'
import {
  ensurePrivateDir,
  openPrivateFile,
  readPrivateFile,
  UnsafePathError,
} from '../../core/daemon/private-files.js'

export const HISTORY_SIZE = 1000

/**
 * One file per backend (history-sim, history-native, as hsmd-sim.log): lines typed
 * against the simulation are no use, or worse, on real hardware.
 */
export function historyFile(backend: Backend, env: NodeJS.ProcessEnv = process.env): string {
  return join(stateDir(env), `history-${backend}`)
}

export class History {
  /** Newest first, as readline wants it. */
  private readonly lines: string[]
  private warned = false

  constructor(
    private readonly file: string | undefined,
    private readonly size = HISTORY_SIZE,
  ) {
    this.lines = file ? load(file, size) : []
  }

  entries(): string[] {
    return [...this.lines]
  }

  /**
   * Record a line (trailing blanks dropped). Blank lines, repeats of the last one and
   * lines typed with a leading blank are not kept, as with bash's ignoreboth; nor is a
   * command that spans lines (a quote left open), which the one-line file cannot hold.
   */
  add(line: string): void {
    line = line.trimEnd()
    if (line.trim() === '' || /^\s/.test(line) || line.includes('\n')) return
    if (this.lines[0] === line) return
    this.lines.unshift(line)
    this.lines.length = Math.min(this.lines.length, this.size)
    if (!this.file) return
    try {
      ensurePrivateDir({
        path: dirname(this.file),
        role: 'state directory',
        variable: 'HSMCTL_STATE_DIR',
      })
      writeWhole(this.file, 'append', line + '\n')
    } catch (e) {
      if (!this.warned) process.stderr.write(`hsmctl: history not saved: ${(e as Error).message}\n`)
      this.warned = true
    }
  }
}

/** Write text to the history file, never through a link or into a FIFO. */
function writeWhole(file: string, how: 'append' | 'replace', text: string) {
  const fd = openPrivateFile(file, how)
  try {
    writeSync(fd, text)
  } finally {
    closeSync(fd)
  }
}

function load(file: string, size: number): string[] {
  let text: string
  try {
    text = readPrivateFile(file).toString('utf8')
  } catch (e) {
    // a link or a FIFO where the history goes is said once; no file is a first run
    if (e instanceof UnsafePathError)
      process.stderr.write(`hsmctl: history not loaded: ${e.message}\n`)
    return []
  }
  const lines = text.split('\n').filter((l) => l !== '')
  if (lines.length > size) {
    lines.splice(0, lines.length - size)
    try {
      writeWhole(file, 'replace', lines.join('\n') + '\n')
    } catch {
      // trimming is housekeeping; the history still loads
    }
  }
  return lines.reverse()
}
