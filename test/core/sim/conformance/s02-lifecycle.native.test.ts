import { describe, expect, it } from 'vitest'
import { Ioctl, IoreqState } from '../../../../src/index.js'
import { guestOf, readSlot, runningVm, slotStates } from './helpers.js'
import { nativeBackend, useNativeBackend } from './native-backend.js'
import { known, outcome, PEEK_TIMING, settlesAlone } from './native-known.js'
import { lifecycleSuite } from './suite/s02-lifecycle.js'

useNativeBackend(
  known([
    [
      "§2.5 reset does not clear HSM's requests: the client keeps its pending bit, ATTACH returns at once",
      PEEK_TIMING,
    ],
  ]),
)
lifecycleSuite(nativeBackend)

describe('§2.5 the known differences, as the native backend has them [native]', () => {
  it('§2.5 after a reset the pending bit stays: ATTACH returns without waiting until CLEAR_VM_IOREQ', async () => {
    const sys = nativeBackend.create()
    const vm = await runningVm(sys)
    const access = guestOf(sys)({
      vmid: vm.vmid,
      vcpu: 0,
      type: 'pio',
      dir: 'read',
      addr: 0x70,
      size: 1,
    })
    access.catch(() => undefined)
    await vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT)
    await vm.proc.ioctl(vm.fd, Ioctl.PAUSE_VM)
    await vm.proc.ioctl(vm.fd, Ioctl.RESET_VM)
    expect(await outcome(access)).toBe('rejected')
    expect(await slotStates(vm)).toEqual([IoreqState.FREE])
    expect(await outcome(vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT))).toBe('fulfilled')
    await vm.proc.ioctl(vm.fd, Ioctl.CLEAR_VM_IOREQ)
    expect((await readSlot(vm, 0)).state).toBe(IoreqState.COMPLETE)
    expect(await settlesAlone(vm.proc.ioctl(vm.fd, Ioctl.ATTACH_IOREQ_CLIENT), 300)).toBe('pending')
  })
})
