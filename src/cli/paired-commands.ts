// Commands that come in pairs over one ioctl pair (assign/deassign, create/destroy,
// set/reset) or one ioctl with two kinds (pm px/cx): the flags, help and body are
// defined once here, and each command file is a thin class that names its verb.

import { Flags } from '@oclif/core'
import type { Wire } from '../core/daemon/protocol.js'
import type { MmiodevInfo, PtdevInfo, VdevInfo } from '../core/vmm/manager.js'
import type { PciText } from '../ui/pci.js'
import { vmNameArg, type DaemonCommand } from './daemon-command.js'
import { bdfFlag, hexFlag, intFlag } from './flags.js'

export const mmiodev = {
  summary: (op: 'assign' | 'deassign') =>
    `${op === 'assign' ? 'Assign' : 'Deassign'} a host MMIO device (${op === 'assign' ? 'ASSIGN_MMIODEV' : 'DEASSIGN_MMIODEV'}).`,
  description: `--res GPA:HPA:SIZE, up to three times (acrn_mmiodev holds 3 resources). --dev-name is
the device's name in the hypervisor (an ACPI HID, at most 8 bytes).`,
  examples: [
    '<%= config.bin %> <%= command.id %> demo --dev-name TPM0 --res 0xfed40000:0xfed40000:0x5000',
  ],
  args: { name: vmNameArg },
  flags: {
    'dev-name': Flags.string({ description: 'Device name (at most 8 bytes).', required: true }),
    res: Flags.string({
      description: 'A resource GPA:HPA:SIZE (repeatable, up to 3).',
      multiple: true,
      required: true,
    }),
  },
  async run(
    cmd: DaemonCommand,
    op: 'assign' | 'deassign',
    { args, flags }: { args: { name: string }; flags: { 'dev-name': string; res: string[] } },
  ): Promise<Wire<MmiodevInfo>> {
    const { parseMmioResource } = await import('../core/parse/mmio.js')
    const res = flags.res.map((r) => parseMmioResource(r, '--res'))
    const info = await cmd.call<Wire<MmiodevInfo>>(`mmiodev.${op}`, {
      name: args.name,
      devName: flags['dev-name'],
      res,
    })
    cmd.log(`${op}ed MMIO device ${info.devName} (${args.name})`)
    return info
  },
}

export const vdev = {
  summary: (op: 'create' | 'destroy') =>
    op === 'create'
      ? 'Create a device emulated by the hypervisor itself (CREATE_VDEV).'
      : 'Destroy a hypervisor-emulated device (DESTROY_VDEV).',
  description: `A PCI device is identified by --vendor and --device at --slot; a legacy device (a vUART,
say) by --legacy-id. --io ADDR:SIZE gives its I/O resources (up to 6).`,
  examples: ['<%= config.bin %> <%= command.id %> demo --legacy-id 1 --io 0x2f8:8'],
  args: { name: vmNameArg },
  flags: {
    vendor: intFlag('vendor', 0n, 0xffffn)({ description: 'PCI vendor ID.' }),
    device: intFlag('device', 0n, 0xffffn)({ description: 'PCI device ID.' }),
    'legacy-id': intFlag('legacy-id')({ description: 'ID of a non-PCI device.' }),
    slot: hexFlag('slot')({ description: 'Virtual BDF / slot of the device.' }),
    io: Flags.string({
      description: 'I/O resource ADDR:SIZE (repeatable, up to 6).',
      multiple: true,
    }),
  },
  async run(
    cmd: DaemonCommand,
    op: 'create' | 'destroy',
    {
      args,
      flags,
    }: {
      args: { name: string }
      flags: {
        vendor?: number
        device?: number
        'legacy-id'?: number
        slot?: bigint
        io?: string[]
      }
    },
  ): Promise<PciText<Wire<VdevInfo>>> {
    const { parseInteger } = await import('../core/parse/number.js')
    const { UsageError } = await import('../core/errors.js')
    const max = 0xffff_ffffn
    const io = (flags.io ?? []).map((r) => {
      const [addr, size, extra] = r.split(':')
      if (addr === undefined || size === undefined || extra !== undefined) {
        throw new UsageError(`'${r}' is not ADDR:SIZE`, { flag: '--io' })
      }
      return {
        addr: Number(parseInteger(addr, { name: '--io', max })),
        size: Number(parseInteger(size, { name: '--io', max })),
      }
    })
    if (io.length > 6) throw new UsageError('at most 6 I/O resources', { flag: '--io' })
    const info = await cmd.call<Wire<VdevInfo>>(`vdev.${op}`, {
      name: args.name,
      vendor: flags.vendor ?? 0,
      device: flags.device ?? 0,
      legacyId: flags['legacy-id'] ?? 0,
      slot: flags.slot ?? 0n,
      ioAddr: io.map((r) => r.addr),
      ioSize: io.map((r) => r.size),
    })
    cmd.log(`${op === 'create' ? 'created' : 'destroyed'} virtual device in ${args.name}`)
    const { pciText } = await import('../ui/pci.js')
    return pciText(info)
  },
}

