// The daemon's journal: one JSON file per VM spec in the state dir, replaced atomically
// (write a temp file, fsync, rename, fsync the directory), so a daemon killed at any
// moment leaves either the old or the new spec, never a torn one. Beside the spec, a file
// may carry two marks: `autostart` (recreate it when hsmd starts) and `incomplete` (hsmd
// was still applying it: the spec is what was asked, not all of it was made).
//
// Whatever else is found there (a FIFO, a link, an empty or garbled file, wrong types, a
// spec naming another VM) is listed as corrupt with the reason, logged once, and left in
// place for the user to fix or forget; nothing there can hang or fool the daemon.

import {
  closeSync,
  constants,
  fsyncSync,
  lstatSync,
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
  UnsafePathError,
  type PrivateDir,
} from '../daemon/private-files.js'
import { UsageError } from '../errors.js'
import { DirWatch } from './journal-watch.js'
import { checkVmName, specFromObject, specToObject, type VmSpec } from './spec.js'

export interface JournalEntry {
  name: string
  /** The file, for messages. */
  file: string
  spec?: VmSpec
  /** Why the file cannot be used (it is left in place for the user): listed as corrupt. */
  error?: string
  /** hsmd stopped while it applied this spec: the spec as asked, not all of it made. */
  incomplete?: boolean
  /** Recreate this VM when hsmd starts (virsh autostart). */
  autostart?: boolean
}

export interface JournalOptions {
  /** Told about what the journal skips or cleans up (the daemon log). */
  log?: (line: string) => void
}

/** The marks a journal file carries beside the spec's own keys. */
const MARKS = ['autostart', 'incomplete'] as const

/** `NAME.json.PID.tmp`: a save in flight, or left by a writer that died. */
const TEMP_RE = /^.+\.json\.(\d+)\.tmp$/

/** How long after its last change a file's times may still miss a change (see entry()). */
const RACY_MS = 1000

export class Journal {
  readonly dir: string
  /**
   * Entries as last read, by file name, with the file's identity then: a file is read
   * again only when it changed, so the list is always what is on disk (an entry fixed or
   * removed by hand shows at once) without reading every file at every `vm list`.
   */
  private readonly cached = new Map<string, { key: string; entry: JournalEntry }>()
  /**
   * The whole list as last read, kept while the directory's watch reports no change
   * (journal-watch.ts) and the path still names the directory watched (`watchedId`).
   */
  private listing: JournalEntry[] | undefined
  private watch: DirWatch | undefined
  private watchedId = ''
  /** How many times the directory was read (tests: the listing kept is used). */
  directoryReads = 0
  private closed = false

  constructor(
    stateDir: string,
    private readonly options: JournalOptions = {},
  ) {
    this.dir = join(stateDir, 'vms')
  }

  private file(name: string): string {
    return join(this.dir, `${name}.json`)
  }

  private privateDir(): PrivateDir {
    return { path: this.dir, role: 'journal directory', variable: 'HSMCTL_STATE_DIR' }
  }

  /**
   * Read the journal now (at daemon start): stale temporary files are removed, and each
   * entry that cannot be used is said in the log.
   */
  load(): JournalEntry[] {
    this.removeStaleTemps()
    const entries = this.list()
    for (const e of entries) {
      if (e.error !== undefined)
        this.options.log?.(
          `journal: ${e.file}: ${e.error}; not used (\`hsmctl vm forget ${e.name}\` removes it)`,
        )
      else if (e.incomplete)
        this.options.log?.(
          `journal: ${e.file}: hsmd stopped while applying it; \`hsmctl vm apply ${e.name}\` makes it whole`,
        )
    }
    return entries
  }

  /** Journal a VM's spec; its autostart mark stays unless `marks` says otherwise. */
  save(spec: VmSpec, marks: { incomplete?: boolean; autostart?: boolean } = {}): void {
    const autostart = marks.autostart ?? this.get(spec.name)?.autostart ?? false
    const incomplete = marks.incomplete ?? false
    this.write(spec.name, {
      ...specToObject(spec),
      ...(autostart ? { autostart: true } : {}),
      ...(incomplete ? { incomplete: true } : {}),
    })
  }

  /** Put an entry back as it was (a failed apply over a journaled VM). */
  restore(entry: JournalEntry): void {
    if (entry.spec === undefined) return // a corrupt file was never replaced: rename is atomic
    this.save(entry.spec, { incomplete: entry.incomplete ?? false, autostart: !!entry.autostart })
  }

