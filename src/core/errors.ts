// One error family for all of hsmctl (ARCHITECTURE.md, "Errors"). Each class carries the
// exit code it maps to; the command base class is the only place that turns them into
// process exit codes and stderr text.

import { errnoInfo } from './abi/errno.js'

/** Exit codes, documented in `hsmctl help` and the man pages. */
export const EXIT_CODES = [
  { code: 0, name: 'ok', meaning: 'the command did what it was asked' },
  {
    code: 1,
    name: 'hsm',
    meaning: 'the HSM (or hypervisor) refused: the ioctl, errno and a hint are printed',
  },
  {
    code: 2,
    name: 'usage',
    meaning: 'an unknown command, bad flags, arguments or input files; nothing was changed',
  },
  { code: 3, name: 'not-found', meaning: 'a named VM, device, struct or file does not exist' },
  {
    code: 4,
    name: 'conflict',
    meaning: 'the request clashes with existing state (duplicate name, busy device)',
  },
  {
    code: 5,
    name: 'daemon',
    meaning:
      'the hsmd daemon or the backend could not be reached (with --host: ssh, the host’s hsmctl or its hsmd)',
  },
  {
    code: 6,
    name: 'device-model',
    meaning:
      'acrn-dm, a launch script or the script registry refused or failed: its answer or error text is printed',
  },
  {
    code: 7,
    name: 'timeout',
    meaning: 'a VM did not reach the state asked for within --timeout; it was left as it was',
  },
  {
    code: 8,
    name: 'partial',
    meaning:
      'with several --host hosts, some did not answer: each has an error row, the others’ rows are printed',
  },
  {
    code: 126,
    name: 'not-executable',
    meaning: '`sim exec`, `trace exec`: the program could not be executed (as sh says)',
  },
  {
    code: 127,
    name: 'no-program',
    meaning: '`sim exec`, `trace exec`: the program was not found (as sh says)',
  },
  { code: 130, name: 'interrupted', meaning: 'interrupted by Ctrl-C (SIGINT)' },
  {
    code: 141,
    name: 'stdout-closed',
    meaning: 'the reader of stdout went away (as `head` does): stopped quietly, as by SIGPIPE',
  },
] as const

export type ExitCode = (typeof EXIT_CODES)[number]['code']

export abstract class HsmctlError extends Error {
  abstract readonly exitCode: ExitCode
  /** What to do next, shown under the message. */
  readonly hint: string | undefined

  constructor(message: string, hint?: string) {
    super(message)
    this.name = new.target.name
    this.hint = hint
  }
}

/** A failed ioctl: the syscall returned -1 with this errno (what both backends reject with). */
export class HsmError extends HsmctlError {
  readonly exitCode = 1 as const
  readonly errno: number
  /** The errno symbol, e.g. 'EINVAL'. */
  readonly code: string
  /** The request name without ACRN_IOCTL_, or the syscall ('open', 'mmap', ...). */
  readonly request: string
  /** The flag whose value the call could not satisfy (`--memory` for an mmap too large). */
  readonly flag: string | undefined

  constructor(request: string, errno: number, hint?: string, detail?: string, flag?: string) {
    const info = errnoInfo(errno)
    const text = `${request} failed: ${info.code} (${info.message})${detail ? `: ${detail}` : ''}`
    super(flag ? `${flag}: ${text}` : text, hint)
    this.errno = errno
    this.code = info.code
    this.request = request
    this.flag = flag
  }
}

/** Bad flags, arguments or input; names the flag when there is one. */
export class UsageError extends HsmctlError {
  readonly exitCode = 2 as const
  readonly flag: string | undefined

  constructor(message: string, options: { flag?: string; hint?: string } = {}) {
    super(options.flag ? `${options.flag}: ${message}` : message, options.hint)
    this.flag = options.flag
  }
}

export class NotFoundError extends HsmctlError {
  readonly exitCode = 3 as const
}

export class ConflictError extends HsmctlError {
  readonly exitCode = 4 as const
}

export class DaemonUnreachableError extends HsmctlError {
  readonly exitCode = 5 as const
}

/** acrn-dm (its monitor socket), a launch script or the registry refused or failed. */
export class DeviceModelError extends HsmctlError {
  readonly exitCode = 6 as const
}

/** A wait for a VM's state ran out of time (the VM is left as it is). */
export class TimeoutError extends HsmctlError {
  readonly exitCode = 7 as const
}

export class InterruptedError extends HsmctlError {
  readonly exitCode = 130 as const
}

/** `sim exec`: the program exists but cannot be run (not a file, no execute permission). */
export class NotExecutableError extends HsmctlError {
  readonly exitCode = 126 as const
}

/** `sim exec`: no such program (on PATH, or at the path given). */
export class ProgramNotFoundError extends HsmctlError {
  readonly exitCode = 127 as const
}

/**
 * Several operations of one command (`vm apply --all`), some failed: said as one error
 * that exits with the first failure's code.
 */
export class PartialFailureError extends HsmctlError {
  readonly exitCode: ExitCode

  constructor(first: unknown, message: string, hint?: string) {
    super(message, hint)
    this.exitCode = first instanceof HsmctlError ? first.exitCode : 1
  }
}
