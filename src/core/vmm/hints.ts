// What to do next when the HSM refuses, keyed by ioctl and errno, from the spec's
// per-ioctl error summary (§10.2) and the hypervisor preconditions (Appendix A). Only
// refusals the VM manager's own calls can meet: a hint for an errno that cannot happen
// would mislead whoever reads it next.

import { HsmError } from '../errors.js'
import type { VmRunState } from './spec.js'

/**
 * A hint, or one per state of the VM the call was for (hsmd's view, before the call):
 * the same refusal means different things for a running, paused or just created VM.
 */
type Hint = string | ((state: VmRunState | undefined) => string)

const HINTS: Readonly<Record<string, Hint>> = {
  'CREATE_VM:EINVAL':
    'the hypervisor refused the VM (no free VM slot, a VM of that name already, a CPU affinity outside the configured one, or reserved fields set)',
  'DESTROY_VM:EPERM':
    'the hypervisor destroys only paused VMs, and `vm destroy` pauses first: the hypervisor holds NAME in another state (see `hsmctl vm show NAME`)',
  'START_VM:EPERM': (state) =>
    state === 'running'
      ? "'NAME' is already running; `hsmctl vm pause NAME` pauses it, `hsmctl vm reset NAME --yes` restarts it"
      : state === 'paused'
        ? "'NAME' is paused, and a paused VM does not resume: `hsmctl vm reset NAME --yes` takes it back to its reset state, then start it"
        : 'the hypervisor starts only a VM that was just created (or reset), with its ioreq buffer set',
  'PAUSE_VM:EPERM': 'the VM is powered off in the hypervisor',
  'RESET_VM:EPERM': (state) =>
    state === 'created'
      ? "'NAME' has not run since it was created or reset: it is in its reset state already (the hypervisor resets only paused VMs)"
      : 'the hypervisor resets only paused VMs, and `vm reset` pauses first: the hypervisor holds NAME in another state (see `hsmctl vm show NAME`)',
  'SET_VCPU_REGS:EPERM': (state) =>
    state === 'running'
      ? 'registers can be set only while the VM is not running: pause the VM first (`hsmctl vm pause NAME`)'
      : 'registers can be set only for an existing vCPU, with valid CR0/CR4',
  'SET_VCPU_REGS:EINVAL': 'reserved fields of acrn_vcpu_regs must be zero',
  'SET_MEMSEG:EINVAL':
    'RAM segments need at least 4 KiB; the hypervisor needs 4 KiB multiples inside the guest address space and, for MMIO, a host range the Service VM may map',
  // No EFAULT or EPERM hints for SET/UNSET_MEMSEG: the manager maps the RAM itself, so
  // pinning never falls short (§3.4 B step 2), and the hypervisor's -1 (EPERM) from
  // SET_MEMORY_REGIONS is for a powered-off VM, which the manager never holds; a bad
  // host range or an unmapped range is EINVAL (Appendix A.3, sim/hypervisor/ept.ts).
  'SET_MEMSEG:ENOMEM':
    'a VM has at most 256 RAM mappings over its whole life; map fewer, larger segments',
  'UNSET_MEMSEG:EINVAL':
    'only MMIO segments can be unset; RAM stays mapped until the VM is destroyed. An MMIO range must be mapped, in 4 KiB multiples',
  'ASSIGN_PCIDEV:ENODEV':
    'no such host PCI function, a bridge, or another VM has it; see `hsmctl host devices` and `hsmctl ptdev list`',
  'ASSIGN_PCIDEV:EINVAL': (state) =>
    state === 'running' || state === 'paused'
      ? `'NAME' is ${state}: devices are assigned only to a created VM (before \`vm start\`); \`hsmctl vm reset NAME --yes\` takes it back there`
      : 'that virtual BDF is taken: assign the device at a free virtual BDF (--virt; see `hsmctl ptdev list NAME`)',
  'DEASSIGN_PCIDEV:ENODEV':
    'the device is not assigned to this VM at that virtual BDF; see `hsmctl ptdev list NAME`',
  'ASSIGN_MMIODEV:EINVAL': (state) =>
    state === 'running' || state === 'paused'
      ? `'NAME' is ${state}: MMIO devices are assigned only to a created VM (before \`vm start\`); \`hsmctl vm reset NAME --yes\` takes it back there`
      : 'MMIO resources must be 4 KiB-aligned and inside a host MMIO device no other VM has (see `hsmctl host devices`)',
  'DEASSIGN_MMIODEV:EINVAL':
    'that MMIO device is not assigned to this VM; see `hsmctl vm show NAME`',
  'SET_PTDEV_INTR:EPERM':
    'the hypervisor remaps INTx only, of a device assigned to this VM, with pins in range; a host pin goes to one VM at a time',
  'RESET_PTDEV_INTR:EPERM': 'INTx only, of a device assigned to this VM',
  'CREATE_VDEV:EINVAL': 'that slot already holds a virtual device',
  'DESTROY_VDEV:EINVAL': 'no virtual device at that slot; see `hsmctl vm show NAME`',
  'SET_IRQLINE:EPERM': 'the GSI is beyond the VM’s interrupt lines (its vIOAPIC’s pins)',
  'INJECT_MSI:EPERM': 'the VM is powered off in the hypervisor',
  'NOTIFY_REQUEST_FINISH:EINVAL': 'the vCPU is beyond the VM’s vCPUs, or reserved is not zero',
  'CREATE_IOREQ_CLIENT:EEXIST': 'the VM already has its default ioreq client (one per VM)',
  'ATTACH_IOREQ_CLIENT:ENODEV': 'the default ioreq client is gone (destroyed, or the VM torn down)',
  'IOEVENTFD:EEXIST':
    'the same eventfd is already registered at that address with overlapping data',
  'IOEVENTFD:EINVAL': 'len must be 1, 2, 4 or 8 and addr + len must not overflow',
  'IRQFD:EBUSY': 'that eventfd is already an irqfd of this VM',
  'PM_GET_CPU_STATE:EPERM':
    'no such vCPU, or no such state: Px states are numbered from 0, Cx states from 1, up to the count',
  'VM_INTR_MONITOR:EFAULT': 'the monitor page is not mapped',
}

/** The `IOCTL:ERRNO` pairs that have a hint (tests check each can be met). */
export const HINTED = Object.freeze(Object.keys(HINTS))

/** The hint for an ioctl's errno, for a VM in `state` when the call was made. */
export function hintFor(request: string, code: string, state?: VmRunState): string | undefined {
  const hint = HINTS[`${request}:${code}`]
  return typeof hint === 'function' ? hint(state) : hint
}

/** The same error with the hint for its ioctl and errno, if it had none. */
export function withHint(error: unknown, name?: string, state?: VmRunState): unknown {
  if (!(error instanceof HsmError) || error.hint) return error
  const hint = hintFor(error.request, error.code, state)?.replaceAll('NAME', name ?? 'NAME')
  return hint ? new HsmError(error.request, error.errno, hint) : error
}
