// `hsmctl memseg set|unset|list` as a user runs them: RAM and MMIO segments (§3), what the
// hypervisor's EPT ends up with, the kernel's rules (RAM cannot be unset, §3.5; at least
// 4 KiB of RAM, §3.4) and bad input, which changes nothing.

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { HINTED } from '../../src/core/vmm/hints.js'
import { expectError, expectRefusal, hsmdSession, type Json } from '../support/hsmd-session.js'

const s = hsmdSession('memseg')
const payload = join(s.dir, 'payload.bin')
const bigPayload = join(s.dir, 'big.bin')

beforeAll(() => {
  writeFileSync(payload, 'HSM!')
  writeFileSync(bigPayload, new Uint8Array(8192))
  expect(s.run('vm', 'create', 'mem', '--vcpus', '1').code).toBe(0)
})

const ept = (gpa: string): Json => s.vm('mem').hypervisor.ept.find((e: Json) => e.gpa === gpa)

// attr as the hypervisor gets it (§3.1): memory type | access
const WB = 0x40
const UC = 0x100

describe('memseg set (SET_MEMSEG, §3.3, §3.4)', () => {
  it('maps RAM: write-back whatever was asked (§3.4 B)', () => {
    const r = s.run('memseg', 'set', 'mem', '--gpa', '0', '--size', '1M')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('mapped RAM 0x0-0xfffff (1M) into mem\n')
    const vm = s.vm('mem')
    expect(vm.memory).toBe('0x100000')
    expect(vm.memsegs).toEqual([
      { gpa: '0x0', size: '0x100000', type: 'ram', access: 7, vma: expect.stringMatching(/^0x/) },
    ])
    expect(ept('0x0')).toMatchObject({ size: '0x100000', attr: WB | 7 })
  })

  it('--json: RAM with a payload and read/execute access', () => {
    const seg = s.json(
      ...['memseg', 'set', 'mem', '--gpa', '0x100000', '--size', '4K'],
      ...['--access', 'rx', '--file', payload],
    )
    expect(seg).toEqual({
      gpa: '0x100000',
      size: '0x1000',
      type: 'ram',
      access: 5,
      file: payload,
      vma: expect.stringMatching(/^0x[0-9a-f]+$/),
    })
    expect(ept('0x100000')).toMatchObject({ size: '0x1000', attr: WB | 5 })
  })

  it('maps MMIO: always uncached (§3.3)', () => {
    const r = s.run(
      ...['memseg', 'set', 'mem', '--type', 'mmio'],
      ...['--gpa', '0xdf000000', '--hpa', '0xdf000000', '--size', '1M', '--access', 'rw'],
    )
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('mapped MMIO 0xdf000000-0xdf0fffff (1M) into mem\n')
    expect(ept('0xdf000000')).toEqual({
      gpa: '0xdf000000',
      hpa: '0xdf000000',
      size: '0x100000',
      attr: UC | 3,
    })
    expect(s.vm('mem').memory).toBe('0x101000') // RAM only
  })

  it('--json: a second MMIO segment', () => {
    expect(
      s.json(
        ...['memseg', 'set', 'mem', '--type', 'mmio'],
        ...['--gpa', '0xd0000000', '--hpa', '0xd0000000', '--size', '64K'],
      ),
    ).toEqual({ gpa: '0xd0000000', size: '0x10000', type: 'mmio', access: 7, hpa: '0xd0000000' })
  })
})

