// The C sample client (helper/vm-sample.c, the flow of the kernel's samples/acrn/
// vm-sample.c, spec §9) run unchanged under the device shim against the platform hsmd
// serves (`daemon run --serve-sim`): `hsmctl guest access` makes its vCPU do port I/O,
// the sample prints each request and completes it, and SIGINT ends it cleanly.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { shimPath, vmSamplePath } from '../../src/core/native/preflight.js'
import { buildHelper, helperUnavailable } from '../core/native/support.js'
import { hsmctl, RUN_JS } from '../support/cli.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-sample-'))
const socket = join(dir, 'hsm.sock')
const env = {
  HSMCTL_RUNTIME_DIR: join(dir, 'run'),
  HSMCTL_STATE_DIR: join(dir, 'state'),
  HSMCTL_BACKEND: 'sim',
}
const run = (...args: string[]) => hsmctl(args, env)

/** A child whose output is collected, with a way to wait for a line. */
function watch(child: ChildProcessWithoutNullStreams) {
  const out = { text: '' }
  child.stdout.on('data', (d: Buffer) => (out.text += d.toString()))
  child.stderr.on('data', (d: Buffer) => (out.text += d.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  )
  const waitFor = async (pattern: RegExp, ms = 20_000) => {
    const deadline = Date.now() + ms
    while (!pattern.test(out.text)) {
      if (Date.now() > deadline)
        throw new Error(`no ${pattern} in time; output so far:\n${out.text}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  return { out, exited, waitFor }
}

let daemon: ReturnType<typeof watch> & { child: ChildProcessWithoutNullStreams }
let sample: ReturnType<typeof watch> & { child: ChildProcessWithoutNullStreams }

describe.skipIf(helperUnavailable)(
  'vm-sample under the shim, driven by hsmctl guest access',
  () => {
    beforeAll(async () => {
      buildHelper()
      const d = spawn(process.execPath, [RUN_JS, 'daemon', 'run', '--serve-sim', socket], {
        env: { ...process.env, NODE_ENV: undefined, NO_COLOR: '1', ...env },
      })
      daemon = { child: d, ...watch(d) }
      await daemon.waitFor(/serving the simulated platform/)
      const s = spawn(vmSamplePath(), [], {
        env: { ...process.env, LD_PRELOAD: shimPath(), HSM_SHIM_SOCKET: socket },
      })
      sample = { child: s, ...watch(s) }
      await sample.waitFor(/Start VM! \[0\]/)
    }, 120_000)

    afterAll(async () => {
      if (sample?.child.exitCode === null) sample.child.kill('SIGKILL')
      run('daemon', 'stop')
      await daemon?.exited
      rmSync(dir, { recursive: true, force: true })
    })

    it('sets its VM up as the kernel sample does (§9.2 steps 3-8)', () => {
      expect(sample.out.text).toMatch(
        /Created VM! \[0\]\nvmid \d+, \d+ vCPUs?\nSet up VM memory! \[0\]\nSet up VM BSP registers! \[0\]\nCreated IO request client! \[0\]\nStart VM! \[0\]/,
      )
    })

    it('its VM shows in vm list, held by an outside process', () => {
      const vms = JSON.parse(run('vm', 'list', '--json').stdout)
      expect(vms).toEqual([
        expect.objectContaining({
          state: 'running',
          owner: 'outside process',
          holder: `pid ${sample.child.pid} (vm-sample)`,
          memory: '0x100000',
        }),
      ])
    })

    it('prints each port access hsmctl guest access makes, and completes it', async () => {
      const [vm] = JSON.parse(run('vm', 'list', '--json').stdout)
      const write = run(
        'guest',
        'access',
        vm.name,
        '--pio',
        '0x3f8',
        '--write',
        '0x41',
        '--size',
        '1',
      )
      expect(write.code, write.stderr).toBe(0)
      await sample.waitFor(/Guest VM write PIO\[0x3f8\] with size\[0x1\] value\[0x41\]/)
      const read = run(
        'guest',
        'access',
        vm.name,
        '--pio',
        '0x60',
        '--read',
        '--size',
        '2',
        '--json',
      )
      expect(read.code, read.stderr).toBe(0)
      // The sample answers reads with all ones (nothing behind the port).
      expect(JSON.parse(read.stdout)).toMatchObject({ addr: '0x60', result: '0xffff' })
      await sample.waitFor(/Guest VM read PIO\[0x60\] with size\[0x2\]/)
      const last = run(
        'guest',
        'access',
        vm.name,
        '--vcpu',
        String(vm.vcpus - 1),
        '--pio',
        '0x80',
        '--write',
        '0x7',
        '--size',
        '4',
      )
      expect(last.code, last.stderr).toBe(0)
      await sample.waitFor(/Guest VM write PIO\[0x80\] with size\[0x4\] value\[0x7\]/)
    })

    it('SIGINT pauses and destroys its VM, and it exits cleanly; the VM is gone from vm list', async () => {
      sample.child.kill('SIGINT')
      expect(await sample.exited).toEqual({ code: 0, signal: null })
      expect(sample.out.text).toMatch(/Destroy VM! \[0\]\n$/)
      expect(JSON.parse(run('vm', 'list', '--json').stdout)).toEqual([])
      expect(existsSync(socket)).toBe(true)
    })
  },
)
