// A VM's vCPUs: their registers before start (SET_VCPU_REGS, from a preset for the mode
// the payload starts in) and their power states (PM_GET_CPU_STATE's Px and Cx data).

import { PmCmd } from '../abi/constants.js'
import { Ioctl } from '../abi/ioctls.js'
import { decode, encode } from '../abi/layout.js'
import * as S from '../abi/structs.js'
import { UsageError } from '../errors.js'
import { show, type VmDetails } from './listing.js'
import { checkVcpu, type HsmdVms } from './owners/hsmd.js'
import type { RegsSpec } from './spec.js'

function realModeRegs(entry: bigint) {
  // §9.2 step 6: CS base carries the high bits of the entry, IP the low 16.
  return {
    cr0: 0x30n,
    cs_ar: 0x009f,
    cs_sel: 0xf000,
    cs_limit: 0xffff,
    cs_base: entry & 0xffff_0000n,
    rip: entry & 0xffffn,
  }
}

function protectedModeRegs(entry: bigint) {
  // Flat 32-bit segments, paging off, as acrn-dm sets up a BSP for a bzImage.
  return {
    cr0: 0x31n,
    cs_ar: 0xc09b,
    cs_sel: 0x10,
    cs_limit: 0xffff_ffff,
    cs_base: 0n,
    rip: entry,
    ds_sel: 0x18,
    es_sel: 0x18,
    ss_sel: 0x18,
  }
}

function longModeRegs(entry: bigint) {
  // 64-bit, paging on (CR3 given), as acrn-dm enters a 64-bit kernel: PG|NE|ET|PE, PAE,
  // EFER LME|LMA, a 64-bit code segment (L=1)
  return {
    cr0: 0x8000_0031n,
    cr4: 0x20n,
    ia32_efer: 0x500n,
    cs_ar: 0xa09b,
    cs_sel: 0x10,
    cs_limit: 0xffff_ffff,
    cs_base: 0n,
    rip: entry,
    ds_sel: 0x18,
    es_sel: 0x18,
    ss_sel: 0x18,
  }
}

export async function setRegs(hsmd: HsmdVms, name: string, regs: RegsSpec): Promise<VmDetails> {
  const vm = hsmd.get(name)
  checkVcpu(vm, regs.vcpu)
  if (regs.preset === 'long-mode' && regs.cr3 === undefined) {
    throw new UsageError('the long-mode preset needs the guest’s page tables', {
      flag: '--cr3',
      hint: 'give --cr3 GPA of a PML4 your payload holds (identity-mapping the code it runs)',
    })
  }
  const base =
    regs.preset === 'protected-mode'
      ? protectedModeRegs(regs.rip ?? 0n)
      : regs.preset === 'long-mode'
        ? longModeRegs(regs.rip ?? 0n)
        : realModeRegs(regs.rip ?? 0n)
  const value = {
    vcpu_id: regs.vcpu,
    vcpu_regs: {
      ...base,
      ...(regs.cr0 !== undefined ? { cr0: regs.cr0 } : {}),
      ...(regs.cr3 !== undefined ? { cr3: regs.cr3 } : {}),
      ...(regs.cr4 !== undefined ? { cr4: regs.cr4 } : {}),
      gprs: { rsp: regs.rsp ?? 0n },
    },
  }
  await hsmd.ioctl(vm, Ioctl.SET_VCPU_REGS, encode(S.acrn_vcpu_regs, value))
  vm.regs = [...vm.regs.filter((r) => r.vcpu !== regs.vcpu), regs]
  hsmd.save(vm)
  return show(hsmd, name)
}

/** Px or Cx data of a vCPU: the count, then every entry or the one asked for (§7.8). */
export async function pm(
  hsmd: HsmdVms,
  name: string,
  kind: 'px' | 'cx',
  vcpu: number,
  index?: number,
) {
  const vm = hsmd.get(name)
  const cmd = (type: number, i: number) =>
    (BigInt(vm.vmid & 0xff) << 24n) |
    (BigInt(vcpu & 0xff) << 16n) |
    (BigInt(i & 0xff) << 8n) |
    BigInt(type)
  const call = async (type: number, i: number) => {
    const buf = new Uint8Array(S.acrn_pstate_data.size) // the kernel writes up to 48 bytes back
    new DataView(buf.buffer).setBigUint64(0, cmd(type, i), true)
    await hsmd.ioctl(vm, Ioctl.PM_GET_CPU_STATE, buf)
    return buf
  }
  const countType = kind === 'px' ? PmCmd.GET_PX_CNT : PmCmd.GET_CX_CNT
  const count = Number(new DataView((await call(countType, 0)).buffer).getBigUint64(0, true))
  // Px states are numbered from 0, Cx entries from 1 (§7.8)
  const first = kind === 'px' ? 0 : 1
  const indices = index !== undefined ? [index] : Array.from({ length: count }, (_, i) => i + first)
  const states = []
  for (const i of indices) {
    const bytes = await call(kind === 'px' ? PmCmd.GET_PX_DATA : PmCmd.GET_CX_DATA, i)
    states.push({
      index: i,
      ...decode(kind === 'px' ? S.acrn_pstate_data : S.acrn_cstate_data, bytes),
    })
  }
  return { name, vcpu, kind, count, states }
}
