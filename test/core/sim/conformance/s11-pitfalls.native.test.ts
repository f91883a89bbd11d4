import { describe, expect, it } from 'vitest'
import { Ioctl } from '../../../../src/index.js'
import { errnoOf, guestOf, notifyArg, runningVm } from './helpers.js'
import { nativeBackend, useNativeBackend } from './native-backend.js'
import { known, outcome, PEEK_TIMING, settlesAlone, UNKNOWN_REQUEST } from './native-known.js'
import { pitfallsSuite } from './suite/s11-pitfalls.js'

useNativeBackend(
  known([
    ['§11.1 any ioctl but CREATE_VM on a fresh fd is EINVAL, an unknown one too', UNKNOWN_REQUEST],
    [
      '§11.16 vm-sample: a non-zero notify.reserved leaves the request uncompleted and ATTACH spinning',
      PEEK_TIMING,
    ],
  ]),
)
pitfallsSuite(nativeBackend)

describe('§11 the known differences, as the native backend has them [native]', () => {
  it('§11.1 ATTACH on a fresh fd is EINVAL; an unknown request is refused by hsm-helper (ENOTTY)', async () => {
    const proc = nativeBackend.create().spawn()
    const fd = await proc.open('/dev/acrn_hsm')
    expect(await errnoOf(proc.ioctl(fd, Ioctl.ATTACH_IOREQ_CLIENT))).toBe('EINVAL')
    expect(await errnoOf(proc.ioctl(fd, 0x1234))).toBe('ENOTTY')
  })

  it('§11.16 a non-zero notify.reserved: EINVAL, the request stays, ATTACH returns without waiting', async () => {
    const sys = nativeBackend.create()
    const vm = await runningVm(sys)
    const access = guestOf(sys)({
      vmid: vm.vmid,
      vcpu: 0,
      type: 'pio',
      dir: 'write',
      addr: 0x3f8,
      size: 1,
      value: 0x48,
    })
    await vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
    expect(
      await errnoOf(
        vm.proc.ioctl(vm.fd, Ioctl.NOTIFY_REQUEST_FINISH, notifyArg(0, { reserved: 0xc0de })),
      ),
    ).toBe('EINVAL')
    expect(await outcome(vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT))).toBe('fulfilled')
    expect(await settlesAlone(access, 300)).toBe('pending')
    await vm.proc.ioctl(vm.fd, Ioctl.NOTIFY_REQUEST_FINISH, notifyArg(0))
    expect(await access).toBe(0n)
  })
})
