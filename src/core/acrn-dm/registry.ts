// acrnctl's launch-script registry (../shared/acrn-dm/README.md, "Launch-script registry"),
// in its own format so that acrnctl and hsmctl share it: `NAME.sh`, the script copied
// verbatim, and `NAME.args`, one line of the arguments `start` gives it
// (`bash NAME.sh $(cat NAME.args)`: split on blanks). Unlike acrnctl, an entry is added
// or deleted whole or not at all: both files are made under temporary names and linked
// into place without replacing anything, and a deletion renames both away before
// removing either, putting the first back if the second cannot go.

import {
  closeSync,
  constants,
  fstatSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import { ConflictError, DeviceModelError, NotFoundError, UsageError } from '../errors.js'

export interface RegistryEntry {
  name: string
  /** The registered copy of the launch script. */
  script: string
  /** The arguments `start` gives it; undefined when NAME.args is missing. */
  args: string[] | undefined
}

const ENTRY = /^([^.]+)\.sh$/
const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_WRONLY, O_CREAT, O_EXCL } = constants

/** A file-system failure on the registry, as exit 6 with the errno and what to do. */
function registryError(what: string, e: unknown): DeviceModelError {
  const code = (e as NodeJS.ErrnoException).code ?? 'EIO'
  const hint =
    code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
      ? 'the registry is root’s, as acrnctl’s is: run hsmctl as root (sudo), or check the file’s attributes (lsattr)'
      : undefined
  return new DeviceModelError(`${what}: ${code} (${(e as Error).message})`, hint)
}

/** The registry's entries, by name; none when the directory does not exist. */
export function listRegistry(confDir: string): RegistryEntry[] {
  let files: string[]
  try {
    files = readdirSync(confDir)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw registryError(`cannot read the launch-script registry ${confDir}`, e)
  }
  const present = new Set(files)
  const out: RegistryEntry[] = []
  for (const file of files.sort()) {
    const m = ENTRY.exec(file)
    if (!m) continue
    const entry = readEntry(confDir, m[1]!, present)
    if (entry) out.push(entry)
  }
  return out
}

/** One entry, or undefined when NAME.sh is not a registered script. */
export function registryEntry(confDir: string, name: string): RegistryEntry | undefined {
  return readEntry(confDir, name)
}

function readEntry(
  confDir: string,
  name: string,
  present?: Set<string>,
): RegistryEntry | undefined {
  const script = join(confDir, `${name}.sh`)
  if (present && !present.has(`${name}.sh`)) return undefined
  try {
    if (!lstatSync(script).isFile()) return undefined
  } catch {
    return undefined
  }
  let args: string[] | undefined
  if (!present || present.has(`${name}.args`)) {
    const text = readSmallFile(join(confDir, `${name}.args`))
    args = text === undefined ? undefined : splitArgs(text)
  }
  return { name, script, args }
}

/** A regular file's text (never through a link, never blocking on a FIFO), or undefined. */
export function readSmallFile(path: string, limit = 1 << 20): string | undefined {
  let fd: number
  try {
    fd = openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
  } catch {
    return undefined
  }
  try {
    const st = fstatSync(fd)
    if (!st.isFile() || st.size > limit) return undefined
    const buf = Buffer.alloc(st.size)
    let n = 0
    while (n < buf.length) {
      const got = readSyncAt(fd, buf, n)
      if (got === 0) break
      n += got
    }
    return buf.subarray(0, n).toString('utf8')
  } finally {
    closeSync(fd)
  }
}

function readSyncAt(fd: number, buf: Buffer, at: number): number {
  return readSync(fd, buf, at, buf.length - at, at)
}

/** NAME.args as `$(cat NAME.args)` splits it: on blanks and newlines. */
export function splitArgs(text: string): string[] {
  return text.split(/[ \t\n]+/).filter((a) => a !== '')
}

/**
 * Arguments that survive NAME.args unchanged: `start` splits the line on blanks and bash
 * expands glob characters in it, so neither may be in an argument.
 */
