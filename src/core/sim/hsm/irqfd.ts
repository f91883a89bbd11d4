// irqfd (drivers/virt/acrn/irqfd.c; spec §6): an eventfd bound to an MSI. Every write
// or signal of the eventfd injects the MSI once, synchronously in the writer's context;
// the counter is never read or reset. When the eventfd is finally closed its EPOLLHUP
// queues the irqfd's shutdown on the VM's `acrn_irqfd-<vmid>` workqueue.

import { IrqfdFlag } from '../../abi/constants.js'
import { Errno } from '../../abi/errno.js'
import { offsetOf } from '../../abi/layout.js'
import { acrn_irqfd } from '../../abi/structs.js'
import type { IoctlArg } from '../../hsm-process.js'
import { EPOLLHUP, EPOLLIN, type EventfdCtx, type EventfdWaiter } from '../kernel/eventfd.js'
import type { SimProcess } from '../kernel/process.js'
import { copyFromUser } from '../kernel/uaccess.js'
import { Work, WorkQueue } from '../kernel/workqueue.js'
import { eventfdCtxOf } from './ioeventfd.js'
import type { AcrnVm } from './vm.js'

const ARG_FD = offsetOf(acrn_irqfd, 'fd')
const ARG_FLAGS = offsetOf(acrn_irqfd, 'flags')
const ARG_MSI = offsetOf(acrn_irqfd, 'msi')

export class Irqfd implements EventfdWaiter {
  /** The kernel copy of {msi_addr, msi_data} HC_INJECT_MSI points at. */
  private readonly msiPa: bigint
  readonly shutdownWork: Work

  constructor(
    readonly vm: AcrnVm,
    readonly ctx: EventfdCtx,
    readonly msiAddr: bigint,
    readonly msiData: bigint,
  ) {
    const msi = vm.module.hv.memory.kzalloc(16)
    const view = new DataView(msi.bytes.buffer)
    view.setBigUint64(0, msiAddr, true)
    view.setBigUint64(8, msiData, true)
    this.msiPa = BigInt(msi.pa)
    this.shutdownWork = new Work(() => {
      if (vm.irqfds.includes(this)) irqfdShutdown(this)
    })
  }

  /** The wait-queue callback (§6.3): one injection per wake-up with EPOLLIN. */
  wake(_ctx: EventfdCtx, flags: number): void {
    // Hypercall errors are only logged.
    if (flags & EPOLLIN) this.vm.module.hcall.injectMsi(this.vm.vmidArg, this.msiPa)
    // It cannot unhook itself under the wait-queue lock: the shutdown is deferred (§6.4).
    if (flags & EPOLLHUP) this.vm.irqfdWq?.queue(this.shutdownWork)
  }

  freeMsi(): void {
    this.vm.module.hv.memory.kfree(Number(this.msiPa))
  }
}

function irqfdShutdown(irqfd: Irqfd): void {
  const vm = irqfd.vm
  vm.irqfds.splice(vm.irqfds.indexOf(irqfd), 1)
  irqfd.ctx.removeWaiter(irqfd)
  irqfd.freeMsi()
}

function assign(vm: AcrnVm, proc: SimProcess, view: DataView): number {
  const ctx = eventfdCtxOf(proc, view.getInt32(ARG_FD, true))
  if (typeof ctx === 'number') return ctx
  // One irqfd per eventfd: a duplicate is EBUSY, not EEXIST.
  if (vm.irqfds.some((i) => i.ctx === ctx)) return -Errno.EBUSY
  const irqfd = new Irqfd(
    vm,
    ctx,
    view.getBigUint64(ARG_MSI, true),
    view.getBigUint64(ARG_MSI + 8, true),
  )
  vm.irqfds.push(irqfd)
  ctx.addWaiter(irqfd)
  // Already signalled when it is hooked up: inject once now.
  if (!ctx.isZero()) irqfd.wake(ctx, EPOLLIN)
  return 0
}

function deassign(vm: AcrnVm, proc: SimProcess, view: DataView): number {
  const ctx = eventfdCtxOf(proc, view.getInt32(ARG_FD, true))
  if (typeof ctx === 'number') return ctx
  const irqfd = vm.irqfds.find((i) => i.ctx === ctx)
  if (irqfd) irqfdShutdown(irqfd)
  return 0
}

/** ACRN_IOCTL_IRQFD (§6.1-§6.5). No reserved field, so nothing else is checked. */
export function irqfdIoctl(vm: AcrnVm, proc: SimProcess, arg: IoctlArg): number {
  const bytes = copyFromUser(proc.mm, arg, acrn_irqfd.size)
  if (typeof bytes === 'number') return bytes
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return view.getUint32(ARG_FLAGS, true) & IrqfdFlag.DEASSIGN
    ? deassign(vm, proc, view)
    : assign(vm, proc, view)
}

/** At VM creation: the list and the workqueue; a failure would be ignored (§2.2 step 6). */
export function irqfdInit(vm: AcrnVm): void {
  vm.irqfds = []
  vm.irqfdWq = new WorkQueue(`acrn_irqfd-${vm.vmid}`)
}

/** At VM destroy: the workqueue goes first (running queued shutdowns), then every irqfd (§6.6). */
export function irqfdDeinit(vm: AcrnVm): void {
  vm.irqfdWq?.destroy()
  vm.irqfdWq = null
  for (const irqfd of [...vm.irqfds]) irqfdShutdown(irqfd)
}
