// munmap and the lifetime of host memory in the simulation: the address space and the
// host RAM frames come back when a process unmaps or exits, except pages a VM pinned,
// which stay the VM's (and the guest keeps reading and writing them) until the VM lets
// go of them (§3.4, §2.3 step 8). And hsmd gives back what it mapped for a VM.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { RangeAllocator } from '../../../src/core/sim/ranges.js'
import { Journal } from '../../../src/core/vmm/journal.js'
import { VmManager } from '../../../src/core/vmm/manager.js'
import { simVmmPlatform } from '../../../src/core/vmm/sim-platform.js'
import { createSimPlatform, Ioctl, Memmap } from '../../../src/index.js'
import { errnoOf, memmap, vmCreation } from './conformance/helpers.js'

const MiB = 1 << 20
const GiB = 1n << 30n
const SMALL_HOST = {
  ram: [
    { base: 0x0n, size: 0x9f000n },
    { base: 0x100000n, size: (256n << 20n) - 0x100000n },
    { base: 4n * GiB, size: 512n << 20n },
  ],
  hypervisorRam: { base: 0x0800_0000n, size: 64n << 20n },
}

describe('RangeAllocator', () => {
  it('hands out ranges that never overlap, and all of it again once everything is freed (a property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 40 }), fc.nat()), {
          maxLength: 60,
        }),
        (steps) => {
          const a = new RangeAllocator(100, 300)
          const live: Array<[number, number]> = []
          for (const [take, size, pick] of steps) {
            if (take || live.length === 0) {
              const at = a.allocate(size)
              if (at === undefined) {
                expect(a.largest()).toBeLessThan(size)
                continue
              }
              expect(at).toBeGreaterThanOrEqual(100)
              expect(at + size).toBeLessThanOrEqual(300)
              for (const [s, n] of live) expect(at + size <= s || s + n <= at).toBe(true)
              live.push([at, size])
            } else {
              const [s, n] = live.splice(pick % live.length, 1)[0]!
              a.free(s, n)
            }
          }
          for (const [s, n] of live) a.free(s, n)
          expect(a.largest()).toBe(200) // every hole merged back into one
        },
      ),
    )
  })
})

describe('munmap in a simulated process', () => {
  it('takes whole pages out of any mapping, cutting one in two, and says EINVAL only for bad arguments', async () => {
    const proc = createSimPlatform().spawn()
    const base = await proc.mmap(3 * 4096)
    await proc.write(base, new Uint8Array(3 * 4096).fill(0x5a))
    expect(await errnoOf(proc.munmap(base + 1n, 4096))).toBe('EINVAL')
    expect(await errnoOf(proc.munmap(base, 0))).toBe('EINVAL')
    await proc.munmap(base + 4096n, 1) // the middle page (a length rounds up)
    expect(await errnoOf(proc.read(base + 4096n, 1))).toBe('EFAULT')
    expect([...(await proc.read(base, 1)), ...(await proc.read(base + 8191n + 1n, 1))]).toEqual([
      0x5a, 0x5a,
    ])
    expect(await errnoOf(proc.read(base, 4097))).toBe('EFAULT') // runs into the hole
    await proc.munmap(base + 4096n, 4096) // nothing mapped there any more: fine
    await proc.munmap(base, 3 * 4096)
    expect(await errnoOf(proc.read(base + 8192n, 1))).toBe('EFAULT')
  })

  it('gives the address space and the host RAM back, for munmap and for exit', async () => {
    const platform = createSimPlatform()
    const proc = platform.spawn()
    const free = () => platform.inspect.freeRam()
    const before = free()
    const a = await proc.mmap(256 * MiB)
    const b = await proc.mmap(256 * MiB)
    expect(free()).toBe(before - 512 * MiB)
    await proc.munmap(a, 256 * MiB)
    await proc.munmap(b, 128 * MiB) // half: the rest still holds its frames
    expect(free()).toBeLessThan(before)
    await proc.munmap(b + BigInt(128 * MiB), 128 * MiB)
    expect(free()).toBe(before)
    // far more than the host has, mapped and unmapped over and over: no running out
    const most = proc.mm.available()
    for (let i = 0; i < 40; i++) await proc.munmap(await proc.mmap(most), most)
    const other = platform.spawn()
    await other.mmap(most)
    expect(free()).toBe(before - most)
    await other.exit()
    expect(free()).toBe(before)
  })

  it("§3.4 pages a VM pinned stay the guest's after munmap, and come back when the VM goes (§2.3)", async () => {
    const platform = createSimPlatform()
    const proc = platform.spawn()
    const before = platform.inspect.freeRam()
    const fd = await proc.open('/dev/acrn_hsm')
    const page = await proc.mmap(4096)
    await proc.ioctl(fd, Ioctl.CREATE_VM, vmCreation({ ioreq_buf: page, cpu_affinity: 0b10n }))
    const ram = await proc.mmap(MiB)
    await proc.write(ram + 0x800n, Uint8Array.of(0x78, 0x56, 0x34, 0x12))
    await proc.ioctl(
      fd,
      Ioctl.SET_MEMSEG,
      memmap({ type: Memmap.RAM, vma_base: ram, len: BigInt(MiB) }),
    )
    await proc.ioctl(fd, Ioctl.START_VM)
    await proc.munmap(ram, MiB)
    await proc.munmap(page, 4096)
    const vmid = platform.inspect.vms()[0]!.vmid
    const guest = (dir: 'read' | 'write', addr: number, value?: number) =>
      platform.guestAccess({
        vmid,
        vcpu: 0,
        type: 'mmio',
        dir,
        addr,
        size: 4,
        ...(value === undefined ? {} : { value }),
      })
    expect(await guest('read', 0x800)).toBe(0x12345678n) // the pinned page, not a hole
    await guest('write', 0x900, 0xcafe)
    expect(await guest('read', 0x900)).toBe(0xcafen)
    expect(platform.inspect.freeRam()).toBeLessThan(before) // still the VM's
    await proc.ioctl(fd, Ioctl.PAUSE_VM)
    await proc.ioctl(fd, Ioctl.DESTROY_VM)
    expect(platform.inspect.freeRam()).toBe(before)
  })

  it('a failed SET_MEMSEG or VM_INTR_MONITOR leaves no pin behind', async () => {
    const platform = createSimPlatform()
    const proc = platform.spawn()
    const before = platform.inspect.freeRam()
    const fd = await proc.open('/dev/acrn_hsm')
    const page = await proc.mmap(4096)
    await proc.ioctl(fd, Ioctl.CREATE_VM, vmCreation({ ioreq_buf: page, cpu_affinity: 0b10n }))
    const ram = await proc.mmap(MiB)
    // runs past the mapping: the pages it got are unpinned again (EFAULT, §3.4)
    const long = memmap({ type: Memmap.RAM, vma_base: ram, len: BigInt(2 * MiB) })
    expect(await errnoOf(proc.ioctl(fd, Ioctl.SET_MEMSEG, long))).toBe('EFAULT')
    await proc.munmap(ram, MiB)
    await proc.ioctl(fd, Ioctl.PAUSE_VM)
    await proc.ioctl(fd, Ioctl.DESTROY_VM)
    await proc.munmap(page, 4096)
    expect(platform.inspect.freeRam()).toBe(before)
  })
})

