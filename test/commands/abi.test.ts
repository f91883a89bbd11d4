// `hsmctl abi` as a user runs it: the built bin/run.js (npm test builds first).

import { describe, expect, it } from 'vitest'
import { hsmctl } from '../support/cli.js'

describe('hsmctl abi --json', () => {
  const r = hsmctl(['abi', '--json'])
  const json = JSON.parse(r.stdout)

  it('prints exactly {ioctls, structs} with the documented member shapes', () => {
    expect(r.code).toBe(0)
    expect(Object.keys(json)).toEqual(['ioctls', 'structs'])
    for (const i of json.ioctls)
      expect(Object.keys(i)).toEqual(['name', 'request', 'nr', 'dir', 'size', 'arg'])
    for (const s of json.structs) {
      expect(Object.keys(s)).toEqual(['name', 'size', 'align', 'fields'])
      for (const f of s.fields) expect(Object.keys(f)).toEqual(['name', 'offset', 'size', 'type'])
    }
  })

  it('describes CREATE_VM and acrn_vm_creation as the issue shows', () => {
    expect(json.ioctls[0]).toEqual({
      name: 'CREATE_VM',
      request: '0xc030a210',
      nr: 16,
      dir: 'rw',
      size: 48,
      arg: 'acrn_vm_creation',
    })
    const vmc = json.structs.find((s: { name: string }) => s.name === 'acrn_vm_creation')
    expect(vmc).toMatchObject({ size: 48, align: 8 })
    expect(vmc.fields[0]).toEqual({ name: 'vmid', offset: 0, size: 2, type: 'u16' })
  })

  it('lists 27 ioctls and the 22 UAPI structs plus the internal ones', () => {
    expect(json.ioctls).toHaveLength(27)
    const names = json.structs.map((s: { name: string }) => s.name)
    expect(names).toHaveLength(27)
    expect(names).toEqual(
      expect.arrayContaining([
        'vm_memory_region_op',
        'vm_memory_region_batch',
        'acrn_irqline_ops',
        'acrn_intr_monitor',
      ]),
    )
  })

  it('lists nested members and both names of an anonymous union', () => {
    const fields = (name: string) =>
      json.structs.find((s: { name: string }) => s.name === name).fields as {
        name: string
        offset: number
      }[]
    const offset = (struct: string, member: string) =>
      fields(struct).find((f) => f.name === member)?.offset
    expect(offset('acrn_io_request', 'reqs')).toBe(64)
    expect(offset('acrn_io_request', 'reqs.pci_request.reg')).toBe(64 + 40)
    expect(offset('acrn_ptdev_irq', 'intx')).toBe(8)
    expect(offset('acrn_mmiodev', 'res')).toBe(8)
    expect(offset('acrn_irqfd', 'msi')).toBe(8)
    expect(offset('acrn_cstate_data', 'cx_reg')).toBe(0)
    expect(offset('acrn_vcpu_regs', 'vcpu_regs')).toBe(8)
    expect(offset('acrn_vm_memmap', 'service_vm_pa')).toBe(16)
    expect(offset('acrn_vm_memmap', 'vma_base')).toBe(16)
  })
})

describe('hsmctl abi (text)', () => {
  it('shows the ioctl table with request numbers', () => {
    const r = hsmctl(['abi'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^IOCTL\s+NR\s+DIR\s+SIZE\s+ARGUMENT\s+REQUEST$/m)
    expect(r.stdout).toMatch(/^SET_IRQLINE\s+0x25\s+W\s+8\s+u64 \(value\)\s+0x4008a225$/m)
    expect(r.stdout.trim().split('\n')).toHaveLength(28)
  })

  it('lays out a struct like pahole, holes and padding included', () => {
    const r = hsmctl(['abi', 'pcidev'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^ASSIGN_PCIDEV\s+0x55/m)
    expect(r.stdout).toMatch(/struct acrn_pcidev \{/)
    expect(r.stdout).toMatch(/u8\s+intr_pin;\s+\/\*\s+9\s+1 \*\//)
    expect(r.stdout).toMatch(/XXX 2 bytes hole/)
    expect(r.stdout).toMatch(/size: 36, cachelines: 1, members: 6, align: 4/)
  })

  it('lays out the struct of an ioctl named instead', () => {
    const r = hsmctl(['abi', 'set_memseg', '--json'])
    const json = JSON.parse(r.stdout)
    expect(json.ioctls.map((i: { name: string }) => i.name)).toEqual(['SET_MEMSEG'])
    expect(json.structs.map((s: { name: string }) => s.name)).toEqual(['acrn_vm_memmap'])
  })

  it('lists the structs', () => {
    const r = hsmctl(['abi', '--structs'])
    expect(r.stdout).toMatch(/^acrn_descriptor_ptr\s+16\s+1\s+uapi, packed$/m)
    expect(r.stdout).toMatch(/^acrn_intr_monitor\s+392\s+8\s+hypervisor$/m)
  })
})

describe('errors and global behaviour', () => {
  it('an unknown struct is "not found" (exit 3) on stderr, with a hint', () => {
    const r = hsmctl(['abi', 'acrn_nothing'])
    expect(r.code).toBe(3)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^Error: no struct or ioctl named 'acrn_nothing'$/m)
    expect(r.stderr).toMatch(/^Hint: known structs: acrn_mmio_request/m)
  })

  it('with --json the error is JSON on stderr', () => {
    const r = hsmctl(['abi', 'acrn_nothing', '--json'])
    expect(r.code).toBe(3)
    expect(JSON.parse(r.stderr).error).toMatchObject({
      exitCode: 3,
      message: "no struct or ioctl named 'acrn_nothing'",
    })
  })

  it('an unknown flag is a usage error (exit 2)', () => {
    const r = hsmctl(['abi', '--bogus'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/Nonexistent flag: --bogus/)
    expect(r.stderr).toMatch(/Hint: see hsmctl abi --help/)
  })

  it('an unknown command is suggested against and fails', () => {
    const r = hsmctl(['abj'])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/abj/)
  })

  it('--version and help work', () => {
    expect(hsmctl(['--version']).stdout).toMatch(/^hsmctl\/\d+\.\d+\.\d+ /)
    const help = hsmctl(['help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/abi\s+Show the \/dev\/acrn_hsm ABI/)
    expect(help.stdout).toMatch(/EXIT CODES/)
  })

  it('no colour codes when NO_COLOR is set or off a terminal', () => {
    const r = hsmctl(['abi', 'pcidev'], { FORCE_COLOR: undefined })
    expect(r.stdout.includes('\u001b[')).toBe(false)
  })
})
