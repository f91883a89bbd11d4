// helper/kvm-floor.c, the floor of `npm run bench -- kvm`: a bare C program on /dev/kvm.
// `handoff` hands each exit to a second thread and back as the engine hands it to the
// main thread (spin, then futex, on both sides); it ends only when every exit was
// completed, so a run that ends with the exit count proves the handshake (a lost wake-up
// would hang it until the timeout).
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { HELPER_DIR } from '../../../src/core/native/preflight.js'

const floorPath = join(HELPER_DIR, 'build', 'kvm-floor')

function unavailable(): string | undefined {
  const why = !existsSync('/dev/kvm')
    ? 'no /dev/kvm on this machine'
    : !existsSync(floorPath)
      ? `${floorPath} is not built (make -C helper)`
      : undefined
  if (why && process.env.HSMCTL_CI === '1' && existsSync('/dev/kvm'))
    throw new Error(`HSMCTL_CI=1: kvm-floor cannot run although /dev/kvm exists: ${why}`)
  if (why) console.warn(`skipping kvm-floor: ${why}`)
  return why
}

const floor = (...args: string[]) =>
  spawnSync(floorPath, args, { encoding: 'utf8', timeout: 120_000 })

describe.skipIf(unavailable())('kvm-floor (the KVM benchmark floor)', () => {
  for (const mode of ['out', 'handoff']) {
    it(`${mode}: every OUT of the guest exits once, and the last is the done port's`, () => {
      const r = floor(mode, '2000')
      expect(r.stderr).toBe('')
      expect(r.status).toBe(0)
      const out = JSON.parse(r.stdout)
      expect(out).toMatchObject({ guest: mode, count: 2000, exits: 2001 })
      expect(out.seconds).toBeGreaterThan(0)
    })
  }

  it('refuses a bad mode or count with its usage (exit 2)', () => {
    for (const args of [['handoff', '0'], ['handoff'], ['sideways', '10']]) {
      const r = floor(...args)
      expect(r.status, args.join(' ')).toBe(2)
      expect(r.stderr).toMatch(/^usage: kvm-floor out\|compute\|host\|handoff COUNT/)
    }
  })
})
