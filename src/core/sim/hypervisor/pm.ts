// HC_PM_GET_CPU_STATE(cmd, buffer) (§7.8): the host's ACPI Px/Cx tables as a VM's vCPUs
// see them. The target VM comes from cmd bits 31:24 (vmid 0 is the Service VM), the vCPU
// from 23:16, the state index from 15:8 and the request type from 7:0.

import { PmCmd } from '../../abi/constants.js'
import { encode } from '../../abi/layout.js'
import { acrn_cstate_data, acrn_pstate_data } from '../../abi/structs.js'
import { Errno } from '../../abi/errno.js'
import type { Hypervisor } from './hypervisor.js'

const BUFFER_SIZE: Readonly<Record<number, number>> = {
  [PmCmd.GET_PX_CNT]: 8,
  [PmCmd.GET_PX_DATA]: acrn_pstate_data.size,
  [PmCmd.GET_CX_CNT]: 8,
  [PmCmd.GET_CX_DATA]: acrn_cstate_data.size,
}

export function hcallGetCpuPmState(hv: Hypervisor, cmd: bigint, p2: bigint): number {
  const vmid = Number((cmd >> 24n) & 0xffn)
  const vcpuId = Number((cmd >> 16n) & 0xffn)
  const index = Number((cmd >> 8n) & 0xffn)
  const type = Number(cmd & 0xffn)
  const vm = vmid === 0 ? hv.serviceVm : hv.userVm(vmid)
  if (!vm) return -Errno.ENOTTY
  if (vm.state === 'powered-off') return -1
  const size = BUFFER_SIZE[type]
  if (size === undefined) return -1
  const buffer = hv.memory.bytes(Number(p2), size)
  if (!buffer) return -1
  const { px, cx } = hv.inventory
  switch (type) {
    case PmCmd.GET_PX_CNT:
      // The count is written as a single byte.
      buffer[0] = px.length & 0xff
      return 0
    case PmCmd.GET_CX_CNT:
      buffer[0] = cx.length & 0xff
      return 0
    case PmCmd.GET_PX_DATA: {
      const p = px[index]
      if (!p || vcpuId >= vm.vcpuNum) return -1
      encode(
        acrn_pstate_data,
        {
          core_frequency: BigInt(p.coreFrequency),
          power: BigInt(p.power),
          transition_latency: BigInt(p.transitionLatency),
          bus_master_latency: BigInt(p.busMasterLatency),
          control: BigInt(p.control),
          status: BigInt(p.status),
        },
        buffer,
      )
      return 0
    }
    default: {
      // Cx entries are numbered from 1.
      const c = index >= 1 ? cx[index - 1] : undefined
      if (!c || vcpuId >= vm.vcpuNum) return -1
      encode(
        acrn_cstate_data,
        {
          cx_reg: {
            space_id: c.spaceId,
            bit_width: c.bitWidth,
            bit_offset: c.bitOffset,
            access_size: c.accessSize,
            address: c.address,
          },
          type: c.type,
          latency: c.latency,
          power: BigInt(c.power),
        },
        buffer,
      )
      return 0
    }
  }
}