describe('memseg list: the guest address map', () => {
  beforeAll(() => {
    expect(s.run('ioeventfd', 'add', 'mem', '--addr', '0xfe000000', '--len', '4').code).toBe(0)
    expect(s.run('ioeventfd', 'add', 'mem', '--pio', '--addr', '0xc050', '--len', '2').code).toBe(0)
  })

  it('shows RAM, MMIO and ioeventfd ranges in address order, and the I/O space', () => {
    const r = s.run('memseg', 'list', 'mem')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.trimEnd().split('\n')).toEqual([
      'address-space: mem memory',
      '                 0x0-0xfffff            ram  (1M, rwx)',
      '            0x100000-0x100fff           ram  (4K, rx)',
      '          0xd0000000-0xd000ffff         mmio (64K, rwx) -> hpa 0xd0000000',
      '          0xdf000000-0xdf0fffff         mmio (1M, rw) -> hpa 0xdf000000',
      '          0xfe000000-0xfe000003         ioeventfd #1',
      'address-space: mem I/O',
      '               0x3f8-0x3ff              uart 16550 (hsmd)',
      '              0xc050-0xc051             ioeventfd #2',
    ])
  })

  it('--json has the segments, pass-through devices and ioeventfds', () => {
    const map = s.json('memseg', 'list', 'mem')
    expect(Object.keys(map)).toEqual(['memsegs', 'ptdevBars', 'ioeventfds'])
    expect(map.memsegs).toEqual(s.vm('mem').memsegs)
    expect(map.memsegs.map((m: Json) => [m.gpa, m.type])).toEqual([
      ['0x0', 'ram'],
      ['0x100000', 'ram'],
      ['0xdf000000', 'mmio'],
      ['0xd0000000', 'mmio'],
    ])
    expect(map.ptdevBars).toEqual([])
    expect(map.ioeventfds).toEqual([
      { addr: '0xfe000000', len: 4, pio: false, id: 1, signals: '0x0' },
      { addr: '0xc050', len: 2, pio: true, id: 2, signals: '0x0' },
    ])
  })
})

describe('memseg list: pass-through BARs', () => {
  it('--json names the device by its BDFs, as the map prints them', () => {
    expect(s.run('vm', 'create', 'bars').code).toBe(0)
    const r = s.run('ptdev', 'assign', 'bars', '--phys', '00:16.0', '--virt', '00:06.0')
    expect(r.code, r.stderr).toBe(0)
    expect(s.run('memseg', 'list', 'bars').stdout).toContain(
      'pass-through 00:16.0 (guest 00:06.0) BAR0 (4K) -> hpa 0xa1130000',
    )
    expect(s.json('memseg', 'list', 'bars').ptdevBars).toEqual([
      {
        phys: '00:16.0',
        virt: '00:06.0',
        index: 0,
        kind: 'mem64',
        gpa: '0xa1130000',
        hpa: '0xa1130000',
        size: '0x1000',
      },
    ])
    expect(s.run('vm', 'destroy', 'bars', '--yes').code).toBe(0)
  })
})

