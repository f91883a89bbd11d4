// A guest access on the simulation: a vCPU of a running VM performs a port or MMIO access
// that traps, and whoever serves the VM's I/O requests answers it (hsmd's default client
// for its own VMs, the holder for an outside VM).

import { ACCESS_SIZES, accessSizesText } from '../abi/constants.js'
import { UsageError } from '../errors.js'
import { findRunning, inLookupOrder, type VmOwners } from './owners/owner.js'

/** Before any VM lookup, so that the flag at fault is named whatever the VM's state. */
function checkAccessSize(type: 'pio' | 'mmio', size: number) {
  if (ACCESS_SIZES[type].includes(size)) return
  const kind = type === 'pio' ? 'a port I/O' : 'an MMIO'
  throw new UsageError(`${kind} access is ${accessSizesText(type)} bytes, not ${size}`, {
    flag: '--size',
    hint:
      type === 'pio'
        ? 'port I/O moves at most 4 bytes (the request’s value is 32 bits); use --size 1, 2 or 4, or --mmio for 8-byte accesses'
        : 'use --size 1, 2, 4 or 8',
  })
}

export async function guestAccess(
  owners: VmOwners,
  name: string,
  access: {
    vcpu: number
    type: 'pio' | 'mmio'
    dir: 'read' | 'write'
    addr: bigint
    size: number
    value: bigint
  },
) {
  const platform = owners.hsmd.platform
  const perform = platform.guestAccess
  if (!perform) {
    throw new UsageError('guest access needs the simulation', {
      hint: 'on real hardware the guest itself performs accesses; run the daemon with --backend sim',
    })
  }
  checkAccessSize(access.type, access.size)
  const vm = findRunning(inLookupOrder(owners), name)
  if (!vm) throw owners.journaled.notRunning(name)
  vm.checkGuestAccess(access.vcpu)
  const value = await perform.call(platform, { vmid: vm.vmid, ...access })
  return { name, ...access, result: value }
}
