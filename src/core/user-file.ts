// Files a user names (a spec, a registers file, a payload, a recording, an output file):
// one mapping of what can go wrong to the error family, so that every command says the
// same thing. A file that is not there is "not found" (exit 3); one that cannot be read
// or written, a directory, or one too large is a usage error (exit 2). Each names the
// path and says what to do; none shows Node's text.

import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { dirname } from 'node:path'
import { kindOf } from './daemon/private-files.js'
import { HsmctlError, NotFoundError, UsageError } from './errors.js'

export interface UserFileOptions {
  /** The flag or argument that named the file (`--file`, `FILE`), named in the message. */
  readonly flag?: string
  /** Refuse a file larger than this, before reading it all. */
  readonly maxBytes?: number
  /** Says why the size is bounded, shown as the hint of a file too large. */
  readonly sizeHint?: string
  /** What the file is, for messages ("spec file", "payload"). */
  readonly what?: string
  /**
   * Only a regular file (a reader that must not block: hsmd). Otherwise a pipe is read as
   * the user asked, `vm apply -f <(...)`, up to `maxBytes`.
   */
  readonly regularOnly?: boolean
}

const prefixed = (options: UserFileOptions, message: string) =>
  options.flag ? `${options.flag}: ${message}` : message

/** The error a failed open, read or write of a user's file means, as hsmctl says it. */
export function userFileError(
  error: unknown,
  path: string,
  mode: 'read' | 'write',
  options: UserFileOptions = {},
): HsmctlError {
  if (error instanceof HsmctlError) return error
  const code = (error as NodeJS.ErrnoException).code
  const say = (message: string) => prefixed(options, message)
  switch (code) {
    case 'ENOENT':
      return mode === 'read'
        ? new NotFoundError(
            say(`${path} does not exist`),
            'check the path (relative paths start in the current directory)',
          )
        : new NotFoundError(
            say(`cannot write ${path}: the directory ${dirname(path)} does not exist`),
            'create the directory first, or name a file in one that exists',
          )
    case 'ENOTDIR':
      return new NotFoundError(
        say(`${path} does not exist: a part of the path before its last is not a directory`),
        'check the path',
      )
    case 'EISDIR':
      return new UsageError(say(`${path} is a directory`), {
        hint: mode === 'read' ? 'name a file in it' : 'name a file to write, not a directory',
      })
    case 'EACCES':
    case 'EPERM':
      return new UsageError(
        say(`permission denied ${mode === 'read' ? 'reading' : 'writing'} ${path}`),
        {
          hint: `check the permissions of the file and of the directories above it (ls -l ${path})`,
        },
      )
    case 'EROFS':
      return new UsageError(say(`cannot write ${path}: the file system is read-only`), {
        hint: 'write somewhere else',
      })
    case 'ENOSPC':
    case 'EDQUOT':
      return new UsageError(say(`cannot write ${path}: no space left on its file system`), {
        hint: 'free some space, or write somewhere else',
      })
    case 'ELOOP':
      return new UsageError(say(`${path} is a symbolic link that loops`), {
        hint: 'check the path',
      })
    case 'ENAMETOOLONG':
      return new UsageError(say(`the path ${path} is too long`), { hint: 'use a shorter path' })
    default:
      return new UsageError(say(`cannot ${mode} ${path}: ${code ?? (error as Error).message}`), {
        hint: 'check the path',
      })
  }
}

function tooLarge(path: string, size: number | undefined, options: UserFileOptions): UsageError {
  const max = options.maxBytes!
  const what = options.what ?? 'file'
  const mib = max % (1 << 20) === 0 ? ` (${max >> 20} MiB)` : ''
  return new UsageError(
    prefixed(
      options,
      size !== undefined
        ? `${path} is ${size} bytes; a ${what} is at most ${max}${mib}`
        : `${path} holds more than ${max} bytes; a ${what} is at most ${max}${mib}`,
    ),
    options.sizeHint !== undefined ? { hint: options.sizeHint } : {},
  )
}

