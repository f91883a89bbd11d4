import { describe, expect, it } from 'vitest'
import { Ioctl, PmCmd } from '../../../../src/index.js'
import { createVm, errnoOf } from './helpers.js'
import { nativeBackend, useNativeBackend } from './native-backend.js'
import { known, PM_BUFFER } from './native-known.js'
import { interruptsSuite } from './suite/s07-interrupts.js'

useNativeBackend(
  known(
    [
      '§7.8 counts are one byte in a u64; DATA writes 48 or 32 bytes through the same pointer',
      "§7.8 an unknown type: 0, no hypercall, nothing written -> 'OK'",
      "§7.8 Cx index 0 (entries count from 1) -> 'EPERM'",
      "§7.8 a vCPU the VM does not have -> 'EPERM'",
      '§7.8 §11.12 the VM comes from cmd bits 31:24, not from the fd',
    ].map((name): [string, string] => [name, PM_BUFFER]),
  ),
)
interruptsSuite(nativeBackend)

/** cmd: vmid 31:24, vCPU 23:16, index 15:8, type 7:0 (§7.8), in a 48-byte buffer of 0xee. */
function pmBuffer(f: { vmid: number; vcpu?: number; index?: number; type: number }): Uint8Array {
  const buf = new Uint8Array(48).fill(0xee)
  const cmd =
    (BigInt(f.vmid) << 24n) |
    (BigInt(f.vcpu ?? 0) << 16n) |
    (BigInt(f.index ?? 0) << 8n) |
    BigInt(f.type)
  new DataView(buf.buffer).setBigUint64(0, cmd, true)
  return buf
}

describe('§7.8 the known differences, as the native backend has them [native]', () => {
  it('§7.8 with 48-byte buffers: counts write 8 bytes, Cx data 32, Px data 48; the rest is left alone', async () => {
    const vm = await createVm(nativeBackend.create())
    const host = vm.sys.inspect!.host()
    const count = pmBuffer({ vmid: vm.vmid, type: PmCmd.GET_PX_CNT })
    await vm.proc.ioctl(vm.fd, Ioctl.PM_GET_CPU_STATE, count)
    expect(new DataView(count.buffer).getBigUint64(0, true)).toBe(BigInt(host.px.length))
    expect(count[8]).toBe(0xee)
    const cx = pmBuffer({ vmid: vm.vmid, index: 2, type: PmCmd.GET_CX_DATA })
    await vm.proc.ioctl(vm.fd, Ioctl.PM_GET_CPU_STATE, cx)
    const c = new DataView(cx.buffer)
    expect([c.getUint8(12), c.getUint32(16, true), c.getBigUint64(24, true)]).toEqual([
      host.cx[1]!.type,
      host.cx[1]!.latency,
      BigInt(host.cx[1]!.power),
    ])
    expect([...cx.subarray(32)]).toEqual(new Array(16).fill(0xee))
    const px = pmBuffer({ vmid: vm.vmid, index: 1, type: PmCmd.GET_PX_DATA })
    await vm.proc.ioctl(vm.fd, Ioctl.PM_GET_CPU_STATE, px)
    expect(new DataView(px.buffer).getBigUint64(40, true)).toBe(BigInt(host.px[1]!.status))
  })

  it('§7.8 unknown type: 0, nothing written; Cx index 0 and a missing vCPU: EPERM; the VM comes from cmd', async () => {
    const sys = nativeBackend.create()
    const a = await createVm(sys, { cpu_affinity: 0b10n })
    const b = await createVm(sys, { cpu_affinity: 0b110n })
    const unknown = pmBuffer({ vmid: a.vmid, type: 0x7f })
    const before = unknown.slice()
    expect(await errnoOf(a.proc.ioctl(a.fd, Ioctl.PM_GET_CPU_STATE, unknown))).toBe('OK')
    expect(unknown).toEqual(before)
    expect(
      await errnoOf(
        a.proc.ioctl(
          a.fd,
          Ioctl.PM_GET_CPU_STATE,
          pmBuffer({ vmid: a.vmid, index: 0, type: PmCmd.GET_CX_DATA }),
        ),
      ),
    ).toBe('EPERM')
    expect(
      await errnoOf(
        a.proc.ioctl(
          a.fd,
          Ioctl.PM_GET_CPU_STATE,
          pmBuffer({ vmid: a.vmid, vcpu: 7, index: 1, type: PmCmd.GET_CX_DATA }),
        ),
      ),
    ).toBe('EPERM')
    expect(
      await errnoOf(
        a.proc.ioctl(
          a.fd,
          Ioctl.PM_GET_CPU_STATE,
          pmBuffer({ vmid: b.vmid, vcpu: 1, index: 1, type: PmCmd.GET_CX_DATA }),
        ),
      ),
    ).toBe('OK')
    expect(
      await errnoOf(
        b.proc.ioctl(
          b.fd,
          Ioctl.PM_GET_CPU_STATE,
          pmBuffer({ vmid: a.vmid, vcpu: 1, index: 1, type: PmCmd.GET_CX_DATA }),
        ),
      ),
    ).toBe('EPERM')
  })

  it('§7.8 a buffer shorter than 48 bytes is refused by hsm-helper with EFAULT', async () => {
    const vm = await createVm(nativeBackend.create())
    const buf = pmBuffer({ vmid: vm.vmid, type: PmCmd.GET_PX_CNT }).slice(0, 8)
    expect(await errnoOf(vm.proc.ioctl(vm.fd, Ioctl.PM_GET_CPU_STATE, buf))).toBe('EFAULT')
  })
})
