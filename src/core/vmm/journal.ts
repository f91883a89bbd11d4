// The daemon's journal: one JSON file per VM spec in the state dir, replaced atomically
// (write a temp file, fsync, rename, fsync the directory), so a daemon killed at any
// moment leaves either the old or the new spec, never a torn one.

import {
  closeSync,
  constants,
  fsyncSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import {
  checkPrivateDir,
  ensurePrivateDir,
  openPrivateFile,
  readPrivateFile,
  type PrivateDir,
} from '../daemon/private-files.js'
import { specFromObject, specToObject, type VmSpec } from './spec.js'

export interface JournalEntry {
  name: string
  spec?: VmSpec
  /** Why the file could not be read back (it is left in place for the user). */
  error?: string
}

export class Journal {
  readonly dir: string
  /** What is on disk, read once; save and remove keep it in step with the files. */
  private entries: Map<string, JournalEntry> | undefined

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'vms')
  }

  private file(name: string): string {
    return join(this.dir, `${name}.json`)
  }

  private privateDir(): PrivateDir {
    return { path: this.dir, role: 'journal directory', variable: 'HSMCTL_STATE_DIR' }
  }

  save(spec: VmSpec): void {
    ensurePrivateDir(this.privateDir())
    const target = this.file(spec.name)
    const temp = `${target}.${process.pid}.tmp`
    removeIfThere(temp) // ours by its name: left by an earlier process with our pid
    // a new file (O_EXCL, no link followed); the rename replaces whatever NAME.json was,
    // a link included, without writing through it
    const fd = openPrivateFile(temp, 'create')
    try {
      try {
        writeSync(fd, JSON.stringify(specToObject(spec), null, 2) + '\n')
        fsyncSync(fd)
      } finally {
        closeSync(fd)
      }
      renameSync(temp, target)
    } catch (e) {
      try {
        unlinkSync(temp)
      } catch {
        // already gone
      }
      throw e
    }
    this.syncDir()
    this.cache().set(spec.name, { name: spec.name, spec })
  }

  remove(name: string): void {
    removeIfThere(this.file(name)) // a link goes, not its target
    this.syncDir()
    this.cache().delete(name)
  }

  private syncDir() {
    try {
      const fd = openSync(
        this.dir,
        constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW,
      )
      try {
        fsyncSync(fd)
      } finally {
        closeSync(fd)
      }
    } catch {
      // not every filesystem lets a directory be fsynced; the rename is still atomic
    }
  }

  /** Every journaled VM, by name. */
  list(): JournalEntry[] {
    return [...this.cache().values()].sort((a, b) => a.name.localeCompare(b.name))
  }

  private cache(): Map<string, JournalEntry> {
    this.entries ??= new Map(this.read().map((e) => [e.name, e]))
    return this.entries
  }

  private read(): JournalEntry[] {
    let files: string[]
    if (!checkPrivateDir(this.privateDir())) return []
    try {
      files = readdirSync(this.dir)
    } catch {
      return []
    }
    return files
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => {
        const name = f.slice(0, -'.json'.length)
        try {
          return {
            name,
            spec: specFromObject(
              JSON.parse(readPrivateFile(join(this.dir, f)).toString('utf8')),
              f,
            ),
          }
        } catch (e) {
          return { name, error: (e as Error).message }
        }
      })
  }
}

function removeIfThere(path: string) {
  try {
    unlinkSync(path)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
  }
}