describe('bad input changes nothing', () => {
  let before: Json
  beforeAll(async () => {
    before = await s.snapshot('mem')
  })

  const ram = ['memseg', 'set', 'mem', '--gpa', '0x200000']
  const mmio = ['memseg', 'set', 'mem', '--type', 'mmio', '--gpa', '0xc0000000']
  it.each([
    {
      args: ['memseg', 'set', 'mem', '--gpa', '0x12g', '--size', '4K'],
      code: 2,
      message: "--gpa: '0x12g' is not a number",
      hint: 'write it in decimal',
    },
    {
      args: [...ram, '--size', '5000'],
      code: 2,
      message: '--size: 5000 is not aligned to 0x1000',
      hint: 'round it to a multiple of 4096',
    },
    {
      args: ['memseg', 'set', 'mem', '--gpa', '0x200800', '--size', '4K'],
      code: 2,
      message: '--gpa: 0x200800 is not aligned to 0x1000',
    },
    {
      args: [...ram, '--size', '0x10M'],
      code: 2,
      message: "--size: '0x10M': a suffix needs a decimal number",
      hint: 'write 16M or 0x1000000',
    },
    { args: [...ram, '--size', 'lots'], code: 2, message: "--size: 'lots' is not a size" },
    // less than a page of RAM reaches the kernel, which refuses it (§3.4 step 1)
    {
      args: [...ram, '--size', '0'],
      code: 1,
      message: 'SET_MEMSEG failed: EINVAL (Invalid argument)',
      hint: 'RAM segments need at least 4 KiB;',
    },
    {
      args: [...ram, '--size', '4K', '--type', 'rom'],
      code: 2,
      message: 'Expected --type=rom to be one of: ram, mmio',
    },
    {
      args: [...ram, '--size', '4K', '--access', 'rwz'],
      code: 2,
      message: "--access: 'rwz' is not an access mode",
    },
    {
      args: [...mmio, '--size', '4K'],
      code: 2,
      message: '--hpa: an MMIO segment needs --hpa',
    },
    {
      args: [...ram, '--size', '4K', '--hpa', '0xc0000000'],
      code: 2,
      message: '--hpa: --hpa is for MMIO segments',
      hint: 'add --type mmio',
    },
    // the hypervisor's own memory is not a Service-VM range (A.3)
    {
      args: [...mmio, '--size', '4K', '--hpa', '0x70000000'],
      code: 1,
      message: 'SET_MEMSEG failed: EINVAL',
      hint: 'for MMIO, a host range the Service VM may map',
    },
    // beyond the guest's 39-bit physical address space
    {
      args: [
        ...['memseg', 'set', 'mem', '--type', 'mmio', '--gpa', '0x8000000000'],
        ...['--hpa', '0xc0000000', '--size', '4K'],
      ],
      code: 1,
      message: 'SET_MEMSEG failed: EINVAL',
    },
    {
      args: [...ram, '--size', '4K', '--file', join('/nonexistent', 'payload.bin')],
      code: 3,
      message: '--file: /nonexistent/payload.bin does not exist',
    },
    {
      args: [...ram, '--size', '4K', '--file', bigPayload],
      code: 2,
      message: `--file: ${bigPayload} is 8192 bytes; a payload for this segment is at most 4096`,
      hint: 'a payload is loaded at the start of its RAM segment and must fit in it',
    },
    {
      args: [...mmio, '--size', '4K', '--hpa', '0xc0000000', '--file', payload],
      code: 2,
      message: '--file: only RAM segments load a payload',
    },
    {
      args: ['memseg', 'set', 'mem', '--size', '4K'],
      code: 2,
      message: /Missing required flag gpa/,
    },
    {
      args: ['memseg', 'set', 'nope', '--gpa', '0', '--size', '4K'],
      code: 3,
      message: "no VM named 'nope'",
    },
    // §3.5: only MMIO can be unset; RAM stays until the VM is destroyed
    {
      args: ['memseg', 'unset', 'mem', '--type', 'ram', '--gpa', '0', '--size', '1M', '--yes'],
      code: 1,
      message: 'UNSET_MEMSEG failed: EINVAL (Invalid argument)',
      hint: 'only MMIO segments can be unset; RAM stays mapped until the VM is destroyed.',
    },
    // A.3: DEL needs the range mapped
    {
      args: ['memseg', 'unset', 'mem', '--gpa', '0xc0000000', '--size', '4K', '--yes'],
      code: 1,
      message: 'UNSET_MEMSEG failed: EINVAL (Invalid argument)',
      hint: 'An MMIO range must be mapped',
    },
    {
      args: ['memseg', 'unset', 'mem', '--gpa', '0xdf000000', '--size', '1M'],
      code: 2,
      message: '--yes is required when not running interactively',
      hint: "Unmap MMIO at 0xdf000000 from 'mem'? Add --yes to go ahead.",
    },
    {
      args: ['memseg', 'unset', 'nope', '--gpa', '0xdf000000', '--size', '1M', '--yes'],
      code: 3,
      message: "no VM named 'nope'",
    },
    { args: ['memseg', 'list', 'nope'], code: 3, message: "no VM named 'nope'" },
    // more RAM than hsmd's process can map: the mmap fails before any SET_MEMSEG
    {
      args: [...ram, '--size', '1T'],
      code: 1,
      message:
        "--size: mmap failed: ENOMEM (Cannot allocate memory): the simulated Service-VM process (hsmd) could not map 1T for the guest's RAM",
      hint: /^Hint: ask for a smaller --size: at most \d+[MG] can be mapped now$/,
    },
  ])('$args → exit $code', async ({ args, code, message, hint }) => {
    expectError(s.run(...args), code, message, hint)
    expect(await s.snapshot('mem')).toEqual(before)
  })

  it('with --json, a refusal is JSON on stderr', async () => {
    const r = s.run(
      ...['memseg', 'unset', 'mem', '--type', 'ram', '--gpa', '0', '--size', '1M'],
      ...['--yes', '--json'],
    )
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('')
    expect(JSON.parse(r.stderr).error).toMatchObject({
      exitCode: 1,
      code: 'EINVAL',
      errno: 22,
      request: 'UNSET_MEMSEG',
      hint: expect.stringContaining('RAM stays mapped until the VM is destroyed'),
    })
    expect(await s.snapshot('mem')).toEqual(before)
  })
})

