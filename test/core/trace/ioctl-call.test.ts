// `ioctl log`'s decoding: each kind of HSM ioctl from its raw bytes, with the ABI tables,
// into JSON fields and an strace-like line.

import { describe, expect, it } from 'vitest'
import { PmCmd } from '../../../src/core/abi/constants.js'
import { Errno } from '../../../src/core/abi/errno.js'
import { Ioctl } from '../../../src/core/abi/ioctls.js'
import { encode } from '../../../src/core/abi/layout.js'
import * as S from '../../../src/core/abi/structs.js'
import {
  decodeIoctlEntry,
  durationText,
  ioctlLine,
  pmReplySize,
} from '../../../src/core/trace/ioctl-call.js'
import { IoctlSource, type IoctlEntry } from '../../../src/core/trace/ioctl-log.js'

function entry(request: number, bytes: Uint8Array, more: Partial<IoctlEntry> = {}): IoctlEntry {
  return {
    seq: 0,
    source: IoctlSource.TAP,
    flags: 0,
    errno: 0,
    t: 0,
    durationNs: 12_000,
    pid: 7,
    tid: 7,
    fd: 3,
    request,
    result: 0,
    value: 0x7ffd_0000n,
    bytes,
    ...more,
  }
}

const join = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts))

describe('decodeIoctlEntry and ioctlLine', () => {
  it('CREATE_VM: the struct passed, and what the kernel wrote back', () => {
    const uuid = new Uint8Array(16)
    uuid.set(new TextEncoder().encode('vm1'))
    const before = encode(S.acrn_vm_creation, {
      uuid,
      ioreq_buf: 0x5555_0000_1000n,
      cpu_affinity: 0b10n,
    })
    const after = encode(S.acrn_vm_creation, {
      vmid: 1,
      vcpu_num: 1,
      uuid,
      ioreq_buf: 0x5555_0000_1000n,
      cpu_affinity: 0b10n,
    })
    const call = decodeIoctlEntry(entry(Ioctl.CREATE_VM, join(before, after)))
    expect(call).toMatchObject({
      name: 'CREATE_VM',
      request: '0xc030a210',
      arg: { vmid: 0, vcpu_num: 0, uuid: '"vm1"', ioreq_buf: '0x555500001000' },
      out: { vmid: 1, vcpu_num: 1 },
      result: 0,
      errno: null,
    })
    expect(ioctlLine(call)).toBe(
      'CREATE_VM {vmid=0, vcpu_num=0, uuid="vm1", vm_flag=0x0, ioreq_buf=0x555500001000, cpu_affinity=0x2} => {vmid=1, vcpu_num=1} = 0 <12us>',
    )
  })

  it('a failed call: errno and its meaning, no read-back', () => {
    const before = encode(S.acrn_vm_creation, {})
    const call = decodeIoctlEntry(
      entry(Ioctl.CREATE_VM, before, { result: -1, errno: Errno.EEXIST, durationNs: 2500 }),
    )
    expect(call.out).toBeUndefined()
    expect(call.errno).toBe('EEXIST')
    expect(ioctlLine(call)).toMatch(/^CREATE_VM \{.*\} = -1 EEXIST \(File exists\) <2\.5us>$/)
  })

  it('NOTIFY: reserved hidden while zero, shown when not (the kernel checks it, §4.7)', () => {
    const ok = encode(S.acrn_ioreq_notify, { vmid: 2, vcpu: 1 })
    expect(ioctlLine(decodeIoctlEntry(entry(Ioctl.NOTIFY_REQUEST_FINISH, ok)))).toBe(
      'NOTIFY_REQUEST_FINISH {vmid=2, vcpu=1} = 0 <12us>',
    )
    const bad = encode(S.acrn_ioreq_notify, { vmid: 2, reserved: 5, vcpu: 1 })
    expect(
      ioctlLine(
        decodeIoctlEntry(
          entry(Ioctl.NOTIFY_REQUEST_FINISH, bad, { result: -1, errno: Errno.EINVAL }),
        ),
      ),
    ).toBe(
      'NOTIFY_REQUEST_FINISH {vmid=2, reserved=5, vcpu=1} = -1 EINVAL (Invalid argument) <12us>',
    )
  })

  it('an unreadable argument, a value, no argument, an unknown request', () => {
    const unreadable = decodeIoctlEntry(
      entry(Ioctl.NOTIFY_REQUEST_FINISH, new Uint8Array(0), {
        flags: 1,
        result: -1,
        errno: Errno.EFAULT,
      }),
    )
    expect(unreadable).toMatchObject({ unreadable: true })
    expect(unreadable.arg).toBeUndefined()
    expect(ioctlLine(unreadable)).toBe(
      'NOTIFY_REQUEST_FINISH (argument unreadable) = -1 EFAULT (Bad address) <12us>',
    )
    const value = decodeIoctlEntry(
      entry(Ioctl.SET_IRQLINE, new Uint8Array(0), { value: 0x1_0000_0004n }),
    )
    expect(value.arg).toEqual({ value: '0x100000004' })
    expect(ioctlLine(value)).toBe('SET_IRQLINE 0x100000004 = 0 <12us>')
    // _IO requests ignore their argument (§10.1): none is shown
    expect(ioctlLine(decodeIoctlEntry(entry(Ioctl.START_VM, new Uint8Array(0))))).toBe(
      'START_VM = 0 <12us>',
    )
    expect(
      ioctlLine(
        decodeIoctlEntry(
          entry(0xa27f, new Uint8Array(0), { result: -1, errno: Errno.ENOTTY, durationNs: 3e6 }),
        ),
      ),
    ).toBe('ioctl 0x0000a27f = -1 ENOTTY (Inappropriate ioctl for device) <3.00ms>')
  })

  it('PM_GET_CPU_STATE: the command, and the reply its type asks for (§7.8)', () => {
    const u64 = (v: bigint) => {
      const b = new Uint8Array(8)
      new DataView(b.buffer).setBigUint64(0, v, true)
      return b
    }
    const count = decodeIoctlEntry(entry(Ioctl.PM_GET_CPU_STATE, join(u64(0x0100_0000n), u64(8n))))
    expect(count).toMatchObject({ arg: { cmd: '0x1000000' }, out: { count: '0x8' } })
    const px = encode(S.acrn_pstate_data, { core_frequency: 1901n, power: 15000n })
    const data = decodeIoctlEntry(entry(Ioctl.PM_GET_CPU_STATE, join(u64(0x0100_0001n), px)))
    expect(data.out).toMatchObject({ core_frequency: '0x76d', power: '0x3a98' })
    expect(pmReplySize(BigInt(PmCmd.GET_PX_DATA))).toBe(S.acrn_pstate_data.size)
    expect(pmReplySize(BigInt(PmCmd.GET_CX_DATA))).toBe(S.acrn_cstate_data.size)
    expect(pmReplySize(BigInt(PmCmd.GET_CX_CNT))).toBe(8)
    expect(pmReplySize(0xffn)).toBe(0)
  })

  it('nested structs: only fields that are not zero; long arrays cut in a line', () => {
    const regs = encode(S.acrn_vcpu_regs, {
      vcpu_id: 0,
      vcpu_regs: { rip: 0x100054n, cr0: 0x31n, cs_limit: 0xffff_ffff },
    })
    const call = decodeIoctlEntry(entry(Ioctl.SET_VCPU_REGS, regs))
    expect(ioctlLine(call)).toBe(
      'SET_VCPU_REGS {vcpu_id=0, vcpu_regs={rip=0x100054, cr0=0x31, cs_limit=0xffffffff}} = 0 <12us>',
    )
    // the JSON keeps every field
    expect(Object.keys((call.arg as { vcpu_regs: object }).vcpu_regs).length).toBeGreaterThan(10)
  })

  it('durations in the unit that reads best', () => {
    expect(durationText(999)).toBe('1.0us')
    expect(durationText(12_345)).toBe('12us')
    expect(durationText(2_340_000)).toBe('2.34ms')
    expect(durationText(45_600_000)).toBe('45.6ms')
    expect(durationText(4_290_000_000)).toBe('4.29s')
  })
})
