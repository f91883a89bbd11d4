// ACRN's device model, acrn-dm, for the tests that run it unmodified on the simulation
// (`hsmctl sim exec -- acrn-dm ...`, or launch scripts `hsmctl vm start` runs): whether this
// machine can run it at all, its cached build (scripts/build-acrn-dm.js, from
// ../shared/acrn-dm) with upstream's acrnctl beside it, a running acrn-dm whose output a
// test can wait on, and a private mount namespace for tests that run acrnctl.
//
// acrn-dm needs root (it parses the host's MADT before anything else), the MADT itself,
// and its Debian packages (installed by its build.sh with apt-get). Without root or an
// MADT the machine cannot run it: tests say so and skip. Without apt-get they skip too,
// except under HSMCTL_CI=1, where they fail.

import {
  spawn,
  spawnSync,
  type ChildProcessWithoutNullStreams,
  type SpawnSyncReturns,
} from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect } from 'vitest'
import { acrnDmBuild, privateAcrnNamespace } from '../../scripts/bench/_acrn-dm.js'
import { buildHelper, helperUnavailable } from '../core/native/support.js'
import { hsmctl, RUN_JS, type CliResult } from './cli.js'

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
export function buildAcrnDm(): { path: string; acrnctl: string } | { unavailable: string } {
  const built = acrnDmBuild()
  if ('unavailable' in built) {
    // CI installs what it needs with apt-get: there a skip would hide a regression
    if (process.env.HSMCTL_CI === '1') throw new Error(built.unavailable)
    console.warn(`skipping acrn-dm tests: ${built.unavailable}`)
    return built
  }
  expect(spawnSync('iasl', ['-v'], { stdio: 'ignore' }).status, 'iasl (acpica-tools)').toBe(0)
  return built
}

/** acrn-dm raises the host's hugepage pool itself: the returned function gives it back. */
export function keepHugepages(): () => void {
  const saved = readFileSync(NR_HUGEPAGES, 'utf8')
  return () => writeFileSync(NR_HUGEPAGES, saved)
}