describe('every memseg hint can be met (§3.4, §3.5, Appendix A.3)', () => {
  // each one is triggered through the CLI in this file: EINVAL by the bad input above
  // (too little RAM, a host range the Service VM may not map, unsetting RAM or an
  // unmapped range), ENOMEM by the 257th RAM segment below
  it('the hinted errnos are EINVAL and ENOMEM for SET_MEMSEG, EINVAL for UNSET_MEMSEG', () => {
    expect(HINTED.filter((key) => key.includes('MEMSEG:'))).toEqual([
      'SET_MEMSEG:EINVAL',
      'SET_MEMSEG:ENOMEM',
      'UNSET_MEMSEG:EINVAL',
    ])
  })

  it('SET_MEMSEG ENOMEM: the 257th RAM mapping of a VM; the VM is not created (§3.4 B step 4)', async () => {
    const before = await s.snapshot()
    const memory = Array.from({ length: 257 }, (_, i) => ({
      gpa: `0x${(i * 0x2000).toString(16)}`,
      size: '4K',
    }))
    const spec = join(s.dir, 'many.json')
    writeFileSync(spec, JSON.stringify({ name: 'many', memory }))
    expectRefusal(
      s.run('vm', 'apply', '-f', spec),
      'SET_MEMSEG',
      'ENOMEM',
      'a VM has at most 256 RAM mappings over its whole life;',
    )
    expect(await s.snapshot()).toEqual(before)
  })
})

describe('memseg unset (UNSET_MEMSEG, §3.5)', () => {
  it('unmaps an MMIO segment: gone from the VM and the EPT', () => {
    const r = s.run('memseg', 'unset', 'mem', '--gpa', '0xdf000000', '--size', '1M', '--yes')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('unmapped 0xdf000000 from mem\n')
    expect(ept('0xdf000000')).toBeUndefined()
    expect(s.vm('mem').memsegs.map((m: Json) => m.gpa)).toEqual(['0x0', '0x100000', '0xd0000000'])
  })

  it('--json returns the segment that was unmapped; unmapping it again is refused', () => {
    expect(
      s.json('memseg', 'unset', 'mem', '--gpa', '0xd0000000', '--size', '64K', '--yes'),
    ).toEqual({ gpa: '0xd0000000', size: '0x10000', type: 'mmio', access: 7, hpa: '0xd0000000' })
    expect(ept('0xd0000000')).toBeUndefined()
    expectRefusal(
      s.run('memseg', 'unset', 'mem', '--gpa', '0xd0000000', '--size', '64K', '--yes'),
      'UNSET_MEMSEG',
      'EINVAL',
    )
  })
})

describe('what the guest sees', () => {
  beforeAll(() => {
    expect(s.run('vm', 'start', 'mem').code).toBe(0)
  })

  const access = (...args: string[]) => s.json('guest', 'access', 'mem', ...args).result
  /** I/O requests hsmd (the default client) has handled: accesses that trapped. */
  const handled = (): number => s.vm('mem').clients[0].handled

  it('its payload at the start of the segment', () => {
    expect(access('--mmio', '0x100000', '--read', '--size', '4')).toBe('0x214d5348') // "HSM!"
  })

  it('RAM through the EPT: writes land, and nothing traps', () => {
    const requests = handled()
    access('--mmio', '0x1000', '--write', '0xdeadbeef', '--size', '4')
    expect(access('--mmio', '0x1000', '--read', '--size', '4')).toBe('0xdeadbeef')
    expect(handled()).toBe(requests)
  })

  it('a write to read-only RAM traps to hsmd and changes nothing', () => {
    const requests = handled()
    access('--mmio', '0x100000', '--write', '0', '--size', '4')
    expect(handled()).toBe(requests + 1)
    expect(access('--mmio', '0x100000', '--read', '--size', '4')).toBe('0x214d5348')
  })

  it('an unset MMIO range traps to hsmd, which reads all-ones (as acrn-dm answers)', () => {
    const requests = handled()
    expect(access('--mmio', '0xdf000000', '--read', '--size', '4')).toBe('0xffffffff')
    expect(handled()).toBe(requests + 1)
  })
})
