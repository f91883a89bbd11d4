// hsmctl's own directories and the files in them (runtime dir, state dir, journal,
// console logs, history, the daemon log), made safe against whoever else can write near
// them. A directory is created 0700, or, if it exists, must be a real directory (not a
// link), ours and not writable by others, as ssh demands of ~/.ssh; it is never chmod'ed
// unless hsmctl just created it. A file in it is opened without following a symbolic link
// (O_NOFOLLOW), never blocks on a FIFO (O_NONBLOCK), must be a regular file, and is written
// only when it has no other hard link.

import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  openSync,
  readlinkSync,
  readSync,
  type Stats,
} from 'node:fs'
import { dirname } from 'node:path'
import { ConflictError } from '../errors.js'

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_APPEND, O_NOFOLLOW, O_NONBLOCK } = constants
const O_DIRECTORY = constants.O_DIRECTORY

/** A path hsmctl refuses to use, and why (exit 4: it clashes with what is there). */
export class UnsafePathError extends ConflictError {
  constructor(
    message: string,
    hint: string,
    /** The why alone ("it is a FIFO, not a regular file"), for lists. */
    readonly reason: string = message,
  ) {
    super(message, hint)
  }
}

/** What a file is, for messages: 'a symbolic link', 'a FIFO', ... */
export function kindOf(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symbolic link'
  if (st.isFIFO()) return 'a FIFO'
  if (st.isSocket()) return 'a socket'
  if (st.isDirectory()) return 'a directory'
  if (st.isCharacterDevice()) return 'a character device'
  if (st.isBlockDevice()) return 'a block device'
  return 'a regular file'
}

function uid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined
}

function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code
}

export interface PrivateDir {
  path: string
  /** 'runtime directory', 'journal directory', ... */
  role: string
  /** The variable that moves it, named in the hint. */
  variable?: string
}

/**
 * Create `dir` 0700 if it is missing (its parents too), else check it: a directory, not
 * a link, owned by us, writable by nobody else. Only a directory created here is chmod'ed
 * (when the umask took the owner's own bits).
 */
export function ensurePrivateDir(dir: PrivateDir): void {
  let created = false
  try {
    lstatSync(dir.path)
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw refusal(dir, (e as Error).message)
    mkdirSync(dirname(dir.path), { recursive: true, mode: 0o700 })
    try {
      mkdirSync(dir.path, { mode: 0o700 })
      created = true
    } catch (e2) {
      // someone made it first: check theirs below
      if (errnoCode(e2) !== 'EEXIST') throw e2
    }
  }
  checkPrivateDir(dir, created)
}

