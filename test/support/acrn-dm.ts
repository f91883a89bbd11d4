// ACRN's device model, acrn-dm, for the tests that run it unmodified on the simulation
// (`hsmctl sim exec -- acrn-dm ...`): whether this machine can run it at all, its cached
// build (scripts/build-acrn-dm.js, from ../shared/acrn-dm), and a running acrn-dm whose
// output a test can wait on.
//
// acrn-dm needs root (it parses the host's MADT before anything else), the MADT itself,
// and its Debian packages (installed by its build.sh with apt-get). Without root or an
// MADT the machine cannot run it: tests say so and skip. Without apt-get they skip too,
// except under HSMCTL_CI=1, where they fail.

import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { expect } from 'vitest'
import { helperUnavailable } from '../core/native/support.js'
import { ROOT, RUN_JS } from './cli.js'

const MADT = '/sys/firmware/acpi/tables/APIC'
const NR_HUGEPAGES = '/proc/sys/vm/nr_hugepages'

/** Why this machine cannot run acrn-dm at all, or undefined. */
export const acrnDmMachineCannot: string | undefined =
  helperUnavailable ??
  (process.getuid?.() !== 0
    ? 'acrn-dm must run as root (it reads the host MADT, mode 0400, before its options)'
    : !existsSync(MADT)
      ? `this host has no ACPI MADT (${MADT}), which acrn-dm parses at start`
      : undefined)

/**
 * acrn-dm built (or taken from the cache), iasl checked: its path, or why it cannot be
 * built here (no apt-get, not Debian). Under HSMCTL_CI=1 that is a failure.
 */
export function buildAcrnDm(): { path: string } | { unavailable: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-acrn-dm.js')], {
    encoding: 'utf8',
    timeout: 1_500_000,
  })
  if (r.status === 3) {
    const unavailable = r.stderr.trim()
    // CI installs what it needs with apt-get: there a skip would hide a regression
    if (process.env.HSMCTL_CI === '1') throw new Error(unavailable)
    console.warn(`skipping acrn-dm tests: ${unavailable}`)
    return { unavailable }
  }
  expect(r.status, r.stderr).toBe(0)
  expect(spawnSync('iasl', ['-v'], { stdio: 'ignore' }).status, 'iasl (acpica-tools)').toBe(0)
  return { path: r.stdout.trim().split('\n').pop()! }
}

/** acrn-dm raises the host's hugepage pool itself: the returned function gives it back. */
export function keepHugepages(): () => void {
  const saved = readFileSync(NR_HUGEPAGES, 'utf8')
  return () => writeFileSync(NR_HUGEPAGES, saved)
}

/** acrn-dm under `hsmctl sim exec`, its stdout and stderr collected. */
export interface RunningAcrnDm {
  readonly child: ChildProcessWithoutNullStreams
  /** Everything it printed so far (its UART on stdio included). */
  output(): string
  /** Its exit status once it has exited. */
  readonly exited: Promise<number | null>
  /** Wait until `ok()` (a hang guard, not a timing assertion); fails if acrn-dm exits first. */
  until(what: string, ok: () => boolean): Promise<void>
}

export function startAcrnDm(
  acrnDm: string,
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): RunningAcrnDm {
  const child = spawn(process.execPath, [RUN_JS, 'sim', 'exec', '--', acrnDm, ...args], {
    cwd: options.cwd,
    env: { ...process.env, NODE_ENV: undefined, NO_COLOR: '1', ...options.env },
  })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')))
  child.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')))
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
  return {
    child,
    output: () => out,
    exited,
    async until(what, ok) {
      const deadline = Date.now() + 120_000
      while (!ok()) {
        if (child.exitCode !== null || Date.now() > deadline)
          throw new Error(`acrn-dm: no ${what}; its output:\n${out}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    },
  }
}
