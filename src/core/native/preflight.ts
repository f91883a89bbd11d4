// Before the native backend starts: is hsm-helper built, does the device exist, may we
// open it? Each failure says what is wrong and what to do next (STYLE.md, "Error text").
// The file system and identity are injectable, so tests reach every branch as any user.

import { constants as fsConstants } from 'node:fs'
import { access, readFile, stat } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DaemonUnreachableError } from '../errors.js'

/** The HSM misc device node (§1.1). */
export const DEFAULT_DEVICE = '/dev/acrn_hsm'

// src/core/native and dist/core/native are both three levels below the package root.
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')

/** Where the helper's sources and Makefile live. */
export const HELPER_DIR = join(PACKAGE_ROOT, 'helper')

export interface HelperPathOptions {
  /** The test build (with the test-only op), helper/build/hsm-helper-testing. */
  readonly testing?: boolean
  readonly env?: NodeJS.ProcessEnv
}

/**
 * The hsm-helper binary: $HSMCTL_HELPER when set (an installed copy elsewhere), else
 * helper/build/hsm-helper in this package.
 */
export function helperPath(options: HelperPathOptions = {}): string {
  if (options.testing) return join(HELPER_DIR, 'build', 'hsm-helper-testing')
  const fromEnv = (options.env ?? process.env).HSMCTL_HELPER
  return fromEnv ? resolve(fromEnv) : join(HELPER_DIR, 'build', 'hsm-helper')
}

/**
 * The device shim (helper/SHIM.md): $HSMCTL_SHIM when set (an installed copy elsewhere),
 * else helper/build/libhsm-shim.so in this package.
 */
export function shimPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.HSMCTL_SHIM ? resolve(env.HSMCTL_SHIM) : join(HELPER_DIR, 'build', 'libhsm-shim.so')
}

/** The tap (helper/TAP.md), helper/build/libhsm-tap.so in this package. */
export function tapPath(): string {
  return join(HELPER_DIR, 'build', 'libhsm-tap.so')
}

/** The sample client (helper/vm-sample.c), helper/build/vm-sample in this package. */
export function vmSamplePath(): string {
  return join(HELPER_DIR, 'build', 'vm-sample')
}

/** The server side of the shim's ring, a Node-API addon (helper/hsm-ring-addon.c). */
export function ringAddonPath(): string {
  return join(HELPER_DIR, 'build', 'hsm_ring.node')
}

/** The shim's load generator (helper/shim-load.c), used by `npm run bench -- native`. */
export function shimLoadPath(): string {
  return join(HELPER_DIR, 'build', 'shim-load')
}

/** The floor of `npm run bench -- native`: the shim's frames between two C processes. */
export function frameFloorPath(): string {
  return join(HELPER_DIR, 'build', 'frame-floor')
}

/** What preflight reads from the system; tests replace any part of it. */
export interface PreflightSystem {
  stat(path: string): Promise<{
    mode: number
    uid: number
    gid: number
    isCharacterDevice(): boolean
    isFile(): boolean
  }>
  access(path: string, mode: number): Promise<void>
  readFile(path: string): Promise<string>
  getuid(): number
  getgroups(): number[]
}

const realSystem: PreflightSystem = {
  stat: (path) => stat(path),
  access: (path, mode) => access(path, mode),
  readFile: (path) => readFile(path, 'utf8'),
  getuid: () => process.getuid?.() ?? -1,
  getgroups: () => process.getgroups?.() ?? [],
}

function codeOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code
}

/** How to build the helper, the shim and the ring's addon (`make -C helper`). */
export const BUILD_HINT =
  'build it with `npm run build` (it builds the helper whenever a C compiler is present) ' +
  `or \`make -C ${HELPER_DIR}\`; it needs a C compiler (gcc or clang) and <linux/acrn.h> ` +
  '(Debian: apt-get install gcc libc6-dev linux-libc-dev)'

/** The helper binary exists and is executable. */
export async function checkHelper(
  path: string,
  system: Partial<PreflightSystem> = {},
): Promise<void> {
  const sys = { ...realSystem, ...system }
  try {
    const st = await sys.stat(path)
    if (!st.isFile()) throw new DaemonUnreachableError(`${path} is not a file`, BUILD_HINT)
  } catch (e) {
    if (e instanceof DaemonUnreachableError) throw e
    if (codeOf(e) === 'ENOENT') {
      throw new DaemonUnreachableError(
        `hsm-helper is not built: ${path} does not exist`,
        BUILD_HINT,
      )
    }
    throw new DaemonUnreachableError(`cannot check hsm-helper at ${path}: ${String(e)}`)
  }
  try {
    await sys.access(path, fsConstants.X_OK)
  } catch {
    throw new DaemonUnreachableError(
      `hsm-helper at ${path} is not executable`,
      `chmod +x ${path}, or rebuild it: ${BUILD_HINT}`,
    )
  }
}