  private write(name: string, doc: Record<string, unknown>): void {
    ensurePrivateDir(this.privateDir())
    const target = this.file(name)
    const temp = `${target}.${process.pid}.tmp`
    removeIfThere(temp) // ours by its name: left by an earlier process with our pid
    // a new file (O_EXCL, no link followed); the rename replaces whatever NAME.json was,
    // a link included, without writing through it
    const fd = openPrivateFile(temp, 'create')
    try {
      try {
        writeSync(fd, JSON.stringify(doc, null, 2) + '\n')
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
  }

  /** Forget an entry (one the journal lists: never a path built from user input alone). */
  remove(name: string): void {
    removeIfThere(this.file(name)) // a link goes, not its target
    this.syncDir()
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

  /**
   * Every journaled VM, by name, the corrupt ones included. While the directory's watch
   * reports no change this is the list as last read, at the cost of one read of the watch
   * and one lstat (hsmd lists at every `vm list`); after a change, the directory is read
   * again and the changed files with it.
   */
  list(): JournalEntry[] {
    if (this.listing && this.unchanged()) return [...this.listing]
    // watched before the directory is read: a change made while it is read shows next time
    this.startWatch()
    const names = this.files().filter((f) => f.endsWith('.json') && f !== '.json')
    for (const f of this.cached.keys()) if (!names.includes(f)) this.cached.delete(f)
    const entries = names
      .map((f) => this.entry(f))
      .filter((e): e is JournalEntry => e !== undefined)
      .sort((a, b) => a.name.localeCompare(b.name))
    this.listing = this.watch ? entries : undefined
    return [...entries]
  }

  get(name: string): JournalEntry | undefined {
    if (name === '' || name.includes('/')) return undefined // never a path outside the dir
    this.unchanged() // forget what changed, so that entry() reads it again
    return this.entry(`${name}.json`)
  }

  /** Whether the listing is kept between changes (the directory is watched). */
  get watched(): boolean {
    return this.watch !== undefined
  }

  /** Stop watching the directory (the journal reads it at each list from then on). */
  close(): void {
    this.closed = true
    this.stopWatch()
  }

  /**
   * Whether nothing in the directory changed since the listing was read. What did change
   * is forgotten (the listing, the changed files' entries), to be read again.
   */
  private unchanged(): boolean {
    if (!this.watch) return false
    const changed = this.watch.changes()
    if (changed.length === 0 && this.directoryId() === this.watchedId) return true
    this.listing = undefined
    if (changed.length === 0 || changed.includes('')) {
      // the directory itself moved, went or changed mode, or events were lost: read all
      this.stopWatch()
      this.cached.clear()
    } else for (const f of changed) this.cached.delete(f)
    return false
  }

  private startWatch(): void {
    if (this.watch || this.closed || !checkPrivateDir(this.privateDir())) return
    this.watch = DirWatch.open(this.dir)
    this.watchedId = this.watch ? this.directoryId() : ''
  }

  private stopWatch(): void {
    this.watch?.close()
    this.watch = undefined
    this.listing = undefined
  }

  /** What the path names now (its parent may have been moved): '' when nothing. */
  private directoryId(): string {
    const st = lstatSync(this.dir, { bigint: true, throwIfNoEntry: false })
    return st ? `${st.dev}:${st.ino}` : ''
  }

  /**
   * One file's entry, read again only if the file changed since; undefined if gone.
   * A file changed within RACY_MS of being read is read again next time too: a rewrite
   * of the same size within the filesystem clock's tick leaves its times as they were.
   */
  private entry(f: string): JournalEntry | undefined {
    let key: string
    let racy: boolean
    try {
      const st = lstatSync(join(this.dir, f), { bigint: true })
      key = `${st.ino}:${st.mode}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
      racy = Number(st.ctimeNs / 1_000_000n) > Date.now() - RACY_MS
    } catch {
      this.cached.delete(f)
      return undefined
    }
    const hit = this.cached.get(f)
    if (hit?.key === key) return hit.entry
    const entry = this.readEntry(f.slice(0, -'.json'.length))
    if (racy) this.cached.delete(f)
    else this.cached.set(f, { key, entry })
    return entry
  }

  private files(): string[] {
    this.directoryReads++
    if (!checkPrivateDir(this.privateDir())) return []
    try {
      return readdirSync(this.dir).sort()
    } catch {
      return []
    }
  }

  private readEntry(name: string): JournalEntry {
    const file = this.file(name)
    const corrupt = (error: string): JournalEntry => ({ name, file, error })
    let text: string
    try {
      // no link followed, no wait on a FIFO (private-files.ts)
      text = readPrivateFile(file).toString('utf8')
    } catch (e) {
      if (e instanceof UnsafePathError) return corrupt(e.reason)
      return corrupt(`cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
    }
    if (text.trim() === '') return corrupt('it is empty')
    let doc: unknown
    try {
      doc = JSON.parse(text)
    } catch (e) {
      return corrupt(`it is not valid JSON (${(e as Error).message}); truncated or garbled`)
    }
    try {
      checkVmName(name, 'file name')
    } catch (e) {
      return corrupt((e as UsageError).message)
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
      return corrupt('it holds no spec (expected a JSON object)')
    const { autostart, incomplete, ...rest } = doc as Record<string, unknown>
    for (const [key, value] of [
      [MARKS[0], autostart],
      [MARKS[1], incomplete],
    ] as const) {
      if (value !== undefined && typeof value !== 'boolean')
        return corrupt(`${key}: expected true or false`)
    }
    let spec: VmSpec
    try {
      spec = specFromObject(rest, '')
    } catch (e) {
      return corrupt((e as Error).message.replace(/^: /, ''))
    }
    if (spec.name !== name)
      return corrupt(`it holds the spec of a VM named '${spec.name}', not '${name}'`)
    return {
      name,
      file,
      spec,
      ...(autostart === true ? { autostart: true } : {}),
      ...(incomplete === true ? { incomplete: true } : {}),
    }
  }

  /**
   * Temporary files whose writer is gone (killed between its write and its rename): the
   * journal holds the entry as it was before them. A live writer's (the other backend's
   * hsmd shares the directory) is left alone.
   */
  private removeStaleTemps(): void {
    for (const f of this.files()) {
      const m = TEMP_RE.exec(f)
      if (!m) continue
      const pid = Number(m[1])
      if (pid !== process.pid && alive(pid)) continue
      try {
        unlinkSync(join(this.dir, f))
        this.options.log?.(`journal: removed ${f}, left by process ${pid} that stopped writing it`)
      } catch {
        // gone meanwhile
      }
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function removeIfThere(path: string) {
  try {
    unlinkSync(path)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
  }
}
