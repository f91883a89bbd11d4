// Prompts on a real terminal (tmux): the `vm create` wizard, the host-device picker of
// `ptdev assign`, and the confirmation of destructive verbs, which a "no" leaves undone.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { hsmctl, RUN_JS } from '../support/cli.js'
import { haveTmux, TmuxSession } from '../support/tmux.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-tty-'))
const env = {
  HSMCTL_RUNTIME_DIR: join(dir, 'run'),
  HSMCTL_STATE_DIR: join(dir, 'state'),
  NO_COLOR: '1',
}
const cli = `${process.execPath} ${RUN_JS}`
const sessions: TmuxSession[] = []
const open = (command: string) => {
  const s = new TmuxSession(command, env)
  sessions.push(s)
  return s
}
const vms = () =>
  JSON.parse(hsmctl(['vm', 'list', '--json'], env).stdout) as {
    name: string
    vcpus: number
    memory: string
  }[]

if (!haveTmux) {
  if (process.env.HSMCTL_CI === '1')
    throw new Error('tmux is missing (Debian: apt-get install tmux)')
  console.warn('\n*** SKIPPED the terminal tests: tmux is not installed ***\n')
}

afterEach(() => {
  for (const s of sessions.splice(0)) s.kill()
})

afterAll(() => {
  hsmctl(['daemon', 'stop'], env)
  rmSync(dir, { recursive: true, force: true })
})

describe.skipIf(!haveTmux)('prompts on a terminal', () => {
  it('vm create without a name runs the wizard', async () => {
    const s = open(`${cli} vm create`)
    await s.waitFor(/VM name/)
    s.type('wiz-1')
    s.keys('Enter')
    await s.waitFor(/vCPUs/)
    s.keys('BSpace')
    s.type('2')
    s.keys('Enter')
    await s.waitFor(/RAM at guest address 0/)
    s.keys('C-u')
    for (let i = 0; i < 4; i++) s.keys('BSpace')
    s.type('2M')
    s.keys('Enter')
    const screen = await s.waitFor(/\[exit \d+\]/)
    expect(screen).toMatch(/\[exit 0\]/)
    expect(screen).toMatch(/wiz-1\s+vmid \d+\s+created\s+2 vCPUs\s+2M RAM/)
    expect(vms()).toContainEqual(
      expect.objectContaining({ name: 'wiz-1', vcpus: 2, memory: '0x200000' }),
    )
  })

  // issue 13 item 21: one set of defaults: Enter at every prompt makes what `vm create NAME` makes
  it('the wizard proposes the defaults of vm create NAME', async () => {
    const s = open(`${cli} vm create`)
    await s.waitFor(/VM name/)
    s.type('wiz-0')
    s.keys('Enter')
    await s.waitFor(/vCPUs/)
    s.keys('Enter')
    await s.waitFor(/RAM at guest address 0/)
    s.keys('Enter')
    const screen = await s.waitFor(/\[exit \d+\]/)
    expect(screen).toMatch(/\[exit 0\]/)
    expect(hsmctl(['vm', 'create', 'flagless'], env).code).toBe(0)
    const [wizard, flagless] = ['wiz-0', 'flagless'].map((name) => {
      const { vcpus, memory } = vms().find((v) => v.name === name)!
      return { vcpus, memory }
    })
    expect(wizard).toEqual(flagless)
    for (const name of ['wiz-0', 'flagless'])
      expect(hsmctl(['vm', 'destroy', name, '--yes'], env).code).toBe(0)
  })

  it('the wizard refuses a bad name and asks again', async () => {
    const s = open(`${cli} vm create`)
    await s.waitFor(/VM name/)
    s.type('bad name!')
    s.keys('Enter')
    await s.waitFor(/is not a valid VM name/)
    s.keys('C-c')
    const screen = await s.waitFor(/\[exit \d+\]/)
    expect(screen).toMatch(/\[exit 130\]/)
    expect(vms().map((v) => v.name)).not.toContain('bad name!')
  })

  it('ptdev assign without --phys offers the host devices', async () => {
    const s = open(`${cli} ptdev assign wiz-1`)
    await s.waitFor(/Host device to pass through/)
    const screen = await s.waitFor(/00:14\.0\s+USB 3\.1 xHCI/)
    expect(screen).not.toMatch(/Host bridge/) // bridges cannot be assigned
    // move the cursor to the xHCI entry and pick it
    for (let i = 0; i < 8 && !/❯ 00:14\.0/.test(s.screen()); i++) {
      s.keys('Down')
      await new Promise((r) => setTimeout(r, 100))
    }
    s.keys('Enter')
    const done = await s.waitFor(/\[exit \d+\]/)
    expect(done).toMatch(/assigned 00:14\.0 to wiz-1/)
    const list = JSON.parse(hsmctl(['ptdev', 'list', 'wiz-1', '--json'], env).stdout)
    expect(list).toEqual([expect.objectContaining({ vm: 'wiz-1', phys: '00:14.0' })])
  })

  it('a destructive verb asks; "no" changes nothing and exits 130', async () => {
    const s = open(`${cli} vm destroy wiz-1`)
    await s.waitFor(/Destroy VM 'wiz-1'\?/)
    s.type('n')
    s.keys('Enter')
    const screen = await s.waitFor(/\[exit \d+\]/)
    expect(screen).toMatch(/cancelled; nothing was changed/)
    expect(screen).toMatch(/\[exit 130\]/)
    expect(vms().map((v) => v.name)).toContain('wiz-1')
  })

  it('and "yes" goes ahead', async () => {
    const s = open(`${cli} vm destroy wiz-1`)
    await s.waitFor(/Destroy VM 'wiz-1'\?/)
    s.type('y')
    s.keys('Enter')
    const screen = await s.waitFor(/\[exit \d+\]/)
    expect(screen).toMatch(/destroyed wiz-1/)
    expect(vms().map((v) => v.name)).not.toContain('wiz-1')
  })
})

