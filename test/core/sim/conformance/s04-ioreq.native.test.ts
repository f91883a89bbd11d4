import { describe, expect, it } from 'vitest'
import { Ioctl, IoreqState } from '../../../../src/index.js'
import { guestOf, readSlot, runningVm } from './helpers.js'
import { nativeBackend, useNativeBackend } from './native-backend.js'
import { known, outcome, PEEK_TIMING } from './native-known.js'
import { ioreqSuite } from './suite/s04-ioreq.js'

useNativeBackend(
  known([
    [
      '§4.7 returns at once while a bit is pending: a client that never completes spins',
      PEEK_TIMING,
    ],
  ]),
)
ioreqSuite(nativeBackend)

describe('§4.7 the known differences, as the native backend has them [native]', () => {
  it('§4.7 ATTACH returns without waiting while a bit is pending', async () => {
    const sys = nativeBackend.create()
    const vm = await runningVm(sys)
    void guestOf(sys)({ vmid: vm.vmid, vcpu: 0, type: 'pio', dir: 'read', addr: 0x3f8, size: 1 })
    await vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
    expect((await readSlot(vm, 0)).state).toBe(IoreqState.PROCESSING)
    for (let i = 0; i < 3; i++) {
      expect(await outcome(vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT))).toBe('fulfilled')
    }
  })
})
