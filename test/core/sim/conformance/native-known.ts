// Why a few cases of the conformance suite differ on the native backend. The runners
// (s*.native.test.ts) list them by test name with one of these reasons; each runner also
// checks what the native backend does instead, so a known difference stays known.

/** hsm-helper validates requests before the kernel sees them (PROTOCOL.md, "Validation"). */
export const UNKNOWN_REQUEST =
  'hsm-helper refuses a request that is not an ACRN_IOCTL_* with ENOTTY before it reaches ' +
  'the kernel, so the EINVAL of the no-VM gate (§1.6) is never seen through it'

export const MONITOR_ADDRESS =
  'hsm-helper checks the VM_INTR_MONITOR page against its own mappings before the ' +
  "kernel's no-VM gate (§1.6): EFAULT, not EINVAL, on an fd without a VM"

export const PM_BUFFER =
  'hsm-helper refuses a PM_GET_CPU_STATE buffer shorter than the 48 bytes the kernel may ' +
  'write back (EFAULT); the kernel faults only when the reply overruns the buffer (§7.8)'

/** Not a refusal: how the suite measures "at once". */
export const PEEK_TIMING =
  'timing: peek() gives a call one event-loop turn, a call through hsm-helper and the shim ' +
  'needs several; that ATTACH returns without waiting is checked by the runner instead'

export const known = (entries: Array<[name: string, reason: string]>) => new Map(entries)

/**
 * How a call ends, however long it takes (the test's timeout guards a hang): for calls
 * that must not block, where a time limit would fail a slow machine.
 */
export function outcome(p: Promise<unknown>): Promise<'fulfilled' | 'rejected'> {
  return p.then(
    () => 'fulfilled' as const,
    () => 'rejected' as const,
  )
}

/**
 * How a call stands after it had `ms` to settle with nothing else happening: only to
 * show that one is still pending (slowness cannot turn that into a failure).
 */
export async function settlesAlone(
  p: Promise<unknown>,
  ms: number,
): Promise<'fulfilled' | 'rejected' | 'pending'> {
  let timer: NodeJS.Timeout | undefined
  const state = await Promise.race([
    p.then(
      () => 'fulfilled' as const,
      () => 'rejected' as const,
    ),
    new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms))),
  ])
  clearTimeout(timer)
  return state
}