/** acrn-dm under `hsmctl sim exec` (or `trace exec`), its stdout and stderr collected. */
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
  /** via: the hsmctl command that runs it (default `sim exec`; `trace exec` for the tap) */
  options: { cwd: string; env: NodeJS.ProcessEnv; via?: readonly string[] },
): RunningAcrnDm {
  const via = options.via ?? ['sim', 'exec']
  const child = spawn(process.execPath, [RUN_JS, ...via, '--', acrnDm, ...args], {
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

/**
 * End acrn-dm whatever state a test left it in: SIGINT (hsmctl passes it on; acrn-dm
 * destroys its VM and exits 0), then, if it has not exited within 20 s, SIGKILL for
 * acrn-dm itself (hsmctl's child), which a SIGKILL of hsmctl would not reach, and hsmctl.
 */
export async function endAcrnDm(dm: RunningAcrnDm): Promise<void> {
  if (dm.child.exitCode !== null || dm.child.signalCode !== null) return
  dm.child.kill('SIGINT')
  const timeout = new Promise<false>((r) => setTimeout(() => r(false), 20_000).unref())
  if (await Promise.race([dm.exited.then(() => true), timeout])) return
  const kids = spawnSync('pgrep', ['-P', String(dm.child.pid)], { encoding: 'utf8' }).stdout ?? ''
  for (const pid of kids.split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL')
  dm.child.kill('SIGKILL')
}

/**
 * A mount namespace of the test's own: a tmpfs on /run (so /run/acrn/mngr is private), an
 * overlay on /usr/share whose changes go to a temp dir, and a tmpfs on /usr/share/acrn/conf
 * (which takes chattr, for the half-delete test). Programs run in it through nsenter; the
 * namespace lives as long as its holder process, which close() ends.
 */
export class AcrnNamespace {
  readonly dir: string
  private constructor(
    readonly holder: number,
    dir: string,
  ) {
    this.dir = dir
  }

  static open(): AcrnNamespace {
    const dir = mkdtempSync(join(tmpdir(), 'hsmctl-acrn-ns-'))
    const pid = privateAcrnNamespace(dir)
    return new AcrnNamespace(pid, dir)
  }

  /** Run a program in the namespace, whatever it exits with. */
  run(
    cmd: string,
    args: string[],
    options: { env?: NodeJS.ProcessEnv; input?: string } = {},
  ): CliResult {
    const r: SpawnSyncReturns<string> = spawnSync(
      'nsenter',
      ['-t', String(this.holder), '-m', '--', cmd, ...args],
      {
        encoding: 'utf8',
        env: {
          ...process.env,
          NODE_ENV: undefined,
          NO_COLOR: '1',
          // ACRN's own paths, private in here (vitest.config.ts points tests elsewhere)
          HSMCTL_ACRN_MNGR_DIR: undefined,
          HSMCTL_ACRN_CONF_DIR: undefined,
          ...options.env,
        },
        timeout: 180_000,
        ...(options.input !== undefined ? { input: options.input } : {}),
      },
    )
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
  }

  /** `hsmctl ARGS` in the namespace. */
  hsmctl(args: string[], env: NodeJS.ProcessEnv = {}): CliResult {
    return this.run(process.execPath, [RUN_JS, ...args], { env })
  }

  /** A shell command in the namespace (ls, chattr, cat). */
  sh(command: string): CliResult {
    return this.run('sh', ['-c', command])
  }

  close(): void {
    try {
      process.kill(this.holder, 'SIGKILL')
    } catch {
      // gone already
    }
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** A launch script that runs acrn-dm on the simulation's minimal machine, named by $1. */
export function launchScript(acrnDm: string, guest: string, extra = ''): string {
  return [
    '#!/bin/bash',
    '# a test VM: 128M, one vCPU on pCPU 1, COM1 on stdio',
    'name=${1:-vmdefault}',
    `${acrnDm} -m 128M --cpu_affinity 1 -s 0:0,hostbridge -s 1:0,lpc${extra} -l com1,stdio -E ${guest} $name`,
    '',
  ].join('\n')
}

/** A describe block's acrn-dm: built before its tests, its daemon and files gone after. */
export interface AcrnDmSession {
  /** The temp dir holding `run/` and `state/` (and whatever `prepare` wrote). */
  readonly dir: string
  /** HSMCTL_RUNTIME_DIR and HSMCTL_STATE_DIR in `dir`, and the session's `extraEnv`. */
  readonly env: { HSMCTL_RUNTIME_DIR: string; HSMCTL_STATE_DIR: string } & NodeJS.ProcessEnv
  /** acrn-dm's path (once beforeAll has run and it could be built). */
  path(): string
  /** Why it could not be built here, if so: each test skips with it. */
  unavailable(): string | undefined
}

/**
 * beforeAll: the helper and acrn-dm built, `prepare(dir)` (guests, disks), the host's
 * hugepage pool remembered; afterAll: the daemon stopped, the pool given back, `dir` gone.
 */
export function acrnDmSession(
  name: string,
  prepare: (dir: string) => void,
  extraEnv: NodeJS.ProcessEnv = {},
): AcrnDmSession {
  const dir = mkdtempSync(join(tmpdir(), `hsmctl-${name}-`))
  const env = {
    ...extraEnv,
    HSMCTL_RUNTIME_DIR: join(dir, 'run'),
    HSMCTL_STATE_DIR: join(dir, 'state'),
  }
  let path: string | undefined
  let unavailable: string | undefined
  let restoreHugepages: (() => void) | undefined
  beforeAll(() => {
    buildHelper()
    const built = buildAcrnDm()
    if ('unavailable' in built) {
      unavailable = built.unavailable
      return
    }
    path = built.path
    prepare(dir)
    restoreHugepages = keepHugepages()
  }, 1_800_000)
  afterAll(() => {
    hsmctl(['daemon', 'stop'], env)
    restoreHugepages?.()
    rmSync(dir, { recursive: true, force: true })
  })
  return {
    dir,
    env,
    path: () => {
      if (path === undefined) throw new Error(`acrn-dm is not built: ${unavailable}`)
      return path
    },
    unavailable: () => unavailable,
  }
}
