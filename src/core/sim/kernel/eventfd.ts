// eventfd(2) with EFD_NONBLOCK, as HSM's ioeventfd and irqfd meet it: a 64-bit counter
// and a wait queue. Signalling from the kernel (ioeventfd, §5.5) adds 1; userspace writes
// add n; every write or signal wakes the waiters with EPOLLIN, which is what makes irqfd
// inject one MSI per write (§6.3). Releasing the last file wakes them with EPOLLHUP (§6.4).
// The counter is kept as two 32-bit halves so the signal path allocates nothing.

import { Errno } from '../../abi/errno.js'

export const EPOLLIN = 0x001
export const EPOLLHUP = 0x010

export interface EventfdWaiter {
  /** Runs synchronously in the context of whoever signals, writes or releases. */
  wake(ctx: EventfdCtx, flags: number): void
}

const U64_MAX = 0xffff_ffff_ffff_ffffn

export class EventfdCtx {
  private lo = 0
  private hi = 0
  private waiters: EventfdWaiter[] = []

  constructor(initval: number) {
    this.lo = initval >>> 0
  }

  get count(): bigint {
    return (BigInt(this.hi) << 32n) | BigInt(this.lo)
  }

  private setCount(value: bigint): void {
    this.lo = Number(value & 0xffff_ffffn)
    this.hi = Number(value >> 32n)
  }

  isZero(): boolean {
    return this.lo === 0 && this.hi === 0
  }

  /** eventfd_signal: add 1 (saturating at 2^64-1) and wake pollers. */
  signal(): void {
    if (this.lo !== 0xffff_ffff) this.lo++
    else if (this.hi !== 0xffff_ffff) {
      this.lo = 0
      this.hi++
    }
    this.wakeAll(EPOLLIN)
  }

  /** write(2) of n on a non-blocking eventfd: 0, -EINVAL or -EAGAIN. */
  write(n: bigint): number {
    if (n === U64_MAX) return -Errno.EINVAL
    const count = this.count
    // The counter may reach at most 2^64 - 2 through writes.
    if (U64_MAX - count <= n) return -Errno.EAGAIN
    this.setCount(count + n)
    this.wakeAll(EPOLLIN)
    return 0
  }

  /** read(2): the counter, reset to 0; -EAGAIN (as a number) when it is 0. */
  read(): bigint | number {
    if (this.isZero()) return -Errno.EAGAIN
    const value = this.count
    this.lo = 0
    this.hi = 0
    return value
  }

  addWaiter(waiter: EventfdWaiter): void {
    this.waiters.push(waiter)
  }

  removeWaiter(waiter: EventfdWaiter): void {
    const i = this.waiters.indexOf(waiter)
    if (i >= 0) this.waiters.splice(i, 1)
  }

  /** The last file of this eventfd is gone (eventfd_release). */
  hangup(): void {
    this.wakeAll(EPOLLHUP)
  }

  private wakeAll(flags: number): void {
    const waiters = this.waiters
    if (waiters.length === 0) return
    if (waiters.length === 1) {
      waiters[0]!.wake(this, flags)
      return
    }
    // A waiter may unhook itself while being woken.
    for (const waiter of waiters.slice()) waiter.wake(this, flags)
  }
}
