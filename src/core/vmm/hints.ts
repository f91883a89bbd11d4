// What to do next when the HSM refuses, keyed by ioctl and errno, from the spec's
// per-ioctl error summary (§10.2) and the hypervisor preconditions (Appendix A).

import { HsmError } from '../errors.js'

const HINTS: Readonly<Record<string, string>> = {
  'CREATE_VM:EINVAL':
    'the hypervisor refused the VM (no free VM slot, a CPU affinity outside the configured one, or reserved fields set)',
  'DESTROY_VM:EPERM': 'the hypervisor destroys only paused VMs; run `hsmctl vm pause NAME` first',
  'START_VM:EPERM':
    'the hypervisor starts only a VM that was just created (or reset); a paused VM is resumed by reset + start',
  'PAUSE_VM:EPERM': 'the VM is powered off in the hypervisor',
  'RESET_VM:EPERM': 'the hypervisor resets only paused VMs; run `hsmctl vm pause NAME` first',
  'SET_VCPU_REGS:EPERM':
    'registers can be set only while the VM is not running, for an existing vCPU, with valid CR0/CR4; pause the VM first',
  'SET_VCPU_REGS:EINVAL': 'reserved fields of acrn_vcpu_regs must be zero',
  'SET_MEMSEG:EINVAL':
    'RAM segments need at least 4 KiB (§3.4) and sizes must be multiples of 4 KiB for the hypervisor (Appendix A)',
  'SET_MEMSEG:ENOMEM': 'a VM object has at most 256 RAM mappings over its whole life (§3.4)',
  'SET_MEMSEG:EFAULT': 'the Service-VM memory behind the segment is not mapped (§3.4)',
  'SET_MEMSEG:EPERM':
    'the hypervisor refused the mapping (the host range is not valid for this VM)',
  'UNSET_MEMSEG:EINVAL':
    'only MMIO segments can be unset; RAM stays mapped until the VM is destroyed (§3.5)',
  'UNSET_MEMSEG:EPERM': 'nothing is mapped at that guest address range',
  'ASSIGN_PCIDEV:EPERM': 'the device does not exist, is not assignable, or belongs to another VM',
  'DEASSIGN_PCIDEV:EPERM': 'the device is not assigned to this VM',
  'ASSIGN_MMIODEV:EPERM': 'the MMIO device does not exist or belongs to another VM',
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
  'PM_GET_CPU_STATE:EPERM': 'no such Px/Cx state for that vCPU (the index is past the count)',
  'VM_INTR_MONITOR:EFAULT': 'the monitor page is not mapped (§7.3)',
}

export function hintFor(request: string, code: string): string | undefined {
  return HINTS[`${request}:${code}`]
}

/** The same error with the hint for its ioctl and errno, if it had none. */
export function withHint(error: unknown, name?: string): unknown {
  if (!(error instanceof HsmError) || error.hint) return error
  const hint = hintFor(error.request, error.code)?.replaceAll('NAME', name ?? 'NAME')
  return hint ? new HsmError(error.request, error.errno, hint) : error
}
