// `hsmctl vm ...` as a user runs it: create, list, show, the lifecycle verbs (§2.5 and the
// hypervisor's preconditions, Appendix A.3), registers (§7.9), console, and what bad input
// does: the exit code, the message, and no change to the VMs.

import { spawn } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { hsmctlAsync, RUN_JS } from '../support/cli.js'
import { expectError, expectRefusal, hsmdSession, type Json } from '../support/hsmd-session.js'

const s = hsmdSession('vm')

const VM_DETAIL_KEYS = [
  'name',
  'vmid',
  'state',
  'vcpus',
  'memory',
  'owner',
  'uptimeSeconds',
  'flags',
  'cpuAffinity',
  'ioreqBuf',
  'memsegs',
  'regs',
  'ptdevs',
  'mmiodevs',
  'vdevs',
  'ioeventfds',
  'irqfds',
  'clients',
  'console',
  'execution',
  'hypervisor',
]

describe('vm create (CREATE_VM, §2.2) and vm list', () => {
  let demo: Json

  it('creates a VM with RAM at 0 and prints it, left created', () => {
    const r = s.run('vm', 'create', 'demo', '--vcpus', '2', '--memory', '1M')
    expect(r.code, r.stderr).toBe(0)
    const vmid =
      /^demo {2}vmid (\d+) {2}created {2}2 vCPUs {2}1M RAM {2}up \d+[dhms](?:\d+[hms])?$/m.exec(
        r.stdout,
      )
    expect(vmid, r.stdout).not.toBeNull()
    expect(r.stdout).toMatch(/^ {2}RAM {2}gpa 0x0-0xfffff \(1M\)$/m)
    // hsmd is the default ioreq client; HSM made the ioeventfd client (§2.2 step 5)
    expect(r.stdout).toMatch(/^ {2}acrndm +default +hsmd pid \d+/m)
    expect(r.stdout).toMatch(
      new RegExp(`^ {2}ioeventfd-${vmid![1]} +kernel +kernel +ranges 0$`, 'm'),
    )
    demo = s.json('vm', 'show', 'demo')
    expect(demo.vmid).toBe(Number(vmid![1]))
  })

  it('--json prints the VM: vCPUs from the affinity (A.2), flags by name, hypervisor state', () => {
    const vm = s.json('vm', 'create', 'flagged', '--cpu-affinity', '0x6', '--flag', 'hide-mtrr')
    expect(Object.keys(vm)).toEqual(VM_DETAIL_KEYS)
    expect(vm).toMatchObject({
      name: 'flagged',
      state: 'created',
      vcpus: 2,
      memory: '0x0',
      owner: 'hsmd',
      flags: ['hide-mtrr'],
      cpuAffinity: '0x6',
      memsegs: [],
      regs: [],
      ptdevs: [],
      ioeventfds: [],
      irqfds: [],
    })
    expect(vm.ioreqBuf).toMatch(/^0x[0-9a-f]+$/)
    expect(vm.vmid).not.toBe(demo.vmid)
    expect(vm.hypervisor.state).toBe('created')
    expect(vm.hypervisor.vcpus.map((v: Json) => v.pcpu)).toEqual([1, 2])
  })

  it('vm list shows every VM with a header; --json has the documented keys', () => {
    const r = s.run('vm', 'list')
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toMatch(/^NAME +VMID +STATE +VCPUS +MEMORY +OWNER +UPTIME$/)
    expect(lines[1]).toMatch(new RegExp(`^demo +${demo.vmid} +created +2 +1M +hsmd +\\d+s$`))
    expect(lines[2]).toMatch(/^flagged +\d+ +created +2 +0 +hsmd +\d+s$/)
    expect(lines).toHaveLength(3)
    const list = s.json('vm', 'list')
    for (const vm of list)
      expect(Object.keys(vm)).toEqual([
        'name',
        'vmid',
        'state',
        'vcpus',
        'memory',
        'owner',
        'uptimeSeconds',
      ])
    expect(list[0]).toMatchObject({ name: 'demo', vmid: demo.vmid, memory: '0x100000' })
  })

  it('vm show prints one VM: state, vCPUs, segments, devices, eventfds, clients', () => {
    const r = s.run('vm', 'show', 'flagged')
    expect(r.code, r.stderr).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(
      /^flagged {2}vmid \d+ {2}created {2}2 vCPUs {2}0 RAM {2}up \d+[dhms](?:\d+[hms])?$/,
    )
    expect(lines[1]).toMatch(/^ {2}cpu affinity 0x6 {3}flags hide-mtrr {3}ioreq page 0x[0-9a-f]+$/)
    expect(lines[2]).toBe(
      `  console      ${join(s.dir, 'state', 'sim', 'consoles', 'flagged.log')}`,
    )
    for (const section of ['Memory segments', 'Pass-through devices', 'ioeventfds', 'irqfds'])
      expect(lines.slice(lines.indexOf(section), lines.indexOf(section) + 2)).toEqual([
        section,
        '  (none)',
      ])
    expect(lines).toContain('ioreq clients')
  })

  describe('bad input changes nothing', () => {
    let before: Json
    beforeAll(async () => {
      before = await s.snapshot()
    })

    it.each([
      {
        args: ['demo'],
        code: 4,
        message: "a VM named 'demo' already exists",
        hint: 'pick another name, or destroy it first',
      },
      // a count's range in decimal, not hex (issue 13 item 21)
      {
        args: ['x', '--vcpus', '100'],
        code: 2,
        message: '--vcpus: 100 is out of range',
        hint: 'expected 1 to 16',
      },
      // the CLI's names in every error, never an RPC param's (issue 13 item 21)
      { args: [''], code: 2, message: "NAME: '' is not a valid VM name" },
      {
        args: ['x', '--cpu-affinity', '0'],
        code: 2,
        message: '--cpu-affinity: 0 names no pCPU',
        hint: 'a bitmap of pCPUs',
      },
      {
        args: ['x', '--vcpus', '4'],
        code: 2,
        message: '--vcpus: 4 vCPUs is not possible here',
        hint: 'a User VM may use 3 pCPUs here (1, 2, 3)',
      },
      {
        args: ['x', '--vcpus', '2', '--cpu-affinity', '0x6'],
        code: 2,
        message: /cannot also be provided when using --vcpus/,
      },
      { args: ['x', '--memory', '0x12g'], code: 2, message: "--memory: '0x12g'" },
      {
        args: ['x', '--memory', '5000'],
        code: 2,
        message: '--memory: 5000 is not aligned to 0x1000',
      },
      { args: ['x', '--flag', 'bogus'], code: 2, message: "--flag: unknown VM flag 'bogus'" },
      { args: ['bad name'], code: 2, message: "NAME: 'bad name' is not a valid VM name" },
      // issue 13 item 17: the hypervisor keeps 15 bytes of a name (16 with the NUL, A.1), so
      // production-web-01 and production-web-02 would be one name to it: both refused up front
      ...['production-web-01', 'production-web-02'].map((name) => ({
        args: [name],
        code: 2,
        message: `NAME: '${name}' is 17 bytes long; a VM name has at most 15`,
        hint: 'the hypervisor keeps the first 15 bytes of a VM’s name (16 with the NUL)',
      })),
      { args: [], code: 2, message: 'NAME is required when not running interactively' },
      // pCPU 0 belongs to the Service VM: outside the configured affinity (A.2)
      {
        args: ['x', '--cpu-affinity', '0x1'],
        code: 1,
        message: 'CREATE_VM failed: EINVAL (Invalid argument)',
        hint: 'a CPU affinity outside the configured one',
      },
      // CREATE_VM succeeds, mapping the RAM does not: the VM is destroyed again
      {
        args: ['x', '--memory', '1T'],
        code: 1,
        message:
          "--memory: mmap failed: ENOMEM (Cannot allocate memory): the simulated Service-VM process (hsmd) could not map 1T for the guest's RAM",
        hint: /^Hint: ask for a smaller --memory: at most \d+[MG] can be mapped now$/,
      },
      // more than any address space: refused the same way, not as an EINVAL from mmap
      {
        args: ['x', '--memory', '16P'],
        code: 1,
        message: '--memory: mmap failed: ENOMEM (Cannot allocate memory)',
        hint: 'ask for a smaller --memory',
      },
    ])('vm create $args → exit $code', async ({ args, code, message, hint }) => {
      const r = s.run('vm', 'create', ...args)
      expectError(r, code, message, hint)
      expect(r.stderr).not.toMatch(/param '/)
      expect(await s.snapshot()).toEqual(before)
    })

    it('--memory more than hsmd can map: no VM is left behind (vm list), --json names the mmap', () => {
      const r = s.run('vm', 'create', 'big', '--memory', '1T', '--json')
      expect(r.code).toBe(1)
      expect(r.stdout).toBe('')
      expect(JSON.parse(r.stderr).error).toEqual({
        message: expect.stringMatching(/^--memory: mmap failed: ENOMEM /),
        exitCode: 1,
        code: 'ENOMEM',
        errno: 12,
        request: 'mmap',
        hint: expect.stringMatching(/^ask for a smaller --memory: at most \d+[MG]/),
      })
      expect(s.vms()).toEqual(before)
      const list = s.run('vm', 'list')
      expect(list.code, list.stderr).toBe(0)
      expect(list.stdout).not.toMatch(/^big /m)
      // nor a console log of a VM that never was (a destroyed VM's log stays, to be read)
      expect(existsSync(join(s.dir, 'state', 'sim', 'consoles', 'big.log'))).toBe(false)
    })

    it('an unknown VM is "not found" (exit 3) for every verb', async () => {
      for (const args of [
        ['show', 'nope'],
        ['start', 'nope'],
        ['pause', 'nope'],
        ['reset', 'nope', '--yes'],
        ['destroy', 'nope', '--yes'],
        ['regs', 'set', 'nope', '--rip', '0'],
        ['dump', 'nope'],
        ['console', 'nope'],
      ])
        expectError(s.run('vm', ...args), 3, "no VM named 'nope'", 'see `hsmctl vm list`')
      expect(await s.snapshot()).toEqual(before)
    })

    it('with --json the error is JSON on stderr, the HSM errno included', async () => {
      const missing = s.run('vm', 'start', 'nope', '--json')
      expect(missing.code).toBe(3)
      expect(missing.stdout).toBe('')
      expect(JSON.parse(missing.stderr)).toEqual({
        error: { message: "no VM named 'nope'", exitCode: 3, hint: 'see `hsmctl vm list`' },
      })
      const refused = s.run('vm', 'reset', 'demo', '--yes', '--json')
      expect(refused.code).toBe(1)
      expect(JSON.parse(refused.stderr)).toEqual({
        error: {
          message: 'RESET_VM failed: EPERM (Operation not permitted)',
          exitCode: 1,
          code: 'EPERM',
          errno: 1,
          request: 'RESET_VM',
          hint: "'demo' has not run since it was created or reset: it is in its reset state already (the hypervisor resets only paused VMs)",
        },
      })
      expect(await s.snapshot()).toEqual(before)
    })
  })
})

// issue 13 item 21: one set of defaults, shown as they are
describe('vm create with no flags', () => {
  it('takes every pCPU a User VM may use (A.2) and shows that affinity, not 0x0', () => {
    const r = s.run('vm', 'create', 'plain')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^plain {2}vmid \d+ {2}created {2}3 vCPUs {2}0 RAM /)
    expect(r.stdout).toMatch(/^ {2}cpu affinity 0xe {3}/m) // pCPUs 1, 2 and 3
    const vm = s.json('vm', 'show', 'plain')
    expect([vm.cpuAffinity, vm.hypervisor.vcpus.map((v: Json) => v.pcpu)]).toEqual([
      '0xe',
      [1, 2, 3],
    ])
    // the spec still says what was asked: nothing, so apply makes the same VM again
    expect(s.json('vm', 'dump', 'plain')).toEqual({ name: 'plain', state: 'created' })
    expect(s.run('vm', 'destroy', 'plain', '--yes').code).toBe(0)
  })
})

