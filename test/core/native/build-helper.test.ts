// scripts/build-helper.js: builds hsm-helper when it can, and otherwise explains what is
// missing without failing `npm run build` (the simulation never needs the helper).

import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { BUILD_SCRIPT, HELPER, HELPER_TESTING, helperUnavailable } from './support.js'

function run(args: string[], env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, [BUILD_SCRIPT, ...args], { encoding: 'utf8', env })
}

describe('scripts/build-helper.js', () => {
  it('without a C compiler: explains what to install and exits 0', () => {
    const r = run([], { PATH: '/nonexistent' })
    expect(r.status).toBe(0)
    expect(r.stderr).toMatch(/hsm-helper not built: no C compiler \(cc, gcc or clang\) on PATH/)
    expect(r.stderr).toMatch(/apt-get install gcc libc6-dev/)
    expect(r.stderr).toMatch(/The simulation .* works without it/)
  })

  it('with --strict, a helper that cannot be built fails the run', () => {
    const r = run(['--strict'], { PATH: '/nonexistent' })
    expect(r.status).toBe(1)
  })

  it('HSMCTL_SKIP_HELPER=1 skips the build', () => {
    const r = run([], { PATH: '/nonexistent', HSMCTL_SKIP_HELPER: '1' })
    expect(r.status).toBe(0)
    expect(r.stderr).toMatch(/not building hsm-helper/)
  })

  it.skipIf(helperUnavailable)(
    'with a compiler: builds both binaries',
    () => {
      const r = run(['--strict'], process.env)
      expect(r.status, r.stderr).toBe(0)
      expect(r.stderr).toMatch(/built .*helper\/build\/hsm-helper/)
      expect(existsSync(HELPER)).toBe(true)
      expect(existsSync(HELPER_TESTING)).toBe(true)
      expect(spawnSync(HELPER, ['--version'], { encoding: 'utf8' }).stdout).toBe(
        'hsm-helper protocol 1\n',
      )
      expect(spawnSync(HELPER_TESTING, ['--version'], { encoding: 'utf8' }).stdout).toBe(
        'hsm-helper protocol 1 (test build)\n',
      )
    },
    120_000,
  )
})
