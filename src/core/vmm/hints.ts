// What to do next when the HSM refuses, keyed by ioctl and errno, from the spec's
// per-ioctl error summary (§10.2) and the hypervisor preconditions (Appendix A). Only
// refusals the VM manager's own calls can meet: a hint for an errno that cannot happen
// would mislead whoever reads it next.

import { HsmError } from '../errors.js'

const HINTS: Readonly<Record<string, string>> = {
  'CREATE_VM:EINVAL':
    'the hypervisor refused the VM (no free VM slot, a VM of that name already, a CPU affinity outside the configured one, or reserved fields set)',
  'DESTROY_VM:EPERM': 'the hypervisor destroys only paused VMs; run `hsmctl vm pause NAME` first',
  'START_VM:EPERM':
    'the hypervisor starts only a VM that was just created (or reset); a paused VM does not resume: `hsmctl vm reset NAME --yes` restarts it from its reset state, then start it',
  'PAUSE_VM:EPERM': 'the VM is powered off in the hypervisor',
  'RESET_VM:EPERM': 'the hypervisor resets only paused VMs; run `hsmctl vm pause NAME` first',
  'SET_VCPU_REGS:EPERM':
    'registers can be set only while the VM is not running, for an existing vCPU, with valid CR0/CR4; pause the VM first',
  'SET_VCPU_REGS:EINVAL': 'reserved fields of acrn_vcpu_regs must be zero',
  'SET_MEMSEG:EINVAL':
    'RAM segments need at least 4 KiB (§3.4); the hypervisor needs 4 KiB multiples inside the guest address space and, for MMIO, a host range the Service VM may map (Appendix A)',
  // No EFAULT or EPERM hints for SET/UNSET_MEMSEG: the manager maps the RAM itself, so
  // pinning never falls short (§3.4 B step 2), and the hypervisor's -1 (EPERM) from
  // SET_MEMORY_REGIONS is for a powered-off VM, which the manager never holds; a bad
  // host range or an unmapped range is EINVAL (Appendix A.3, sim/hypervisor/ept.ts).
  'SET_MEMSEG:ENOMEM':
    'a VM has at most 256 RAM mappings over its whole life (§3.4); map fewer, larger segments',
  'UNSET_MEMSEG:EINVAL':
    'only MMIO segments can be unset; RAM stays mapped until the VM is destroyed (§3.5). An MMIO range must be mapped, in 4 KiB multiples (Appendix A)',
  'ASSIGN_PCIDEV:ENODEV':
    'no such host PCI function, a bridge, or another VM has it; see `hsmctl host devices` and `hsmctl ptdev list`',
  'ASSIGN_PCIDEV:EINVAL':
    'devices are assigned only to a created VM (before `vm start`), at a free virtual BDF',
  'DEASSIGN_PCIDEV:ENODEV':
    'the device is not assigned to this VM at that virtual BDF; see `hsmctl ptdev list NAME`',
  'ASSIGN_MMIODEV:EINVAL':
    'MMIO devices are assigned only to a created VM, with 4 KiB-aligned resources inside a host MMIO device no other VM has (see `hsmctl host devices`)',
  'DEASSIGN_MMIODEV:EINVAL':
    'that MMIO device is not assigned to this VM; see `hsmctl vm show NAME`',
  'SET_PTDEV_INTR:EPERM':
    'the hypervisor remaps INTx only, of a device assigned to this VM, with pins in range; a host pin goes to one VM at a time',
  'RESET_PTDEV_INTR:EPERM': 'INTx only, of a device assigned to this VM',
  'CREATE_VDEV:EINVAL': 'that slot already holds a virtual device',
  'DESTROY_VDEV:EINVAL': 'no virtual device at that slot; see `hsmctl vm show NAME`',
  'SET_IRQLINE:EPERM': 'the GSI is beyond the VM’s interrupt lines (Appendix A)',
  'INJECT_MSI:EPERM': 'the VM is powered off in the hypervisor',
  'NOTIFY_REQUEST_FINISH:EINVAL':
    'the vCPU is beyond the VM’s vCPUs, or reserved is not zero (§4.7)',
  'CREATE_IOREQ_CLIENT:EEXIST': 'the VM already has its default ioreq client (§4.7)',
  'ATTACH_IOREQ_CLIENT:ENODEV':
    'the default ioreq client is gone (destroyed, or the VM torn down) (§4.7)',
  'IOEVENTFD:EEXIST':
    'the same eventfd is already registered at that address with overlapping data (§5.3)',
  'IOEVENTFD:EINVAL': 'len must be 1, 2, 4 or 8 and addr + len must not overflow (§5.3)',
  'IRQFD:EBUSY': 'that eventfd is already an irqfd of this VM (§6.2)',
  'PM_GET_CPU_STATE:EPERM':
    'no such vCPU, or no such state: Px states are numbered from 0, Cx states from 1, up to the count',
  'VM_INTR_MONITOR:EFAULT': 'the monitor page is not mapped (§7.3)',
}

/** The `IOCTL:ERRNO` pairs that have a hint (tests check each can be met). */
export const HINTED = Object.freeze(Object.keys(HINTS))

export function hintFor(request: string, code: string): string | undefined {
  return HINTS[`${request}:${code}`]
}

/** The same error with the hint for its ioctl and errno, if it had none. */
export function withHint(error: unknown, name?: string): unknown {
  if (!(error instanceof HsmError) || error.hint) return error
  const hint = hintFor(error.request, error.code)?.replaceAll('NAME', name ?? 'NAME')
  return hint ? new HsmError(error.request, error.errno, hint) : error
}