describe('VM names (the hypervisor’s 16-byte name field, A.1)', () => {
  it('two 15-byte names that differ only in their last byte are two VMs', () => {
    for (const name of ['production-web1', 'production-web2']) {
      const r = s.run('vm', 'create', name)
      expect(r.code, r.stderr).toBe(0)
    }
    expect(s.json('vm', 'show', 'production-web2').vmid).not.toBe(
      s.json('vm', 'show', 'production-web1').vmid,
    )
    for (const name of ['production-web1', 'production-web2'])
      expect(s.run('vm', 'destroy', name, '--yes').code).toBe(0)
  })
})

// issue 13 item 19: hsmd serializes the operations on a name; each client's answer is true
describe('ten clients racing on one VM name', () => {
  it('each create succeeds or finds the name taken, each destroy succeeds or finds none', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        hsmctlAsync(
          i % 2 ? ['vm', 'destroy', 'racer', '--yes'] : ['vm', 'create', 'racer', '--memory', '1M'],
          s.env,
        ).then((r) => ({ ...r, verb: i % 2 ? 'destroy' : 'create' })),
      ),
    )
    let created = 0
    let destroyed = 0
    for (const r of results) {
      if (r.verb === 'create' && r.code === 0) {
        created++
        expect(r.stdout).toMatch(
          /^racer {2}vmid \d+ {2}created {2}\d+ vCPUs? {2}1M RAM {2}up \d+[dhms](?:\d+[hms])?$/m,
        )
      } else if (r.verb === 'create') {
        expectError(r, 4, "a VM named 'racer' already exists")
      } else if (r.code === 0) {
        destroyed++
      } else {
        expectError(r, 3, "no VM named 'racer'")
      }
    }
    const left = s.vms().filter((v: Json) => v.name === 'racer').length
    expect(created - destroyed).toBe(left)
    if (left) expect(s.run('vm', 'destroy', 'racer', '--yes').code).toBe(0)
  })
})

