// The package entry point's simulated platform: the example of issue 3, verbatim (with
// the package name replaced by the source path), and the inspection API's read-only views.

import { describe, expect, it } from 'vitest'
import {
  createSimPlatform,
  HsmError,
  Ioctl,
  IoreqState,
  defineInventory,
} from '../../../src/index.js'

describe('createSimPlatform', () => {
  it('runs the example of the issue text as written', async () => {
    const platform = createSimPlatform() // options: host inventory etc.
    const proc = platform.spawn() // a Service-VM process
    const fd = await proc.open('/dev/acrn_hsm')
    const page = await proc.mmap(4096) // bigint, page aligned, zeroed
    const vm = new Uint8Array(48) // struct acrn_vm_creation
    new DataView(vm.buffer).setBigUint64(32, page, true)
    await proc.ioctl(fd, 0xc030a210, vm) // CREATE_VM; vmid, vcpu_num written back into vm
    await proc.ioctl(fd, 0x4008a225, (1n << 32n) | 4n) // SET_IRQLINE takes a value
    const efd = await proc.eventfd(0) // eventfdRead/eventfdWrite as on EFD_NONBLOCK
    const bytes = await proc.read(page, 4096) // process memory; proc.write(addr, bytes) too
    await proc.close(fd)

    const vmid = new DataView(vm.buffer).getUint16(0, true)
    expect(vmid).not.toBe(0xffff)
    expect(new DataView(vm.buffer).getUint16(4, true)).toBe(3)
    expect(page % 4096n).toBe(0n)
    expect(new DataView(bytes.buffer).getUint32(136, true)).toBe(IoreqState.FREE)
    await expect(proc.eventfdRead(efd)).rejects.toMatchObject({ code: 'EAGAIN', request: 'read' })
    const failure = await proc.ioctl(fd, Ioctl.START_VM).catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(HsmError)
    expect(failure).toMatchObject({ errno: 9, code: 'EBADF', request: 'START_VM' })
    // The VM was created, not paused, so the close could not destroy it (§1.5).
    expect(platform.inspect.vm(vmid)?.state).toBe('created')
  })

  it('takes a host inventory: pCPUs decide vcpu_num, configured names select slots', async () => {
    const platform = createSimPlatform({
      inventory: {
        pcpus: 8,
        postLaunchedAffinity: 0xfen,
        vmSlots: [{ name: 'rtvm', vmid: 5, cpuAffinity: 0b1100n }],
      },
    })
    expect(platform.inventory).toEqual(
      defineInventory({
        pcpus: 8,
        postLaunchedAffinity: 0xfen,
        vmSlots: [{ name: 'rtvm', vmid: 5, cpuAffinity: 0b1100n }],
      }),
    )
    const proc = platform.spawn()
    const create = async (name: string) => {
      const fd = await proc.open('/dev/acrn_hsm')
      const vm = new Uint8Array(48)
      const view = new DataView(vm.buffer)
      view.setBigUint64(32, await proc.mmap(4096), true)
      vm.set(new TextEncoder().encode(name), 8)
      await proc.ioctl(fd, Ioctl.CREATE_VM, vm)
      return [view.getUint16(0, true), view.getUint16(4, true)]
    }
    expect(await create('')).toEqual([1, 7])
    expect(await create('rtvm')).toEqual([5, 2])
    expect(platform.inspect.vms().map((v) => [v.vmid, v.name])).toEqual([
      [1, ''],
      [5, 'rtvm'],
    ])
    expect(() => defineInventory({ pcpus: 2, postLaunchedAffinity: 0b100n })).toThrow(RangeError)
  })

  it('inspection answers are frozen snapshots', async () => {
    const platform = createSimPlatform()
    const proc = platform.spawn()
    const fd = await proc.open('/dev/acrn_hsm')
    const vm = new Uint8Array(48)
    new DataView(vm.buffer).setBigUint64(32, await proc.mmap(4096), true)
    await proc.ioctl(fd, Ioctl.CREATE_VM, vm)
    const info = platform.inspect.vm(1)!
    expect(Object.isFrozen(info)).toBe(true)
    expect(Object.isFrozen(info.vcpus)).toBe(true)
    expect(() => {
      ;(info as { state: string }).state = 'running'
    }).toThrow(TypeError)
    expect(platform.inspect.vm(1)?.state).toBe('created')
    expect(platform.inspect.hypercalls().CREATE_VM).toBe(1)
    expect(platform.inspect.kernelBuffers()).toBe(0)
  })
})
