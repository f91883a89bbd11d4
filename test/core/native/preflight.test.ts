// Preflight (src/core/native/preflight.ts): each way the native backend cannot start gets
// an error that says what is wrong and what to do. The system is injected, so the
// permission cases run the same as root or as a user.

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DaemonUnreachableError } from '../../../src/core/errors.js'
import {
  checkDevice,
  checkHelper,
  DEFAULT_DEVICE,
  HELPER_DIR,
  helperPath,
  modeString,
  preflight,
  type PreflightSystem,
} from '../../../src/core/native/preflight.js'

function errnoError(code: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(code)
  e.code = code
  return e
}

const PASSWD = 'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n'
const GROUP = 'root:x:0:\nacrn:x:123:\nalice:x:1000:\nkvm:x:104:alice\n'

/** A device node `mode` owned by uid:gid that `access` refuses, seen by alice (1000). */
function deniedSystem(mode: number, uid: number, gid: number): Partial<PreflightSystem> {
  return {
    stat: async () => ({ mode, uid, gid, isCharacterDevice: () => true, isFile: () => false }),
    access: async () => {
      throw errnoError('EACCES')
    },
    readFile: async (path) => {
      if (path === '/etc/passwd') return PASSWD
      if (path === '/etc/group') return GROUP
      throw errnoError('ENOENT')
    },
    getuid: () => 1000,
    getgroups: () => [1000, 104],
  }
}

async function failure(p: Promise<unknown>): Promise<DaemonUnreachableError> {
  try {
    await p
  } catch (e) {
    expect(e).toBeInstanceOf(DaemonUnreachableError)
    expect((e as DaemonUnreachableError).exitCode).toBe(5)
    return e as DaemonUnreachableError
  }
  throw new Error('expected preflight to fail')
}

describe('the device (spec §1.1, §1.3)', () => {
  it('missing: asks whether this is the ACRN Service VM and the HSM module is loaded', async () => {
    const e = await failure(checkDevice('/nonexistent/acrn_hsm'))
    expect(e.message).toBe('/nonexistent/acrn_hsm does not exist')
    expect(e.hint).toMatch(/Is this the ACRN Service VM\?/)
    expect(e.hint).toMatch(/CONFIG_ACRN_HSM/)
    expect(e.hint).toMatch(/modprobe acrn/)
    expect(e.hint).toMatch(/--backend sim/)
  })

  it('not a character device', async () => {
    const e = await failure(checkDevice('/etc/hostname'))
    expect(e.message).toMatch(/^\/etc\/hostname is not a character device \(-rw/)
  })

  it('permission denied, root-only node: names owner, mode, the user, and a udev rule', async () => {
    const e = await failure(checkDevice(DEFAULT_DEVICE, deniedSystem(0o020600, 0, 0)))
    expect(e.message).toBe(
      'permission denied on /dev/acrn_hsm (crw------- root:root); ' +
        'hsmctl runs as alice (uid 1000, groups: alice, kvm)',
    )
    expect(e.hint).toMatch(/only root may open it/)
    expect(e.hint).toMatch(/KERNEL=="acrn_hsm", GROUP="acrn", MODE="0660"/)
    expect(e.hint).toMatch(/usermod -aG acrn/)
  })

  it('permission denied, group-readable node: says which group to join', async () => {
    const e = await failure(checkDevice(DEFAULT_DEVICE, deniedSystem(0o020660, 0, 123)))
    expect(e.message).toMatch(/\(crw-rw---- root:acrn\)/)
    expect(e.hint).toMatch(/^members of group acrn may use it: `sudo usermod -aG acrn \$USER`/)
  })

  it('falls back to numeric ids when the names are unknown', async () => {
    const sys = { ...deniedSystem(0o020600, 4242, 4343), readFile: async () => '' }
    const e = await failure(checkDevice(DEFAULT_DEVICE, sys))
    expect(e.message).toMatch(
      /crw------- 4242:4343\); hsmctl runs as 1000 \(uid 1000, groups: 1000, 104\)/,
    )
  })

  it('a readable and writable character device passes', async () => {
    await expect(checkDevice('/dev/null')).resolves.toBeUndefined()
  })
})

describe('the helper binary', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'hsm-preflight-'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('not built: says how to build it', async () => {
    const e = await failure(checkHelper(join(dir, 'hsm-helper')))
    expect(e.message).toBe(`hsm-helper is not built: ${join(dir, 'hsm-helper')} does not exist`)
    expect(e.hint).toContain('npm run build')
    expect(e.hint).toContain(`make -C ${HELPER_DIR}`)
    expect(e.hint).toMatch(/C compiler/)
  })

  it('not executable', async () => {
    const path = join(dir, 'not-executable')
    writeFileSync(path, '')
    chmodSync(path, 0o644)
    const e = await failure(checkHelper(path))
    expect(e.message).toBe(`hsm-helper at ${path} is not executable`)
  })

  it('not a file', async () => {
    const e = await failure(checkHelper(dir))
    expect(e.message).toBe(`${dir} is not a file`)
  })

  it('helperPath: helper/build in this package, $HSMCTL_HELPER, the test build', () => {
    expect(helperPath({ env: {} })).toBe(join(HELPER_DIR, 'build', 'hsm-helper'))
    expect(HELPER_DIR).toMatch(/\/helper$/)
    expect(helperPath({ env: { HSMCTL_HELPER: '/opt/hsm/hsm-helper' } })).toBe(
      '/opt/hsm/hsm-helper',
    )
    expect(helperPath({ testing: true })).toBe(join(HELPER_DIR, 'build', 'hsm-helper-testing'))
  })
})

describe('preflight', () => {
  it('checks the device before the helper (off ACRN, "use the sim" helps most)', async () => {
    const e = await failure(
      preflight({ device: '/nonexistent/acrn_hsm', helper: '/nonexistent/helper' }),
    )
    expect(e.message).toMatch(/acrn_hsm does not exist/)
  })

  it('skips the device when asked, and still checks the helper', async () => {
    const e = await failure(
      preflight({
        device: '/nonexistent/acrn_hsm',
        helper: '/nonexistent/helper',
        skipDevice: true,
      }),
    )
    expect(e.message).toMatch(/hsm-helper is not built/)
  })

  it('modeString renders like ls -l', () => {
    expect(modeString(0o020660)).toBe('crw-rw----')
    expect(modeString(0o100755)).toBe('-rwxr-xr-x')
    expect(modeString(0o040700)).toBe('drwx------')
  })
})
