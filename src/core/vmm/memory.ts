// A VM's guest memory, as the kernel's mm.c: SET_MEMSEG of RAM (the daemon's mapping,
// pinned by the kernel) or MMIO, UNSET_MEMSEG, and the guest address map `memseg list`
// shows.

import { Memmap } from '../abi/constants.js'
import { Errno } from '../abi/errno.js'
import { Ioctl } from '../abi/ioctls.js'
import { encode } from '../abi/layout.js'
import * as S from '../abi/structs.js'
import { HsmError, UsageError } from '../errors.js'
import { formatSize } from '../parse/size.js'
import { hostDevice } from './assigned-devices.js'
import type { HsmdVms } from './owners/hsmd.js'
import type { MemsegSpec } from './spec.js'

export interface MemsegInfo extends MemsegSpec {
  /** RAM: the daemon's mapping backing the segment. */
  vma?: bigint
}

/**
 * `flag` names what asked for the size (`--memory`, `--size`, a spec file's entry), so
 * that a size the daemon cannot map is reported against it.
 */
export async function memsegSet(
  hsmd: HsmdVms,
  name: string,
  seg: MemsegSpec,
  payload?: Uint8Array,
  options: { flag?: string } = {},
): Promise<MemsegInfo> {
  const vm = hsmd.get(name)
  if (payload && seg.type !== 'ram')
    throw new UsageError('only RAM segments load a payload', { flag: '--file' })
  if (payload && BigInt(payload.byteLength) > seg.size) {
    throw new UsageError(`the payload (${payload.byteLength} bytes) is larger than the segment`, {
      flag: '--file',
    })
  }
  let info: MemsegInfo
  if (seg.type === 'ram') {
    // RAM is Service-VM memory the kernel pins and maps into the guest (§3.4 B)
    const vma = await mapRam(hsmd, seg.size, options.flag)
    try {
      if (payload) await hsmd.proc.write(vma, payload)
      const memmap = encode(S.acrn_vm_memmap, {
        type: Memmap.RAM,
        attr: seg.access,
        user_vm_pa: seg.gpa,
        vma_base: vma,
        len: seg.size,
      })
      await hsmd.ioctl(vm, Ioctl.SET_MEMSEG, memmap)
    } catch (e) {
      // the kernel did not pin it (§3.4): nobody else has it
      await hsmd.unmap(vma, seg.size)
      throw e
    }
    info = { ...seg, vma }
  } else {
    if (seg.hpa === undefined)
      throw new UsageError('an MMIO segment needs --hpa', { flag: '--hpa' })
    const memmap = encode(S.acrn_vm_memmap, {
      type: Memmap.MMIO,
      attr: seg.access,
      user_vm_pa: seg.gpa,
      service_vm_pa: seg.hpa,
      len: seg.size,
    })
    await hsmd.ioctl(vm, Ioctl.SET_MEMSEG, memmap)
    info = { ...seg }
  }
  vm.memsegs.push(info)
  hsmd.save(vm)
  return info
}

/**
 * The daemon's memory behind a RAM segment. When the process cannot map that much, say
 * which process, how much was asked for (by `flag`) and, when known, how much it can map.
 */
async function mapRam(hsmd: HsmdVms, size: bigint, flag: string | undefined): Promise<bigint> {
  const tooLarge = () => {
    const platform = hsmd.platform
    const who =
      platform.backend === 'sim' ? 'the simulated Service-VM process (hsmd)' : 'hsm-helper'
    const limit = platform.mmapLimit?.()
    // whole MiB read better than an exact byte count, and stay below the limit
    const mib = 1n << 20n
    const room = limit !== undefined && limit >= mib ? (limit / mib) * mib : limit
    const smaller = flag ? `a smaller ${flag}` : 'a smaller size'
    return new HsmError(
      'mmap',
      Errno.ENOMEM,
      room !== undefined
        ? `ask for ${smaller}: at most ${formatSize(room)} can be mapped now`
        : `ask for ${smaller}: the RAM must fit in the host's free memory`,
      `${who} could not map ${formatSize(size)} for the guest's RAM`,
      flag,
    )
  }
  // more than any address space holds: what mmap(2) says to it too
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw tooLarge()
  try {
    // at least one byte: a zero-length segment is the kernel's EINVAL to report (§3.4), not mmap's
    return await hsmd.proc.mmap(Math.max(Number(size), 1))
  } catch (e) {
    if (e instanceof HsmError && e.errno === Errno.ENOMEM) throw tooLarge()
    throw e
  }
}

/** UNSET_MEMSEG as the kernel does it: MMIO only; RAM gets the kernel's EINVAL (§3.5). */
export async function memsegUnset(
  hsmd: HsmdVms,
  name: string,
  seg: { gpa: bigint; size: bigint; type: 'ram' | 'mmio' },
): Promise<MemsegInfo> {
  const vm = hsmd.get(name)
  const memmap = encode(S.acrn_vm_memmap, {
    type: seg.type === 'ram' ? Memmap.RAM : Memmap.MMIO,
    user_vm_pa: seg.gpa,
    len: seg.size,
  })
  await hsmd.ioctl(vm, Ioctl.UNSET_MEMSEG, memmap)
  const index = vm.memsegs.findIndex(
    (m) => m.type === 'mmio' && m.gpa === seg.gpa && m.size === seg.size,
  )
  const [removed] = index >= 0 ? vm.memsegs.splice(index, 1) : [{ ...seg, access: 0 }]
  hsmd.save(vm)
  return removed!
}

/**
 * The guest address map: segments, pass-through BARs and ioeventfd ranges. A BAR sits
 * at the address ASSIGN_PCIDEV passed in `bar[]` (the host's) until the guest moves it.
 */
export async function memsegList(hsmd: HsmdVms, name: string) {
  const vm = hsmd.get(name)
  const ptdevBars: {
    phys: number
    virt: number
    index: number
    kind: string
    gpa: bigint
    hpa: bigint
    size: bigint
  }[] = []
  for (const p of vm.ptdevs) {
    for (const b of (await hostDevice(hsmd, p.phys))?.bars ?? []) {
      ptdevBars.push({
        phys: p.phys,
        virt: p.virt,
        index: b.index,
        kind: b.kind,
        gpa: b.base,
        hpa: b.base,
        size: b.size,
      })
    }
  }
  return {
    memsegs: vm.memsegs,
    ptdevBars,
    ioeventfds: vm.ioeventfds.map(({ efd: _efd, ...e }) => e),
  }
}
