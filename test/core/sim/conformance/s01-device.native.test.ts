import { describe, expect, it } from 'vitest'
import { ioc, Ioctl } from '../../../../src/index.js'
import { createVm, errnoOf } from './helpers.js'
import { nativeBackend, useNativeBackend } from './native-backend.js'
import { known, MONITOR_ADDRESS, UNKNOWN_REQUEST } from './native-known.js'
import { deviceSuite } from './suite/s01-device.js'

const unknown = [
  'nr 0x14 (absent from the table)',
  'type 0xa3',
  'CREATE_VM number with size 40',
  'DESTROY_VM number with direction W',
  '0xffffffff',
]

useNativeBackend(
  known([
    ...unknown.map((label): [string, string] => [
      `§1.6 unknown command ${label}: EINVAL without a VM, ENOTTY with one`,
      UNKNOWN_REQUEST,
    ]),
    ['§1.6 VM_INTR_MONITOR on a fresh fd is EINVAL', MONITOR_ADDRESS],
  ]),
)
deviceSuite(nativeBackend)

describe('§1.6 the known differences, as the native backend has them [native]', () => {
  it('an unknown command is ENOTTY with or without a VM: hsm-helper refuses it', async () => {
    const sys = nativeBackend.create()
    const proc = sys.spawn()
    const bare = await proc.open('/dev/acrn_hsm')
    expect(await errnoOf(proc.ioctl(bare, ioc(0, 0xa2, 0x14, 0), new Uint8Array(64)))).toBe(
      'ENOTTY',
    )
    const vm = await createVm(sys, { proc })
    expect(await errnoOf(proc.ioctl(vm.fd, ioc(0, 0xa2, 0x14, 0), new Uint8Array(64)))).toBe(
      'ENOTTY',
    )
  })

  it("VM_INTR_MONITOR on a fresh fd: EFAULT for an address the helper has not mapped, the gate's EINVAL for one it has", async () => {
    const proc = nativeBackend.create().spawn()
    const fd = await proc.open('/dev/acrn_hsm')
    expect(await errnoOf(proc.ioctl(fd, Ioctl.VM_INTR_MONITOR, 0n))).toBe('EFAULT')
    const page = await proc.mmap(4096)
    expect(await errnoOf(proc.ioctl(fd, Ioctl.VM_INTR_MONITOR, page))).toBe('EINVAL')
  })
})