describe('lifecycle: start, pause, reset, destroy (§2.5, A.3)', () => {
  it('reset of a created VM is refused: the hypervisor resets only paused VMs', async () => {
    const before = await s.snapshot('demo')
    expectRefusal(
      s.run('vm', 'reset', 'demo', '--yes'),
      'RESET_VM',
      'EPERM',
      "'demo' has not run since it was created or reset: it is in its reset state already",
    )
    expect(await s.snapshot('demo')).toEqual(before)
  })

  it('destructive verbs demand --yes off a terminal and change nothing without it', async () => {
    const before = await s.snapshot()
    expectError(
      s.run('vm', 'reset', 'demo'),
      2,
      '--yes is required when not running interactively',
      "Reset VM 'demo'?",
    )
    expectError(
      s.run('vm', 'destroy', 'demo'),
      2,
      '--yes is required when not running interactively',
      "Destroy VM 'demo'? Add --yes to go ahead.",
    )
    expect(await s.snapshot()).toEqual(before)
  })

  it('start runs the VM; starting it again is EPERM with a hint', async () => {
    const r = s.run('vm', 'start', 'demo')
    expect(r.code, r.stderr).toBe(0)
    // one line, as virsh says 'Domain started' (issue 13 item 21), not the vm show block
    expect(r.stdout).toMatch(
      /^demo {2}vmid \d+ {2}running {2}2 vCPUs {2}1M RAM {2}up \d+[dhms](?:\d+[hms])?\n$/,
    )
    expect(s.vm('demo').hypervisor.state).toBe('running')
    const before = await s.snapshot('demo')
    expectRefusal(s.run('vm', 'start', 'demo'), 'START_VM', 'EPERM', "'demo' is already running")
    expect(await s.snapshot('demo')).toEqual(before)
  })

  it('registers cannot be set while the VM runs (A.3)', async () => {
    const before = await s.snapshot('demo')
    expectRefusal(
      s.run('vm', 'regs', 'set', 'demo', '--rip', '0x1000'),
      'SET_VCPU_REGS',
      'EPERM',
      'pause the VM first',
    )
    expect(await s.snapshot('demo')).toEqual(before)
  })

  it('pause pauses; pausing a paused VM succeeds (A.3)', () => {
    const vm = s.json('vm', 'pause', 'demo')
    expect(vm).toMatchObject({ name: 'demo', state: 'paused' })
    expect(vm.hypervisor.state).toBe('paused')
    const again = s.run('vm', 'pause', 'demo')
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toMatch(
      /^demo {2}vmid \d+ {2}paused {2}[^\n]* up \d+[dhms](?:\d+[hms])?\n$/,
    )
  })

  it('a paused VM does not start again', () => {
    expectRefusal(s.run('vm', 'start', 'demo'), 'START_VM', 'EPERM', 'vm reset demo --yes')
    expect(s.vm('demo').state).toBe('paused')
  })

  describe('vm regs set (SET_VCPU_REGS, §7.9) on the paused VM', () => {
    it('sets a real-mode vCPU from flags', () => {
      const r = s.run('vm', 'regs', 'set', 'demo', '--vcpu', '0', '--rip', '0x1000')
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toBe('set registers of demo vCPU 0 (real-mode)\n')
      expect(s.vm('demo').regs).toEqual([{ vcpu: 0, preset: 'real-mode', rip: '0x1000' }])
    })

    it('--json returns the VM with the registers as asked', () => {
      const vm = s.json(
        ...['vm', 'regs', 'set', 'demo', '--vcpu', '1', '--preset', 'protected-mode'],
        ...['--rip', '0x100000', '--rsp', '0x8000'],
      )
      expect(vm.regs).toEqual([
        { vcpu: 0, preset: 'real-mode', rip: '0x1000' },
        { vcpu: 1, preset: 'protected-mode', rip: '0x100000', rsp: '0x8000' },
      ])
    })

    it('--file takes YAML and replaces that vCPU’s registers', () => {
      const file = join(s.dir, 'regs.yaml')
      writeFileSync(file, 'vcpu: 0\npreset: protected-mode\nrip: 0x200000\n')
      const r = s.run('vm', 'regs', 'set', 'demo', '--file', file)
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toBe('set registers of demo vCPU 0 (protected-mode)\n')
      expect(s.vm('demo').regs).toContainEqual({
        vcpu: 0,
        preset: 'protected-mode',
        rip: '0x200000',
      })
    })

    describe('bad input changes nothing', () => {
      let before: Json
      beforeAll(async () => {
        before = await s.snapshot('demo')
      })

      it.each([
        {
          args: ['--vcpu', '2'],
          code: 2,
          message: '--vcpu: vCPU 2 does not exist',
          hint: "'demo' has 2 vCPUs (0..1)",
        },
        { args: ['--vcpu', '16'], code: 2, message: '--vcpu: 16 is out of range' },
        { args: ['--rip', '0x12g'], code: 2, message: "--rip: '0x12g' is not a number" },
        {
          args: ['--preset', 'unreal-mode'],
          code: 2,
          message: /--preset=unreal-mode to be one of/,
        },
        {
          args: ['--preset', 'long-mode', '--rip', '0x2000'],
          code: 2,
          message: '--cr3: the long-mode preset needs the guest’s page tables',
          hint: 'give --cr3 GPA of a PML4',
        },
        {
          args: ['--file', '/nonexistent/regs.json'],
          code: 3,
          message: '--file: /nonexistent/regs.json does not exist',
        },
        {
          args: ['--file', 'BAD_KEY', '--vcpu', '0'],
          code: 2,
          message: 'bogus: unknown key',
          hint: 'known keys: vcpu, preset, rip, rsp, cr0, cr3, cr4',
        },
        // PG without PE is not a valid CR0: the hypervisor refuses (A.3)
        {
          args: ['--cr0', '0x80000000'],
          code: 1,
          message: 'SET_VCPU_REGS failed: EPERM',
          hint: 'valid CR0/CR4',
        },
      ])('$args → exit $code', async ({ args, code, message, hint }) => {
        const file = join(s.dir, 'bad-regs.json')
        writeFileSync(file, '{"vcpu": 0, "rip": "0x0", "bogus": 1}')
        const argv = args.map((a) => (a === 'BAD_KEY' ? file : a))
        expectError(s.run('vm', 'regs', 'set', 'demo', ...argv), code, message, hint)
        expect(await s.snapshot('demo')).toEqual(before)
      })
    })
  })

  it('reset takes a paused VM back to created; it starts again', () => {
    const r = s.run('vm', 'reset', 'demo', '--yes')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^demo {2}vmid \d+ {2}created {2}[^\n]* up \d+[dhms](?:\d+[hms])?\n$/)
    expect(s.vm('demo').hypervisor.state).toBe('created')
    expect(s.json('vm', 'start', 'demo')).toMatchObject({ state: 'running' })
  })

  it('reset of a running VM pauses it first (as acrn-dm does)', () => {
    expect(s.json('vm', 'reset', 'demo', '--yes')).toMatchObject({ state: 'created' })
    expect(s.json('vm', 'start', 'demo').hypervisor.state).toBe('running')
  })
})

