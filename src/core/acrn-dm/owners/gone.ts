// Only the monitor socket of an acrn-dm that exited without removing it (it crashed):
// `vm show` shows the socket; every other verb says to remove it.

import { NotFoundError, type HsmctlError } from '../../errors.js'
import type { AcrnDmInstance } from '../vms.js'
import { describe } from './describe.js'
import { Owner, type Shown, type VerbContext } from './owner.js'

export class GoneVm extends Owner {
  readonly kind = 'gone'
  readonly takenBy = undefined

  constructor(
    name: string,
    readonly instance: AcrnDmInstance,
  ) {
    super(name)
  }

  refusal(): HsmctlError {
    return new NotFoundError(
      `'${this.name}' is gone: acrn-dm pid ${this.instance.pid} exited without removing its monitor socket (it crashed)`,
      `remove the socket left behind: rm ${this.instance.path}`,
    )
  }

  override show(ctx: VerbContext): Promise<Shown> {
    return describe(ctx, { kind: 'gone', instance: this.instance }, undefined)
  }
}
