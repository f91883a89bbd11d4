// Open file descriptions of the simulated Service-VM kernel. An fd points at one; dup
// shares it (§1.4: fds that share an open file description share the VM); an in-flight
// syscall holds a reference too, so a file is released (§1.5) when its last fd is closed
// and no call on it is still running.

import { Errno } from '../../abi/errno.js'
import type { IoctlArg } from '../../hsm-process.js'
import { EventfdCtx } from './eventfd.js'
import type { SimProcess } from './process.js'

export abstract class OpenFile {
  private refs = 1
  abstract readonly kind: 'hsm' | 'eventfd' | 'null'

  get(): void {
    this.refs++
  }

  put(): void {
    if (--this.refs === 0) this.release()
  }

  /** unlocked_ioctl: 0 or more, or a negative errno. */
  ioctl(_proc: SimProcess, _request: number, _arg: IoctlArg): number | Promise<number> {
    return -Errno.ENOTTY
  }

  /** A read-only description of the file's state, for inspection. */
  inspect(): unknown {
    return undefined
  }

  protected abstract release(): void
}

export class EventfdFile extends OpenFile {
  readonly kind = 'eventfd'

  constructor(readonly ctx: EventfdCtx) {
    super()
  }

  protected release(): void {
    this.ctx.hangup()
  }
}

/** /dev/null: an open file that is not an eventfd (what IOEVENTFD/IRQFD reject with EINVAL). */
export class NullFile extends OpenFile {
  readonly kind = 'null'

  protected release(): void {}
}