describe('vm console (the UART at 0x3F8)', () => {
  it('prints what the guest wrote; --json gives the offset and data', () => {
    for (const c of 'Hi') {
      const w = s.run(
        'guest',
        'access',
        'demo',
        '--pio',
        '0x3f8',
        '--size',
        '1',
        '--write',
        String(c.charCodeAt(0)),
      )
      expect(w.code, w.stderr).toBe(0)
    }
    const r = s.run('vm', 'console', 'demo')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('Hi')
    const chunk = s.json('vm', 'console', 'demo')
    expect(chunk).toEqual({
      name: 'demo',
      path: join(s.dir, 'state', 'sim', 'consoles', 'demo.log'),
      offset: 2,
      data: 'Hi',
    })
  })

  it('--follow keeps printing new output until Ctrl-C', async () => {
    const child = spawn(process.execPath, [RUN_JS, 'vm', 'console', 'demo', '--follow'], {
      env: { ...process.env, NODE_ENV: undefined, NO_COLOR: '1', ...s.env },
    })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')))
    const seen = async (text: string) => {
      while (!out.includes(text)) await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await seen('Hi')
    expect(
      s.run('guest', 'access', 'demo', '--pio', '0x3f8', '--size', '1', '--write', '0x21').code,
    ).toBe(0)
    await seen('Hi!')
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
    child.kill('SIGINT')
    expect(await exited).toBe(0)
    expect(out).toBe('Hi!')
  })
})

describe('vm destroy', () => {
  it('destroys a running VM (pausing it first) and forgets it', () => {
    const vmid = s.vm('demo').vmid
    const r = s.run('vm', 'destroy', 'demo', '--yes')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe(`destroyed demo (vmid ${vmid})\n`)
    expect(s.vms().map((v: Json) => v.name)).toEqual(['flagged'])
    expectError(s.run('vm', 'show', 'demo'), 3, "no VM named 'demo'")
  })

  it('destroys a VM that never ran (A.3: PAUSE takes a created VM to paused)', () => {
    const vmid = s.vm('flagged').vmid
    expect(s.json('vm', 'destroy', 'flagged', '--yes')).toEqual({ name: 'flagged', vmid })
    expect(s.vms()).toEqual([])
    expect(s.run('vm', 'list').stdout).toBe('No VMs. Create one with `hsmctl vm create NAME`.\n')
  })

  it('the name can be used again, and the hypervisor slot too', () => {
    const vm = s.json('vm', 'create', 'demo')
    expect(vm).toMatchObject({ name: 'demo', state: 'created', vcpus: 3 })
    expect(s.json('vm', 'destroy', 'demo', '--yes').name).toBe('demo')
  })
})