/** The hint for a device that is not there (also used when open(2) itself says ENOENT). */
export function missingDeviceHint(device: string): string {
  return (
    `${device} exists only in the ACRN Service VM with the HSM module loaded. Is this the ` +
    'ACRN Service VM? Is the HSM module loaded (CONFIG_ACRN_HSM; `modprobe acrn` when it ' +
    'is built as acrn.ko; see `lsmod | grep acrn` and `dmesg | grep -i acrn`)? ' +
    'Without ACRN, use the simulation: --backend sim'
  )
}

/** `crw-rw----` from a stat mode. */
export function modeString(mode: number): string {
  const type = (mode & 0o170000) === 0o020000 ? 'c' : (mode & 0o170000) === 0o040000 ? 'd' : '-'
  const bits = 'rwxrwxrwx'
  let out = type
  for (let i = 0; i < 9; i++) out += mode & (1 << (8 - i)) ? bits[i] : '-'
  return out
}

/** Names from /etc/passwd or /etc/group (`name:x:id:...`), by id; missing files give none. */
async function idNames(sys: PreflightSystem, file: string): Promise<Map<number, string>> {
  const names = new Map<number, string>()
  let text: string
  try {
    text = await sys.readFile(file)
  } catch {
    return names
  }
  for (const line of text.split('\n')) {
    const [name, , id] = line.split(':')
    if (name && id !== undefined && /^\d+$/.test(id)) names.set(Number(id), name)
  }
  return names
}

const named = (names: Map<number, string>, id: number) => names.get(id) ?? String(id)

async function permissionError(
  sys: PreflightSystem,
  device: string,
  st: { mode: number; uid: number; gid: number },
): Promise<DaemonUnreachableError> {
  const users = await idNames(sys, '/etc/passwd')
  const groups = await idNames(sys, '/etc/group')
  const owner = named(users, st.uid)
  const group = named(groups, st.gid)
  const uid = sys.getuid()
  const mine = sys
    .getgroups()
    .map((g) => named(groups, g))
    .join(', ')
  const message =
    `permission denied on ${device} (${modeString(st.mode)} ${owner}:${group}); ` +
    `hsmctl runs as ${named(users, uid)} (uid ${uid}, groups: ${mine || 'none'})`
  const groupCanUse = (st.mode & 0o060) === 0o060 && st.gid !== 0
  const hint = groupCanUse
    ? `members of group ${group} may use it: \`sudo usermod -aG ${group} $USER\`, then log in ` +
      'again (HSM checks no capabilities, only the node permissions)'
    : `only ${owner} may open it. Run the native daemon as ${owner} (sudo), or let a group in ` +
      'with a udev rule, e.g. /etc/udev/rules.d/99-acrn-hsm.rules: ' +
      'KERNEL=="acrn_hsm", GROUP="acrn", MODE="0660"; then `sudo groupadd -f acrn`, ' +
      '`sudo usermod -aG acrn $USER`, `sudo udevadm trigger`, and log in again ' +
      '(HSM checks no capabilities, only the node permissions)'
  return new DaemonUnreachableError(message, hint)
}

/** The device node exists, is a character device, and this process may read and write it. */
export async function checkDevice(
  device: string = DEFAULT_DEVICE,
  system: Partial<PreflightSystem> = {},
): Promise<void> {
  const sys = { ...realSystem, ...system }
  let st: Awaited<ReturnType<PreflightSystem['stat']>>
  try {
    st = await sys.stat(device)
  } catch (e) {
    const code = codeOf(e)
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new DaemonUnreachableError(`${device} does not exist`, missingDeviceHint(device))
    }
    if (code === 'EACCES') {
      throw new DaemonUnreachableError(
        `cannot look at ${device}: permission denied on a directory above it`,
        'check the permissions of its parent directories',
      )
    }
    throw new DaemonUnreachableError(`cannot check ${device}: ${String(e)}`)
  }
  if (!st.isCharacterDevice()) {
    throw new DaemonUnreachableError(
      `${device} is not a character device (${modeString(st.mode)})`,
      'the HSM device is the misc character device acrn_hsm; check the --device path',
    )
  }
  try {
    await sys.access(device, fsConstants.R_OK | fsConstants.W_OK)
  } catch (e) {
    const code = codeOf(e)
    if (code === 'EACCES' || code === 'EPERM') throw await permissionError(sys, device, st)
    throw new DaemonUnreachableError(`cannot open ${device}: ${String(e)}`)
  }
}

export interface PreflightOptions {
  readonly device?: string
  readonly helper?: string
  /** Skip the device checks (a device that is not a real node, e.g. under the shim). */
  readonly skipDevice?: boolean
  readonly system?: Partial<PreflightSystem>
}

/**
 * Everything the native backend needs. The device comes first: off an ACRN Service VM,
 * "use the simulation" helps more than "build the helper".
 */
export async function preflight(
  options: PreflightOptions = {},
): Promise<{ helper: string; device: string }> {
  const helper = options.helper ?? helperPath()
  const device = options.device ?? DEFAULT_DEVICE
  if (!options.skipDevice) await checkDevice(device, options.system)
  await checkHelper(helper, options.system)
  return { helper, device }
}