/** Check an existing directory as ensurePrivateDir does; false when it does not exist. */
export function checkPrivateDir(dir: PrivateDir, justCreated = false): boolean {
  let st: Stats
  try {
    st = lstatSync(dir.path)
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return false
    throw refusal(dir, (e as Error).message)
  }
  if (st.isSymbolicLink()) {
    let target = ''
    try {
      target = ` to ${readlinkSync(dir.path)}`
    } catch {
      // gone meanwhile: still a refusal
    }
    throw refusal(dir, `it is a symbolic link${target}`, 'remove the link')
  }
  if (!st.isDirectory()) throw refusal(dir, `it is ${kindOf(st)}, not a directory`)
  // the checks hold for the directory itself, opened without following a link
  const fd = openSync(dir.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
  try {
    const own = fstatSync(fd)
    const me = uid()
    if (me !== undefined && own.uid !== me) {
      throw refusal(dir, `it belongs to uid ${own.uid}, not to you (uid ${me})`)
    }
    if (justCreated && (own.mode & 0o777) !== 0o700) fchmodSync(fd, 0o700)
    else if ((own.mode & 0o022) !== 0) {
      const who = own.mode & 0o020 ? (own.mode & 0o002 ? 'group and others' : 'group') : 'others'
      throw refusal(
        dir,
        `it is writable by ${who} (mode ${(own.mode & 0o7777).toString(8).padStart(4, '0')})`,
        `make it yours alone with \`chmod go-w ${dir.path}\``,
      )
    }
  } finally {
    closeSync(fd)
  }
  return true
}

function refusal(dir: PrivateDir, why: string, fix?: string): UnsafePathError {
  const elsewhere = dir.variable
    ? `point ${dir.variable} at a directory of your own (hsmctl creates it 0700)`
    : 'hsmctl creates it 0700 when it is missing'
  return new UnsafePathError(
    `refusing to use ${dir.path} as the ${dir.role}: ${why}`,
    fix ? `${fix}, or ${elsewhere}` : elsewhere,
  )
}

/**
 * How a private file is opened: `read`; `append` (created if missing); `create`, a new
 * file that must not exist yet; `replace`, created or emptied, then written from the start.
 */
export type OpenHow = 'read' | 'append' | 'create' | 'replace'

const FLAGS: Record<OpenHow, number> = {
  read: O_RDONLY,
  append: O_WRONLY | O_APPEND | O_CREAT,
  create: O_RDWR | O_CREAT | O_EXCL,
  // truncated only once checked (ftruncate), never at open: O_TRUNC would empty the
  // target of a hard link before the check could refuse it
  replace: O_RDWR | O_CREAT,
}

/**
 * Open a file in one of hsmctl's private directories: never through a symbolic link,
 * never blocking on a FIFO, and only a regular file (one with no other hard link when
 * written). Refusals name the file, what it is and what to do.
 */
export function openPrivateFile(path: string, how: OpenHow, mode = 0o600): number {
  let fd: number
  try {
    fd = openSync(path, FLAGS[how] | O_NOFOLLOW | O_NONBLOCK, mode)
  } catch (e) {
    // ELOOP: a link at the last component; ENXIO: a FIFO with no reader (O_WRONLY);
    // EEXIST (create): whatever is there already
    const code = errnoCode(e)
    if (code === 'ELOOP' || code === 'ENXIO' || code === 'EISDIR' || code === 'EEXIST') {
      const what = describe(path)
      if (what && what !== 'a regular file') throw notRegular(path, what)
    }
    throw e
  }
  try {
    const st = fstatSync(fd)
    if (!st.isFile()) throw notRegular(path, kindOf(st))
    if (how !== 'read' && st.nlink > 1) {
      throw new UnsafePathError(
        `refusing to write ${path}: it has ${st.nlink} hard links, so it is also another file`,
        `remove it (rm ${path}); hsmctl creates it again`,
        `it has ${st.nlink} hard links`,
      )
    }
    if (how === 'replace' && st.size > 0) ftruncateSync(fd, 0)
    return fd
  } catch (e) {
    closeSync(fd)
    throw e
  }
}

function describe(path: string): string | undefined {
  try {
    const st = lstatSync(path)
    if (st.isSymbolicLink()) {
      try {
        return `a symbolic link to ${readlinkSync(path)}`
      } catch {
        return 'a symbolic link'
      }
    }
    return kindOf(st)
  } catch {
    return undefined
  }
}

function notRegular(path: string, what: string): UnsafePathError {
  return new UnsafePathError(
    `refusing to use ${path}: it is ${what}, not a regular file`,
    `hsmctl keeps its own files there; remove it (rm ${path})`,
    `it is ${what}, not a regular file`,
  )
}

/** The whole of a private file, read as openPrivateFile('read') opens it. */
export function readPrivateFile(path: string): Buffer {
  const fd = openPrivateFile(path, 'read')
  try {
    return readAll(fd)
  } finally {
    closeSync(fd)
  }
}

/** Read an open file from its start to its end (pread: the fd's offset is left alone). */
export function readAll(fd: number, from = 0): Buffer {
  const size = fstatSync(fd).size
  const chunks: Buffer[] = []
  let position = from
  for (;;) {
    const chunk = Buffer.allocUnsafe(Math.max(65536, size - position))
    const n = readSync(fd, chunk, 0, chunk.byteLength, position)
    if (n === 0) break
    chunks.push(chunk.subarray(0, n))
    position += n
  }
  return Buffer.concat(chunks)
}
