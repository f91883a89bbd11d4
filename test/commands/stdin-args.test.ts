// A piped stdin is never taken as a missing argument. oclif reads it into the first
// argument left out, so `echo x | hsmctl vm create` made a VM named x, `vm show` showed a
// VM named after whatever was piped, and a program feeding a command (a script into the
// shell, RPC bytes into `daemon dial-stdio`) lost its first bytes to the parser.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Config } from '@oclif/core'
import { afterAll, describe, expect, it } from 'vitest'
import { hsmctl, ROOT } from '../support/cli.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-stdin-'))
const env = { HSMCTL_RUNTIME_DIR: join(dir, 'run'), HSMCTL_STATE_DIR: join(dir, 'state') }

afterAll(() => {
  hsmctl(['daemon', 'stop'], env)
  rmSync(dir, { recursive: true, force: true })
})

describe('piped stdin and arguments', () => {
  it('vm create with NAME left out and a name piped in is a usage error and creates nothing', () => {
    const r = hsmctl(['vm', 'create'], env, 'piped\n')
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('NAME is required')
    const list = hsmctl(['vm', 'list', '--json'], env)
    expect(list.code).toBe(0)
    expect(JSON.stringify(JSON.parse(list.stdout))).not.toContain('piped')
  })

  it('vm show with NAME left out does not look up the piped text', () => {
    const r = hsmctl(['vm', 'show'], env, 'piped\n')
    expect(r.code).toBe(2)
    expect(r.stderr).not.toContain('piped')
  })

  // hsmctl's own commands (the autocomplete and help plugins' are theirs)
  it('every hsmctl command with arguments leaves stdin alone', async () => {
    const config = await Config.load(ROOT)
    const leaky: string[] = []
    for (const id of config.commandIDs) {
      const found = config.findCommand(id)
      if (!found || found.pluginName !== 'hsmctl') continue
      if (Object.keys(found.args ?? {}).length === 0) continue
      const Cmd = await found.load()
      // init() is where HsmCommand marks its arguments
      const Concrete = Cmd as unknown as new (
        argv: string[],
        config: Config,
      ) => {
        init(): Promise<void>
      }
      await new Concrete([], config).init()
      for (const [name, arg] of Object.entries(Cmd.args ?? {}))
        if (!(arg as { ignoreStdin?: boolean }).ignoreStdin) leaky.push(`${id} ${name}`)
    }
    expect(leaky).toEqual([])
    expect(config.commandIDs.length).toBeGreaterThan(50)
  })
})