export const ptdevIntr = {
  summary: (op: 'set' | 'reset') =>
    op === 'set'
      ? "Route a pass-through device's interrupt into the VM (SET_PTDEV_INTR)."
      : 'Undo a pass-through interrupt routing (RESET_PTDEV_INTR).',
  description: `For INTx, --virt-pin is the guest's vIOAPIC (or vPIC with --pic) pin and --phys-pin
the host GSI (default: the device's routing in the host inventory). MSI and MSI-X remapping
is set up by the hypervisor when the guest programs the device.`,
  examples: ['<%= config.bin %> <%= command.id %> demo --type intx --phys 00:14.0 --virt-pin 5'],
  args: { name: vmNameArg },
  flags: {
    type: Flags.string({
      description: 'Interrupt type.',
      options: ['intx', 'msi', 'msix'],
      required: true,
    }),
    phys: bdfFlag('phys')({ description: 'Host PCI function.', required: true }),
    virt: bdfFlag('virt')({ description: 'Guest PCI function (default: as assigned).' }),
    'virt-pin': intFlag('virt-pin', 0n, 255n)({ description: 'INTx: guest interrupt pin (GSI).' }),
    'phys-pin': intFlag('phys-pin', 0n, 255n)({ description: 'INTx: host GSI.' }),
    pic: Flags.boolean({ description: 'INTx: the virtual pin is a vPIC pin.' }),
  },
  async run(
    cmd: DaemonCommand,
    op: 'set' | 'reset',
    {
      args,
      flags,
    }: {
      args: { name: string }
      flags: {
        type: string
        phys: number
        virt?: number
        'virt-pin'?: number
        'phys-pin'?: number
        pic: boolean
      }
    },
  ): Promise<PciText<Wire<PtdevInfo>>> {
    const info = await cmd.call<Wire<PtdevInfo>>('ptdev.intr', {
      name: args.name,
      op,
      type: flags.type,
      phys: flags.phys,
      ...(flags.virt !== undefined ? { virt: flags.virt } : {}),
      ...(flags['virt-pin'] !== undefined ? { virtPin: flags['virt-pin'] } : {}),
      ...(flags['phys-pin'] !== undefined ? { physPin: flags['phys-pin'] } : {}),
      picPin: flags.pic,
    })
    cmd.log(`${op} ${flags.type} interrupt of ${args.name}`)
    const { pciText } = await import('../ui/pci.js')
    return pciText(info)
  },
}

export interface PmResult {
  name: string
  vcpu: number
  kind: string
  count: number
  states: Record<string, unknown>[]
}

export const pm = {
  summary: (kind: 'px' | 'cx') =>
    kind === 'px'
      ? 'A vCPU’s P-states (frequency, power, latencies, control/status) via PM_GET_CPU_STATE.'
      : 'A vCPU’s C-states (register, type, latency, power) via PM_GET_CPU_STATE.',
  examples: [
    '<%= config.bin %> <%= command.id %> demo --vcpu 0',
    '<%= config.bin %> <%= command.id %> demo --vcpu 0 --index 1',
  ],
  args: { name: vmNameArg },
  flags: {
    vcpu: intFlag('vcpu', 0n, 255n)({ description: 'The vCPU.', default: 0 }),
    index: intFlag(
      'index',
      0n,
      255n,
    )({ description: 'Only this state (Px states are numbered from 0, Cx states from 1).' }),
  },
  async run(
    cmd: DaemonCommand,
    kind: 'px' | 'cx',
    { args, flags }: { args: { name: string }; flags: { vcpu: number; index?: number } },
  ): Promise<PmResult> {
    const result = await cmd.call<PmResult>('pm.get', {
      name: args.name,
      kind,
      vcpu: flags.vcpu,
      ...(flags.index !== undefined ? { index: flags.index } : {}),
    })
    const { renderPmTable } = await import('../ui/pm.js')
    cmd.log(renderPmTable(result))
    return result
  },
}