/**
 * Read a file the user named, whole. With `maxBytes`, a larger file is refused from its
 * size before it is read, and a stream (a pipe, /dev/zero) is read no further than that.
 */
export function readUserFile(path: string, options: UserFileOptions = {}): Buffer {
  let fd: number
  try {
    fd = openSync(path, options.regularOnly ? constants.O_RDONLY | constants.O_NONBLOCK : 'r')
  } catch (e) {
    throw userFileError(e, path, 'read', options)
  }
  try {
    const st = fstatSync(fd)
    if (st.isDirectory()) throw userFileError({ code: 'EISDIR' }, path, 'read', options)
    if (options.regularOnly && !st.isFile()) {
      throw new UsageError(prefixed(options, `${path} is ${kindOf(st)}, not a regular file`), {
        hint: `name a regular file${options.what ? ` (the ${options.what})` : ''}`,
      })
    }
    const max = options.maxBytes
    if (max !== undefined && st.isFile() && st.size > max) throw tooLarge(path, st.size, options)
    // a regular file's size, or chunks of a stream, up to the bound and one byte more
    const chunks: Buffer[] = []
    let total = 0
    for (;;) {
      const want = max !== undefined ? Math.min(1 << 16, max + 1 - total) : 1 << 16
      const chunk = Buffer.allocUnsafe(want)
      const n = readSync(fd, chunk, 0, want, null)
      if (n === 0) break
      chunks.push(chunk.subarray(0, n))
      total += n
      if (max !== undefined && total > max) throw tooLarge(path, undefined, options)
    }
    return Buffer.concat(chunks, total)
  } catch (e) {
    throw userFileError(e, path, 'read', options)
  } finally {
    closeSync(fd)
  }
}

/**
 * Check that a file the user named can be read, without reading it (another process will:
 * hsmd reads payloads itself), so that the error is said before anything is asked for.
 */
export function checkUserFile(path: string, options: UserFileOptions = {}): void {
  let fd: number
  try {
    // non-blocking: a FIFO without a writer must not hang the check
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch (e) {
    throw userFileError(e, path, 'read', options)
  }
  try {
    if (fstatSync(fd).isDirectory()) throw userFileError({ code: 'EISDIR' }, path, 'read', options)
  } finally {
    closeSync(fd)
  }
}

/** The most bytes of a unix socket's path (sun_path holds 108, with the NUL). */
export const MAX_SOCKET_PATH = 107

/**
 * Before listening on a socket path the user named: its directory exists, it is not a
 * directory, and it fits sun_path (Node would cut a longer path short, or call a missing
 * directory EACCES).
 */
export function checkSocketPath(path: string, options: UserFileOptions = {}): void {
  const bytes = Buffer.byteLength(path)
  if (bytes > MAX_SOCKET_PATH) {
    throw new UsageError(
      prefixed(
        options,
        `${path} is ${bytes} bytes; a unix socket's path has at most ${MAX_SOCKET_PATH}`,
      ),
      { hint: 'use a shorter path (in /tmp, or a relative one)' },
    )
  }
  let st
  try {
    st = statSync(dirname(path))
  } catch (e) {
    throw userFileError(e, path, 'write', options)
  }
  if (!st.isDirectory()) throw userFileError({ code: 'ENOTDIR' }, path, 'write', options)
  if (statSync(path, { throwIfNoEntry: false })?.isDirectory())
    throw userFileError({ code: 'EISDIR' }, path, 'write', options)
}

/** Write a file the user named (created 0666 less the umask, as a shell redirection). */
export function writeUserFile(
  path: string,
  data: string | Uint8Array,
  options: UserFileOptions = {},
): void {
  try {
    writeFileSync(path, data)
  } catch (e) {
    throw userFileError(e, path, 'write', options)
  }
}

/** Open a file the user named for writing (truncated); the fd is the caller's to close. */
export function openUserFileForWrite(path: string, options: UserFileOptions = {}): number {
  try {
    return openSync(path, 'w', 0o644)
  } catch (e) {
    throw userFileError(e, path, 'write', options)
  }
}