describe.skipIf(!haveTmux)(
  'Ctrl-C at any prompt: exit 130, as answering "n", and nothing changed',
  () => {
    const run = (...args: string[]) => {
      const r = hsmctl(args, env)
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0)
      return r.stdout
    }
    // a VM with something for each prompt to take away: an MMIO segment, a PCI device
    const state = () => run('vm', 'show', 'cc', '--json').replace(/"uptimeSeconds": \d+/, '')
    let before = ''
    beforeAll(() => {
      run('vm', 'create', 'cc', '--memory', '1M')
      run(
        'memseg',
        'set',
        'cc',
        '--type',
        'mmio',
        '--gpa',
        '0xd0000000',
        '--hpa',
        '0xd0000000',
        '--size',
        '64K',
      )
      run('ptdev', 'assign', 'cc', '--phys', '00:14.0')
      before = state()
    })

    it.each([
      ['vm create', /VM name/],
      ['ptdev assign cc', /Host device to pass through/],
      ['vm destroy cc', /Destroy VM 'cc'\?/],
      ['vm reset cc', /Reset VM 'cc'\?/],
      ['memseg unset cc --gpa 0xd0000000 --size 64K', /Unmap MMIO at 0xd0000000 from 'cc'\?/],
      ['ptdev deassign cc --phys 00:14.0', /Take 00:14\.0 away from 'cc'\?/],
    ])('hsmctl %s', async (command, prompt) => {
      const names = vms().map((v) => v.name)
      const s = open(`${cli} ${command}`)
      await s.waitFor(prompt)
      s.keys('C-c')
      const screen = await s.waitFor(/\[exit \d+\]/)
      expect(screen).toMatch(/cancelled at the prompt \(Ctrl-C\); nothing was changed/)
      expect(screen).not.toMatch(/force closed/)
      expect(screen).toMatch(/\[exit 130\]/)
      expect(vms().map((v) => v.name)).toEqual(names)
      expect(state()).toBe(before)
    })

    it('in the shell: the command ends with 130 and the shell lives on', async () => {
      // `trap : INT`: tmux's sh outlives a Ctrl-C sent to the whole process group
      const s = open(`trap : INT; ${cli} shell`)
      await s.waitFor(/hsmctl\(sim, [^)]*\)>$/m)
      s.type('vm destroy cc')
      s.keys('Enter')
      await s.waitFor(/Destroy VM 'cc'\?/)
      s.keys('C-c')
      await s.waitFor(/cancelled at the prompt \(Ctrl-C\); nothing was changed/)
      await s.waitFor(/hsmctl\(sim, [^)]*\)>$/m)
      s.type('exit')
      s.keys('Enter')
      const screen = await s.waitFor(/\[exit \d+\]/)
      expect(screen).toMatch(/\[exit 130\]/)
      expect(state()).toBe(before)
    })
  },
)
