// `hsmctl vm dump` and `hsmctl vm apply -f` as a user runs them: one file describes a
// whole VM and round-trips; a bad file, or a step the hypervisor refuses, creates nothing.
// Also: the first command of a session starts the daemon and says so (issue, point 1).

import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { beforeAll, describe, expect, it } from 'vitest'
import { MAX_LINE } from '../../src/core/daemon/protocol.js'
import { expectError, hsmdSession, type Json } from '../support/hsmd-session.js'

const s = hsmdSession('spec', { start: false })
const payload = join(s.dir, 'guest.bin')
const file = (name: string, text: string) => {
  const path = join(s.dir, name)
  writeFileSync(path, text)
  return path
}

it('the first command starts the daemon and says so on stderr, once', () => {
  const first = s.run('vm', 'list', '--json')
  expect(first.code, first.stderr).toBe(0)
  expect(JSON.parse(first.stdout)).toEqual([])
  expect(first.stderr).toBe(
    `hsmctl: started the hsmd daemon (pid ${s.json('daemon', 'status').pid}, ${join(s.dir, 'run', 'hsmd-sim.sock')}); stop it with \`hsmctl daemon stop\`\n`,
  )
  const second = s.run('vm', 'list')
  expect(second.stderr).toBe('')
  expect(second.stdout).toBe('No VMs. Create one with `hsmctl vm create NAME`.\n')
})

/** What `vm dump src` must print: everything the commands below asked for. */
const SRC_SPEC = {
  name: 'src',
  vcpus: 2,
  flags: ['hide-mtrr'],
  memory: [
    { gpa: '0x0', size: '1M', type: 'ram', access: 'rwx', file: payload },
    { gpa: '0xdf000000', size: '64K', type: 'mmio', access: 'rw', hpa: '0xdf000000' },
  ],
  regs: [{ vcpu: 1, preset: 'protected-mode', rip: '0x100000' }],
  ptdevs: [{ phys: '00:1f.6', virt: '00:05.0' }],
  // IDs at their full four digits, so that a dump diffs cleanly against `vm show --json`
  vdevs: [{ vendor: '0x1af4', device: '0x0110', slot: '0x20' }],
  ioeventfds: [
    { addr: '0xc050', len: 2, pio: true, datamatch: '0x1' },
    { addr: '0xfe000000', len: 4 },
  ],
  irqfds: [{ msiAddr: '0xfee01000', msiData: '0x32' }],
  state: 'paused',
}

describe('vm dump', () => {
  beforeAll(() => {
    writeFileSync(payload, 'HSM!')
    for (const args of [
      ['vm', 'create', 'src', '--vcpus', '2', '--flag', 'hide-mtrr'],
      ['memseg', 'set', 'src', '--gpa', '0', '--size', '1M', '--file', payload],
      [
        ...['memseg', 'set', 'src', '--type', 'mmio', '--gpa', '0xdf000000'],
        ...['--hpa', '0xdf000000', '--size', '64K', '--access', 'rw'],
      ],
      [
        'vm',
        'regs',
        'set',
        'src',
        '--vcpu',
        '1',
        '--preset',
        'protected-mode',
        '--rip',
        '0x100000',
      ],
      ['ptdev', 'assign', 'src', '--phys', '00:1f.6', '--virt', '00:05.0'],
      ['vdev', 'create', 'src', '--vendor', '0x1af4', '--device', '0x110', '--slot', '0x20'],
      ['ioeventfd', 'add', 'src', '--pio', '--addr', '0xc050', '--len', '2', '--datamatch', '1'],
      ['ioeventfd', 'add', 'src', '--addr', '0xfe000000', '--len', '4'],
      ['irqfd', 'add', 'src', '--msi-addr', '0xfee01000', '--msi-data', '0x32'],
      ['vm', 'start', 'src'],
      ['vm', 'pause', 'src'],
    ]) {
      const r = s.run(...args)
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0)
    }
  })

  it('prints the VM as a YAML spec', () => {
    const r = s.run('vm', 'dump', 'src')
    expect(r.code, r.stderr).toBe(0)
    expect(parse(r.stdout)).toEqual(SRC_SPEC)
    expect(r.stdout).toMatch(/^name: src\nvcpus: 2\n/)
  })

  it('--json prints the same spec as JSON', () => {
    expect(s.json('vm', 'dump', 'src')).toEqual(SRC_SPEC)
  })

  it('-o writes it to a file and says so on stderr', () => {
    const out = join(s.dir, 'src.yaml')
    const r = s.run('vm', 'dump', 'src', '-o', out)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('')
    expect(r.stderr).toBe(`wrote ${out}\n`)
    expect(readFileSync(out, 'utf8')).toBe(s.run('vm', 'dump', 'src').stdout)
  })

  it('an unknown VM is exit 3', () => {
    expectError(s.run('vm', 'dump', 'nope'), 3, "no VM named 'nope'")
  })
})

