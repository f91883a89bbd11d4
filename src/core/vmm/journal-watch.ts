// What changed in the journal directory since hsmd last looked (helper/hsm-watch-addon.c):
// an inotify descriptor read without blocking. inotify queues the event before the write,
// rename or unlink that caused it returns, so a change another process (a tool, an
// editor, a file planted by hand) finished before a request was sent is seen
// by that request: hsmd can keep its listing and skip reading the directory and stat'ing
// every file at each `vm list` while nothing changed. Node.js's fs.watch cannot promise
// that (its events arrive on a later turn of the event loop, possibly after the request).
//
// Without the addon (no Node.js headers when helper/ was built, HSMCTL_JOURNAL_WATCH=0) or
// without inotify (its per-user limit reached), the journal reads the directory each time.

import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { HELPER_DIR } from '../native/preflight.js'

/** An opaque handle of the addon (a Node-API external). */
type Handle = { readonly __watch: unique symbol }

interface WatchAddon {
  watch(path: string): Handle
  changes(watch: Handle): string[]
  close(watch: Handle): void
}

export const watchAddonPath = () => join(HELPER_DIR, 'build', 'hsm_watch.node')

/** Whether directories can be watched here (the addon loads). */
export const canWatch = (): boolean => watchAddon() !== undefined

let addon: WatchAddon | null | undefined

function watchAddon(): WatchAddon | undefined {
  if (addon === undefined) {
    addon = null
    const path = watchAddonPath()
    if (existsSync(path)) {
      try {
        addon = createRequire(import.meta.url)(path) as WatchAddon
      } catch {
        // an addon built for another Node.js: the journal reads the directory each time
      }
    }
  }
  return addon ?? undefined
}

/** A directory watched for changes to its entries and to itself. */
export class DirWatch {
  private constructor(
    private readonly addon: WatchAddon,
    private handle: Handle | undefined,
  ) {}

  /** Watch the directory `path` (a link is not followed); undefined when it cannot be. */
  static open(path: string): DirWatch | undefined {
    const a = process.env.HSMCTL_JOURNAL_WATCH === '0' ? undefined : watchAddon()
    if (!a) return undefined
    try {
      return new DirWatch(a, a.watch(path))
    } catch {
      return undefined // gone meanwhile, or inotify's limits reached
    }
  }

  /**
   * The names of the entries changed since the last call ([] when none); '' for the
   * directory itself (moved, removed, its mode changed) or for events lost: then every
   * entry may have changed.
   */
  changes(): string[] {
    if (!this.handle) return ['']
    try {
      return this.addon.changes(this.handle)
    } catch {
      return ['']
    }
  }

  close(): void {
    if (this.handle) this.addon.close(this.handle)
    this.handle = undefined
  }
}