describe('a VM orphaned at release (§1.5) keeps its pages', () => {
  it("exit with the VM running: the pins leak as in the kernel, and nobody else gets the guest's RAM", async () => {
    const platform = createSimPlatform()
    const proc = platform.spawn()
    const before = platform.inspect.freeRam()
    const fd = await proc.open('/dev/acrn_hsm')
    const page = await proc.mmap(4096)
    await proc.ioctl(fd, Ioctl.CREATE_VM, vmCreation({ ioreq_buf: page, cpu_affinity: 0b10n }))
    const ram = await proc.mmap(MiB)
    await proc.ioctl(
      fd,
      Ioctl.SET_MEMSEG,
      memmap({ type: Memmap.RAM, vma_base: ram, len: BigInt(MiB) }),
    )
    await proc.ioctl(fd, Ioctl.START_VM)
    await proc.exit() // the destroy fails (running, A.3): the VM is orphaned
    const vmid = platform.inspect.vms()[0]!.vmid
    expect(platform.inspect.vm(vmid)!.state).toBe('running')
    expect(platform.inspect.freeRam()).toBeLessThan(before)
    const other = platform.spawn()
    const mine = await other.mmap(MiB)
    await platform.guestAccess({
      vmid,
      vcpu: 0,
      type: 'mmio',
      dir: 'write',
      addr: 0x10,
      size: 4,
      value: 0xdeadbeef,
    })
    expect([...(await other.read(mine + 0x10n, 4))]).toEqual([0, 0, 0, 0])
  })
})

describe('hsmd gives back what it mapped for a VM', () => {
  it('create and destroy of VMs larger than half the host, many times over', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hsmctl-mem-'))
    // a small host (512 MiB for processes): quick to fill several times over
    const platform = simVmmPlatform({ inventory: SMALL_HOST })
    const manager = new VmManager({ platform, journal: new Journal(dir), stateDir: dir })
    try {
      const free = () => platform.sim.inspect.freeRam()
      const before = free()
      const size = BigInt(Math.min(2 ** 32, Math.floor((before * 0.6) / MiB) * MiB))
      // together several times the host's RAM: each must come back
      const rounds = Math.ceil((3 * before) / Number(size))
      for (let i = 0; i < rounds; i++) {
        await manager.create({ name: `big-${i}`, vcpus: 1 })
        await manager.memsegSet(`big-${i}`, { gpa: 0n, size, type: 'ram', access: 7 })
        await manager.intrMonitor(`big-${i}`)
        await manager.destroy(`big-${i}`)
      }
      expect(free()).toBe(before)
      // a segment the kernel refuses (§3.4: not page-aligned) is given back at once
      await manager.create({ name: 'refused', vcpus: 1 })
      const withPage = free()
      expect(withPage).toBeLessThan(before) // its ioreq page
      await expect(
        manager.memsegSet('refused', { gpa: 0x1000n, size: 0x800n, type: 'ram', access: 7 }),
      ).rejects.toThrow()
      expect(free()).toBe(withPage)
      await manager.destroy('refused')
      expect(free()).toBe(before)
    } finally {
      await manager.shutdown()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a create the journal cannot record leaves no VM, no entry and no memory behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hsmctl-mem-'))
    const platform = simVmmPlatform()
    const journal = new Journal(dir)
    journal.save = () => {
      throw new Error('disk full')
    }
    const manager = new VmManager({ platform, journal, stateDir: dir })
    try {
      const before = platform.sim.inspect.freeRam()
      await expect(manager.create({ name: 'lost', vcpus: 1 })).rejects.toThrow(/disk full/)
      expect(manager.list().map((v) => v.name)).toEqual([])
      expect(platform.sim.inspect.vms()).toEqual([])
      expect(platform.sim.inspect.freeRam()).toBe(before)
    } finally {
      await manager.shutdown()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