describe('vm apply -f', () => {
  const renamed = (name: string) =>
    file(`${name}.yaml`, s.run('vm', 'dump', 'src').stdout.replace(/^name: src$/m, `name: ${name}`))

  it('a step the hypervisor refuses (the device is src’s) creates nothing', async () => {
    const before = await s.snapshot()
    expectError(
      s.run('vm', 'apply', '-f', renamed('copy')),
      1,
      'ASSIGN_PCIDEV failed: ENODEV (No such device)',
      'another VM has it',
    )
    expect(await s.snapshot()).toEqual(before)
    expect(s.json('ptdev', 'list')).toEqual([
      { vm: 'src', phys: '00:1f.6', virt: '00:05.0', quirk: false },
    ])
  })

  it('round trip: the dump applied under a new name dumps the same, but for the name', () => {
    const spec = renamed('copy')
    expect(s.run('vm', 'destroy', 'src', '--yes').code).toBe(0)
    const r = s.run('vm', 'apply', '-f', spec)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^copy {2}vmid \d+ {2}paused {2}2 vCPUs {2}1M RAM /)
    expect(s.json('vm', 'dump', 'copy')).toEqual({ ...SRC_SPEC, name: 'copy' })
    const vm = s.vm('copy')
    // vm show --json writes PCI functions and IDs as the spec does
    expect(vm.ptdevs).toEqual([{ ...SRC_SPEC.ptdevs[0], quirk: false }])
    expect(vm.vdevs).toEqual([{ ...SRC_SPEC.vdevs[0], legacyId: 0, ioAddr: [], ioSize: [] }])
    expect(vm.hypervisor.state).toBe('paused')
    expect(vm.hypervisor.ept).toContainEqual(
      expect.objectContaining({ gpa: '0xdf000000', size: '0x10000', attr: 0x103 }),
    )
  })

  it('vm dump --json applies back exactly: BDFs and IDs as text are what apply reads', () => {
    const dumped = s.json('vm', 'dump', 'copy')
    expect(dumped.ptdevs).toEqual([{ phys: '00:1f.6', virt: '00:05.0' }])
    const spec = file('copy.json', JSON.stringify(dumped))
    expect(s.run('vm', 'destroy', 'copy', '--yes').code).toBe(0)
    const vm = s.json('vm', 'apply', '-f', spec)
    expect(vm.ptdevs).toEqual([{ phys: '00:1f.6', virt: '00:05.0', quirk: false }])
    expect(vm.vdevs).toMatchObject([{ vendor: '0x1af4', device: '0x0110', slot: '0x20' }])
    expect(s.json('vm', 'dump', 'copy')).toEqual(dumped)
  })

  it('--json takes a JSON spec and prints the VM', () => {
    const spec = file(
      'small.json',
      JSON.stringify({
        name: 'small',
        vcpus: 1,
        memory: [{ gpa: 0, size: '64K' }],
        state: 'created',
      }),
    )
    const vm = s.json('vm', 'apply', '-f', spec)
    expect(vm).toMatchObject({
      name: 'small',
      state: 'created',
      vcpus: 1,
      memory: '0x10000',
      memsegs: [{ gpa: '0x0', size: '0x10000', type: 'ram', access: 7 }],
    })
    expect(s.json('vm', 'dump', 'small')).toEqual({
      name: 'small',
      vcpus: 1,
      memory: [{ gpa: '0x0', size: '64K', type: 'ram', access: 'rwx' }],
      state: 'created',
    })
  })

  describe('a bad spec is a usage error and creates nothing', () => {
    let before: Json
    beforeAll(async () => {
      before = await s.snapshot()
    })

    it.each([
      {
        name: 'unknown key',
        text: 'name: bad\nbogus: 1\n',
        code: 2,
        message: 'unknown-key.yaml: $.bogus: unknown key',
        hint: 'known keys: name, vcpus, cpuAffinity, flags, memory',
      },
      {
        name: 'bad number',
        text: 'name: bad\nmemory:\n  - gpa: 0x12g\n    size: 1M\n',
        code: 2,
        message: "bad-number.yaml: memory[0].gpa: '0x12g' is not a number",
      },
      {
        name: 'misaligned size',
        text: 'name: bad\nmemory:\n  - gpa: 0\n    size: 5000\n',
        code: 2,
        message: 'memory[0].size: 5000 is not aligned to 0x1000',
      },
      {
        name: 'too many vcpus',
        text: 'name: bad\nvcpus: 99\n',
        code: 2,
        message: 'vcpus: 99 is out of range',
      },
      {
        name: 'bad len',
        text: 'name: bad\nioeventfds:\n  - addr: 0xfe000000\n    len: 3\n',
        code: 2,
        message: 'ioeventfds[0].len: 3 is not 1, 2, 4 or 8',
      },
      {
        name: 'bad state',
        text: 'name: bad\nstate: frozen\n',
        code: 2,
        message: "state: 'frozen' is not created, running or paused",
      },
      {
        name: 'no name',
        text: 'vcpus: 1\n',
        code: 2,
        message: 'no-name.yaml: name:',
        hint: 'use up to 15 letters, digits',
      },
      {
        name: 'long name',
        text: 'name: production-web-01\nvcpus: 1\n',
        code: 2,
        message:
          "long-name.yaml: name: 'production-web-01' is 17 bytes long; a VM name has at most 15",
        hint: 'the hypervisor keeps the first 15 bytes',
      },
      {
        name: 'not yaml',
        text: 'name: bad\n  x: [\n',
        code: 2,
        message: 'not-yaml.yaml: not valid YAML or JSON',
      },
      // found only once the VM exists: it is destroyed again
      {
        name: 'missing vcpu',
        text: 'name: bad\nvcpus: 2\nregs:\n  - vcpu: 3\n',
        code: 2,
        message: '--vcpu: vCPU 3 does not exist',
      },
      {
        name: 'missing payload',
        text: 'name: bad\nmemory:\n  - gpa: 0\n    size: 4K\n    file: nothing-here.bin\n',
        code: 3,
        message: `missing-payload.yaml: memory[0].file: ${join(s.dir, 'nothing-here.bin')} does not exist`,
      },
      {
        name: 'taken name',
        text: 'name: copy\n',
        code: 4,
        message: "a VM named 'copy' already exists",
      },
    ])('$name → exit $code', async ({ name, text, code, message, hint }) => {
      const spec = file(`${name.replaceAll(' ', '-')}.yaml`, text)
      expectError(s.run('vm', 'apply', '-f', spec), code, message, hint)
      expect(await s.snapshot()).toEqual(before)
    })

    // issue 13 item 18: a spec over hsmd's request limit is "too large" (exit 2), never
    // "the connection to hsmd closed" (exit 5)
    it('a spec file over 1 MiB is refused as too large before it is parsed (exit 2)', async () => {
      const text = `name: huge\n  x: [${'#'.repeat(MAX_LINE)}\n` // not even YAML
      const spec = file('huge.yaml', text)
      const size = text.length
      expectError(
        s.run('vm', 'apply', '-f', spec),
        2,
        `--file: ${spec} is ${size} bytes; a spec file is at most ${MAX_LINE} (1 MiB)`,
        'hsmd takes requests of at most 1 MiB',
      )
      expect(await s.snapshot()).toEqual(before)
    })

    it('a spec whose request is over hsmd’s limit is too large (exit 2), the daemon unharmed', async () => {
      // a YAML escape of 4 bytes is a JSON escape of 6: the file is under 1 MiB, the request over
      const spec = file(
        'escapes.yaml',
        `name: escapes\nmemory:\n  - gpa: 0\n    size: 4K\n    file: "${'\\x01'.repeat(200_000)}"\n`,
      )
      expectError(
        s.run('vm', 'apply', '-f', spec),
        2,
        /^Error: the request to hsmd \(vm\.apply\) is \d+ bytes; hsmd takes at most 1048576 \(1 MiB\)$/m,
        'hsmd reads requests of at most 1 MiB',
      )
      expect(await s.snapshot()).toEqual(before)
    })

    it('a missing spec file → exit 3, as the README says', async () => {
      expectError(
        s.run('vm', 'apply', '-f', join(s.dir, 'nothing.yaml')),
        3,
        `--file: ${join(s.dir, 'nothing.yaml')} does not exist`,
        'check the path',
      )
      expectError(s.run('vm', 'apply'), 2, /nothing to apply: give NAME, --file or --all/)
      expect(await s.snapshot()).toEqual(before)
    })
  })
})
