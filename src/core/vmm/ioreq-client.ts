// The daemon as a VM's default ioreq client (§4.7): wait in ATTACH_IOREQ_CLIENT, scan the
// vCPU slots for PROCESSING requests that are not kernel-handled, let a device model
// answer, write a read's value back into the slot, NOTIFY, and publish on the trace hub.
// The scan works on the raw 4 KiB page with fixed offsets (UAPI layout, §4.1).

import { performance } from 'node:perf_hooks'
import { IoreqState, IoreqType } from '../abi/constants.js'
import { Errno } from '../abi/errno.js'
import { Ioctl } from '../abi/ioctls.js'
import { offsetOf } from '../abi/layout.js'
import { acrn_io_request } from '../abi/structs.js'
import { HsmError } from '../errors.js'
import type { HsmProcess } from '../hsm-process.js'
import type { TraceHub } from '../trace/hub.js'
import { CLIENT_DEFAULT, pciAddr, TYPE_MMIO, TYPE_PCICFG, TYPE_PIO } from '../trace/record.js'
import type { DeviceModels } from './devices/models.js'

const SLOT = acrn_io_request.size
const TYPE = offsetOf(acrn_io_request, 'type')
const KERNEL_HANDLED = offsetOf(acrn_io_request, 'kernel_handled')
const PROCESSED = offsetOf(acrn_io_request, 'processed')
const DIRECTION = offsetOf(acrn_io_request, 'reqs.pio_request.direction')
const ADDRESS = offsetOf(acrn_io_request, 'reqs.pio_request.address')
const SIZE = offsetOf(acrn_io_request, 'reqs.pio_request.size')
const VALUE = offsetOf(acrn_io_request, 'reqs.pio_request.value')
const PCI_BUS = offsetOf(acrn_io_request, 'reqs.pci_request.bus')
const PCI_DEV = offsetOf(acrn_io_request, 'reqs.pci_request.dev')
const PCI_FUNC = offsetOf(acrn_io_request, 'reqs.pci_request.func')
const PCI_REG = offsetOf(acrn_io_request, 'reqs.pci_request.reg')

export interface ClientVm {
  name: string
  vmid: number
  vcpuNum: number
  ioreqBuf: bigint
}

export interface ClientStats {
  handled: number
  wakeups: number
}

export class DefaultIoreqClient {
  readonly stats: ClientStats = { handled: 0, wakeups: 0 }
  /** Why the loop ended, if it ended on an error other than the client going away. */
  error: Error | undefined
  private stopped = false
  private readonly notify = new Uint8Array(8)
  private readonly value = new Uint8Array(8)
  private readonly valueView = new DataView(this.value.buffer)
  readonly done: Promise<void>

  constructor(
    private readonly proc: HsmProcess,
    private readonly fd: number,
    private readonly vm: ClientVm,
    private readonly devices: DeviceModels,
    /** Where handled requests are published; none when the platform traces them itself. */
    private readonly trace: TraceHub | undefined,
  ) {
    new DataView(this.notify.buffer).setUint16(0, vm.vmid, true)
    this.done = this.loop()
  }

  /** Stop after the current wake-up; the loop also ends when ATTACH says ENODEV. */
  stop(): void {
    this.stopped = true
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.proc.ioctl(this.fd, Ioctl.ATTACH_IOREQ_CLIENT)
      } catch (e) {
        if (!(e instanceof HsmError && e.errno === Errno.ENODEV)) this.error = e as Error
        return
      }
      if (this.stopped) return
      this.stats.wakeups++
      const seen = performance.now()
      const page = await this.proc.read(this.vm.ioreqBuf, SLOT * 16)
      const view = new DataView(page.buffer, page.byteOffset, page.byteLength)
      let handled = 0
      for (let vcpu = 0; vcpu < this.vm.vcpuNum; vcpu++) {
        const base = vcpu * SLOT
        if (view.getUint32(base + PROCESSED, true) !== IoreqState.PROCESSING) continue
        if (view.getUint32(base + KERNEL_HANDLED, true) !== 0) continue
        await this.handle(view, base, vcpu, seen)
        handled++
      }
      // ATTACH returns at once while a bit is pending; never spin without yielding.
      if (handled === 0) await new Promise((r) => setImmediate(r))
    }
  }

  private async handle(view: DataView, base: number, vcpu: number, seen: number) {
    const type = view.getUint32(base + TYPE, true)
    const write = view.getUint32(base + DIRECTION, true) === 1
    const size = Number(view.getBigUint64(base + SIZE, true))
    let traceType: number
    let addr: bigint
    let value: bigint
    let result: bigint
    if (type === IoreqType.MMIO) {
      traceType = TYPE_MMIO
      addr = view.getBigUint64(base + ADDRESS, true)
      value = view.getBigUint64(base + VALUE, true)
      result = this.devices.mmio(write, addr, size, value).value
    } else if (type === IoreqType.PCICFG) {
      traceType = TYPE_PCICFG
      addr = pciAddr(
        view.getUint32(base + PCI_BUS, true),
        view.getUint32(base + PCI_DEV, true),
        view.getUint32(base + PCI_FUNC, true),
        view.getUint32(base + PCI_REG, true),
      )
      value = BigInt(view.getUint32(base + VALUE, true))
      result = this.devices.pcicfg(write, size, value).value
    } else {
      traceType = TYPE_PIO
      addr = view.getBigUint64(base + ADDRESS, true)
      value = BigInt(view.getUint32(base + VALUE, true))
      result = this.devices.pio(write, Number(addr), size, value).value
    }
    if (!write) {
      // PIO and PCICFG carry a u32 value, MMIO a u64 (§4.1)
      const width = type === IoreqType.MMIO ? 8 : 4
      if (width === 8) this.valueView.setBigUint64(0, result, true)
      else this.valueView.setUint32(0, Number(result & 0xffff_ffffn), true)
      await this.proc.write(this.vm.ioreqBuf + BigInt(base + VALUE), this.value.subarray(0, width))
      value = result
    }
    this.notify[4] = vcpu & 0xff
    this.notify[5] = (vcpu >> 8) & 0xff
    await this.proc.ioctl(this.fd, Ioctl.NOTIFY_REQUEST_FINISH, this.notify)
    this.stats.handled++
    this.trace?.publish({
      t: seen,
      vmid: this.vm.vmid,
      vcpu,
      type: traceType,
      write,
      client: CLIENT_DEFAULT,
      size,
      addr,
      value,
      latencyNs: (performance.now() - seen) * 1e6,
    })
  }
}