export function checkRegistryArgs(args: readonly string[]): void {
  for (const arg of args) {
    if (arg === '' || /[\s*?[]/.test(arg)) {
      throw new UsageError(
        `the script argument ${JSON.stringify(arg)} cannot be registered: ${arg === '' ? 'it is empty' : 'it holds a blank or a glob character (* ? [)'}`,
        {
          hint: 'NAME.args is one line that `start` splits on blanks, as acrnctl’s does; pass arguments without blanks or glob characters',
        },
      )
    }
  }
}

/**
 * VM names the registry and acrn-dm's socket names can hold: acrn-dm keeps 15 bytes
 * (MAX_VM_NAME_LEN 16 with the NUL), acrnctl wants a letter first and none of
 * `!@#$%^&*,` or space, and the socket `NAME.monitor.PID.socket` is parsed up to the
 * first dot, so a dot would make another name.
 */
export function checkVmName(name: string, flag?: string): void {
  const why =
    Buffer.byteLength(name) > 15
      ? `it is ${Buffer.byteLength(name)} bytes; acrn-dm keeps at most 15`
      : !/^[A-Za-z]/.test(name)
        ? 'it must start with a letter (acrnctl’s rule)'
        : !/^[A-Za-z][A-Za-z0-9_-]*$/.test(name)
          ? 'it may hold only letters, digits, _ and - (a dot would end the name in the socket’s file name)'
          : name === 'help' || name === 'nothing'
            ? 'acrnctl reserves it'
            : undefined
  if (why) {
    throw new UsageError(`bad VM name '${name}': ${why}`, {
      ...(flag ? { flag } : {}),
      hint: 'a VM name is up to 15 letters, digits, _ and -, starting with a letter',
    })
  }
}

/** Write `bytes` as a new file `final` (not replacing anything), through a temporary name. */
function placeFile(dir: string, final: string, bytes: Buffer, mode: number): void {
  const temp = join(dir, `.${final}.hsmctl-${process.pid}`)
  let fd: number
  try {
    fd = openSync(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode)
  } catch (e) {
    throw registryError(`cannot write ${join(dir, final)}`, e)
  }
  try {
    let n = 0
    while (n < bytes.length) n += writeSync(fd, bytes, n)
    closeSync(fd)
    // link() never replaces: an entry made meanwhile by someone else stays theirs
    linkSync(temp, join(dir, final))
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new ConflictError(`${join(dir, final)} appeared meanwhile; it was left alone`)
    }
    throw registryError(`cannot write ${join(dir, final)}`, e)
  } finally {
    try {
      closeSync(fd)
    } catch {
      // closed already
    }
    unlinkSync(temp)
  }
}

/** Register a launch script as NAME.sh with NAME.args, both or neither. */
export function addToRegistry(
  confDir: string,
  entry: { name: string; script: Buffer; args: readonly string[] },
): RegistryEntry {
  checkVmName(entry.name)
  checkRegistryArgs(entry.args)
  try {
    mkdirSync(confDir, { recursive: true, mode: 0o755 })
  } catch (e) {
    throw registryError(`cannot create the launch-script registry ${confDir}`, e)
  }
  for (const file of [`${entry.name}.sh`, `${entry.name}.args`]) {
    let exists = false
    try {
      lstatSync(join(confDir, file))
      exists = true
    } catch {
      // free
    }
    if (exists) {
      throw new ConflictError(
        `'${entry.name}' is registered already (${join(confDir, file)})`,
        `pick another name (vm add --name), or delete the old one first: hsmctl vm del ${entry.name}`,
      )
    }
  }
  placeFile(confDir, `${entry.name}.sh`, entry.script, 0o755)
  try {
    placeFile(confDir, `${entry.name}.args`, Buffer.from(`${entry.args.join(' ')}\n`), 0o644)
  } catch (e) {
    unlinkSync(join(confDir, `${entry.name}.sh`))
    throw e
  }
  return { name: entry.name, script: join(confDir, `${entry.name}.sh`), args: [...entry.args] }
}

/**
 * Remove NAME.sh and NAME.args, both or neither: each is renamed away first (a rename
 * that fails leaves the other put back), and only then are both removed.
 */
export function removeFromRegistry(confDir: string, name: string): { removed: string[] } {
  const files = [`${name}.sh`, `${name}.args`].filter((f) => {
    try {
      lstatSync(join(confDir, f))
      return true
    } catch {
      return false
    }
  })
  if (!files.includes(`${name}.sh`)) {
    throw new NotFoundError(`no launch script registered as '${name}' in ${confDir}`)
  }
  for (const f of files) {
    const st = lstatSync(join(confDir, f))
    if (!st.isFile()) {
      throw new DeviceModelError(
        `${join(confDir, f)} is not a regular file; nothing was deleted`,
        `look at it and remove it by hand if it is not wanted`,
      )
    }
  }
  const moved: [string, string][] = []
  try {
    for (const f of files) {
      const away = join(confDir, `.${f}.hsmctl-del-${process.pid}`)
      renameSync(join(confDir, f), away)
      moved.push([join(confDir, f), away])
    }
  } catch (e) {
    for (const [from, away] of moved.reverse()) renameSync(away, from)
    throw registryError(
      `cannot delete ${join(confDir, files[moved.length]!)}; nothing was deleted`,
      e,
    )
  }
  for (const [, away] of moved) unlinkSync(away)
  return { removed: moved.map(([from]) => from) }
}
