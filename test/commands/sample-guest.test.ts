// The C sample client with a real-mode payload (`vm-sample --payload FILE`), run unchanged
// under the device shim against hsmd's simulation: the payload it loads into its own RAM
// is what the guest executes (issue 10: the program's RAM is the guest's RAM), each port
// access comes to the sample as an I/O request it prints and completes (§9.2), and SIGINT
// ends it cleanly.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { shimPath, vmSamplePath } from '../../src/core/native/preflight.js'
import { buildHelper, helperUnavailable } from '../core/native/support.js'
import { assemble } from '../support/assemble.js'
import { hsmctl, RUN_JS } from '../support/cli.js'
import { hello16, guestCodeUnavailable } from '../support/guests.js'

const why = helperUnavailable ?? guestCodeUnavailable('vm-sample with a payload')

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-sample-guest-'))
const socket = join(dir, 'hsm.sock')
const env = {
  HSMCTL_RUNTIME_DIR: join(dir, 'run'),
  HSMCTL_STATE_DIR: join(dir, 'state'),
  HSMCTL_BACKEND: 'sim',
}

function collect(child: ChildProcessWithoutNullStreams) {
  const out = { text: '' }
  child.stdout.on('data', (d: Buffer) => (out.text += d.toString()))
  child.stderr.on('data', (d: Buffer) => (out.text += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const waitFor = async (pattern: RegExp) => {
    // a hang guard, not a timing assertion
    const deadline = Date.now() + 90_000
    while (!pattern.test(out.text)) {
      if (Date.now() > deadline) throw new Error(`no ${pattern}; output so far:\n${out.text}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  return { out, exited, waitFor }
}

afterAll(() => {
  hsmctl(['daemon', 'stop'], env)
  rmSync(dir, { recursive: true, force: true })
})

describe.skipIf(why !== undefined)(
  `vm-sample runs a real-mode payload under the shim${why ? ` (skipped: ${why})` : ''}`,
  () => {
    it('the guest executes the bytes the sample loaded; the sample serves its port I/O', async () => {
      buildHelper()
      const file = join(dir, 'hi.bin')
      writeFileSync(file, assemble(hello16('Hi')))
      const d = spawn(process.execPath, [RUN_JS, 'daemon', 'run', '--serve-sim', socket], {
        env: { ...process.env, NODE_ENV: undefined, NO_COLOR: '1', ...env },
      })
      const daemon = collect(d)
      await daemon.waitFor(/serving the simulated platform/)
      const s = spawn(vmSamplePath(), ['--payload', file], {
        env: { ...process.env, LD_PRELOAD: shimPath(), HSM_SHIM_SOCKET: socket },
      })
      const sample = collect(s)
      await sample.waitFor(/value\[0x69\]/)
      const requests = sample.out.text.split('\n').filter((l) => l.startsWith('Guest VM'))
      // the LSR read (all ones from the sample: transmitter empty) before each byte, then the byte
      expect(requests.slice(0, 4)).toEqual([
        'Guest VM read PIO[0x3fd] with size[0x1]',
        'Guest VM write PIO[0x3f8] with size[0x1] value[0x48]',
        'Guest VM read PIO[0x3fd] with size[0x1]',
        'Guest VM write PIO[0x3f8] with size[0x1] value[0x69]',
      ])
      // Its port I/O reaches it through the lane (helper/SHIM.md), and vm show says so.
      const vmid = Number(sample.out.text.match(/vmid (\d+)/)![1])
      const show = hsmctl(['vm', 'show', `outside-${vmid}`], env)
      expect(show.code, show.stderr).toBe(0)
      expect(show.stdout).toMatch(/vCPUs \(kvm; port I\/O to its client through the lane\)/)
      s.kill('SIGINT')
      expect(await sample.exited).toBe(0)
      expect(sample.out.text).toMatch(/Destroy VM! \[0\]/)
      d.kill('SIGTERM')
      await daemon.exited
    })
  },
)
