// `hsmctl sim exec PROGRAM`, through bin/run.js as a user runs it: the daemon started on
// demand and asked to serve its simulation, the program run under the shim with its
// stdio, the signals hsmctl gets passed on, and hsmctl exiting with the program's status.
// A small C program of our own (compiled here) for statuses and signals; vm-sample for a
// VM that shows in `vm list` while it runs.

import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { constants } from 'node:os'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { shimPath, vmSamplePath } from '../../src/core/native/preflight.js'
import { buildHelper, helperUnavailable } from '../core/native/support.js'
import { hsmctl, RUN_JS } from '../support/cli.js'

const PROBE = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void on_signal(int s) { char m[32]; int n = snprintf(m, sizeof m, "got %d\n", s); write(1, m, n); _exit(100 + s); }

int main(int argc, char **argv) {
  struct stat st;
  if (stat("/dev/acrn_hsm", &st) == 0)
    printf("device %s %u:%u\n", S_ISCHR(st.st_mode) ? "char" : "other", major(st.st_rdev), minor(st.st_rdev));
  int fd = open("/dev/acrn_hsm", O_RDWR | O_CLOEXEC);
  printf("open %s\n", fd >= 0 ? "ok" : "failed");
  printf("preload %s\n", getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "");
  if (argc > 2 && strcmp(argv[1], "exit") == 0) return atoi(argv[2]);
  if (argc > 1 && strcmp(argv[1], "die") == 0) { fflush(stdout); raise(SIGTERM); return 1; }
  signal(SIGINT, on_signal); signal(SIGTERM, on_signal); signal(SIGHUP, on_signal);
  printf("ready %d\n", (int)getpid());
  fflush(stdout);
  for (;;) pause();
}
`

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-sim-exec-'))
const env = {
  HSMCTL_RUNTIME_DIR: join(dir, 'run'),
  HSMCTL_STATE_DIR: join(dir, 'state'),
  HSMCTL_BACKEND: 'sim',
}
const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => hsmctl(args, { ...env, ...extra })
const probe = join(dir, 'probe')

/** `hsmctl sim exec ARGS` in the background, its output collected. */
function exec(args: string[], extra: NodeJS.ProcessEnv = {}) {
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    [RUN_JS, 'sim', 'exec', ...args],
    { env: { ...process.env, NODE_ENV: undefined, NO_COLOR: '1', ...env, ...extra } },
  )
  const out = { stdout: '', stderr: '' }
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  const waitFor = async (pattern: RegExp, ms = 30_000): Promise<RegExpMatchArray> => {
    const deadline = Date.now() + ms
    for (;;) {
      const m = out.stdout.match(pattern)
      if (m) return m
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`no ${pattern}; stdout:\n${out.stdout}\nstderr:\n${out.stderr}`)
      await new Promise((r) => setTimeout(r, 25))
    }
  }
  return { child, out, exited, waitFor }
}

/** The parent of a process (/proc/PID/stat, field 4). */
const parentOf = (pid: number) =>
  Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1])

describe.skipIf(helperUnavailable)('hsmctl sim exec', () => {
  beforeAll(() => {
    buildHelper()
    writeFileSync(join(dir, 'probe.c'), PROBE)
    const cc = spawnSync('cc', ['-O2', '-Wall', '-o', probe, join(dir, 'probe.c')], {
      encoding: 'utf8',
    })
    expect(cc.status, cc.stderr).toBe(0)
  }, 120_000)

  afterAll(() => {
    run(['daemon', 'stop'])
    rmSync(dir, { recursive: true, force: true })
  })

  it('starts the daemon, has it serve the simulation, and exits with the program status', () => {
    const r = run(['sim', 'exec', '--', probe, 'exit', '42'])
    expect(r.code, r.stderr).toBe(42)
    // the device is the simulated one: a char device to stat (no file on the host), opened
    expect(r.stdout).toMatch(/^device char 10:\d+\nopen ok\n/)
    expect(r.stderr).toMatch(/started the hsmd daemon/)
    expect(r.stderr).toMatch(
      new RegExp(
        `hsmd serves its simulation to shimmed programs on ${join(dir, 'run')}/hsmd-sim-shim\\.sock`,
      ),
    )
    // the second time it is served already: nothing said, status 0 passed through
    const again = run(['sim', 'exec', probe, 'exit', '0'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.stderr).toBe('')
    // over the socket alone too
    const socket = run(['sim', 'exec', '--transport', 'socket', '--', probe, 'exit', '3'])
    expect(socket.code, socket.stderr).toBe(3)
    expect(socket.stdout).toMatch(/open ok/)
  })

  it('keeps an LD_PRELOAD the program already had, before the shim', () => {
    const lib = join(dir, 'libempty.so')
    writeFileSync(join(dir, 'empty.c'), 'int hsmctl_test_empty;\n')
    const cc = spawnSync('cc', ['-shared', '-fPIC', '-o', lib, join(dir, 'empty.c')], {
      encoding: 'utf8',
    })
    expect(cc.status, cc.stderr).toBe(0)
    const r = run(['sim', 'exec', probe, 'exit', '0'], { LD_PRELOAD: `${lib} ${shimPath()}` })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(`preload ${lib}:${shimPath()}\n`)
  })

  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    it(`passes ${signal} on to the program and exits with its status`, async () => {
      const p = exec(['--', probe, 'wait'])
      await p.waitFor(/ready (\d+)/)
      p.child.kill(signal)
      expect(await p.exited).toBe(100 + constants.signals[signal])
      expect(p.out.stdout).toContain(`got ${constants.signals[signal]}\n`)
    })
  }

  it('exits with 128 + N when signal N killed the program', () => {
    const r = run(['sim', 'exec', probe, 'die'])
    expect(r.code).toBe(128 + constants.signals.SIGTERM)
  })

  it('says so, as sh does, when the program is not there or cannot run (127, 126)', () => {
    const missing = run(['sim', 'exec', 'hsmctl-no-such-program', '--flag'])
    expect(missing.code).toBe(127)
    expect(missing.stderr).toMatch(/^Error: hsmctl-no-such-program: command not found\nHint: /)
    const path = run(['sim', 'exec', join(dir, 'nothing-here')])
    expect(path.code).toBe(127)
    expect(path.stderr).toMatch(/nothing-here: no such file/)
    const text = join(dir, 'not-executable')
    writeFileSync(text, 'data\n')
    chmodSync(text, 0o644)
    const denied = run(['sim', 'exec', text])
    expect(denied.code).toBe(126)
    expect(denied.stderr).toMatch(/not-executable: cannot execute: .*permission denied/)
    const none = run(['sim', 'exec', '--transport', 'ring'])
    expect(none.code).toBe(2)
    expect(none.stderr).toMatch(/PROGRAM is missing/)
  })

  it('says how to build the shim when it is not built (exit 5), before touching the daemon', () => {
    const fresh = {
      HSMCTL_RUNTIME_DIR: join(dir, 'run-unbuilt'),
      HSMCTL_STATE_DIR: join(dir, 'state-unbuilt'),
    }
    const r = run(['sim', 'exec', probe, 'exit', '0'], {
      ...fresh,
      HSMCTL_SHIM: join(dir, 'nowhere', 'libhsm-shim.so'),
    })
    expect(r.code).toBe(5)
    expect(r.stderr).toMatch(
      /the device shim is not built: .*nowhere\/libhsm-shim\.so does not exist/,
    )
    expect(r.stderr).toMatch(/Hint: build it with `npm run build`/)
    expect(r.stdout).toBe('')
    expect(JSON.parse(run(['daemon', 'status', '--json'], fresh).stdout).running).toBe(false)
  })

  it('runs vm-sample: its VM is in vm list, held by it, while it runs; SIGINT ends it cleanly', async () => {
    const p = exec(['--', vmSamplePath()])
    await p.waitFor(/Start VM! \[0\]/)
    const vms = JSON.parse(run(['vm', 'list', '--json']).stdout)
    expect(vms).toEqual([
      expect.objectContaining({ state: 'running', owner: 'outside process', memory: '0x100000' }),
    ])
    const holder = /^pid (\d+) \(vm-sample\)$/.exec(vms[0].holder)
    expect(holder, vms[0].holder).not.toBeNull()
    // the program hsmctl started, not some other vm-sample
    expect(parentOf(Number(holder![1]))).toBe(p.child.pid)
    expect(run(['vm', 'list']).stdout).toMatch(
      new RegExp(`^${vms[0].name} .* running .* pid ${holder![1]} \\(vm-sample\\)`, 'm'),
    )
    const access = run([
      'guest',
      'access',
      vms[0].name,
      '--pio',
      '0x3f8',
      '--write',
      '0x41',
      '--size',
      '1',
    ])
    expect(access.code, access.stderr).toBe(0)
    await p.waitFor(/Guest VM write PIO\[0x3f8\] with size\[0x1\] value\[0x41\]/)
    p.child.kill('SIGINT')
    expect(await p.exited).toBe(0)
    expect(p.out.stdout).toMatch(/Destroy VM! \[0\]\n$/)
    expect(JSON.parse(run(['vm', 'list', '--json']).stdout)).toEqual([])
  })
})

describe.skipIf(helperUnavailable)('hsmctl sim exec with a daemon run --serve-sim', () => {
  const served = mkdtempSync(join(tmpdir(), 'hsmctl-sim-exec-served-'))
  const own = {
    HSMCTL_RUNTIME_DIR: join(served, 'run'),
    HSMCTL_STATE_DIR: join(served, 'state'),
  }
  afterAll(() => {
    hsmctl(['daemon', 'stop'], own)
    rmSync(served, { recursive: true, force: true })
  })

  it('uses the socket the daemon already serves', () => {
    const socket = join(served, 'hsm.sock')
    const start = hsmctl(['daemon', 'start', '--serve-sim', socket], own)
    expect(start.code, start.stderr).toBe(0)
    const r = hsmctl(['sim', 'exec', '--', 'sh', '-c', 'echo "$HSM_SHIM_SOCKET"'], own)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe(`${socket}\n`)
    expect(r.stderr).toBe('')
  })
})
