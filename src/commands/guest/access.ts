import { Flags } from '@oclif/core'
import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { hexFlag, intFlag } from '../../cli/flags.js'

interface AccessResult {
  name: string
  vcpu: number
  type: string
  dir: string
  addr: bigint
  size: number
  value: bigint
  result: bigint
}

export default class GuestAccess extends DaemonCommand {
  static override summary =
    'Make a vCPU perform a port or MMIO access (simulation only); prints what the guest sees.'

  static override description = `The access traps to the hypervisor, becomes an I/O request in the vCPU's slot and is
dispatched like real guest traffic: to the kernel's ioeventfd client or to hsmd's device
models (the UART at 0x3F8; all-ones for unclaimed reads). The VM must be running.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo --vcpu 0 --pio 0x3f8 --write 0x41 --size 1',
    '<%= config.bin %> <%= command.id %> demo --vcpu 0 --mmio 0xfed00000 --read --size 4',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    vcpu: intFlag('vcpu', 0n, 15n)({ description: 'The vCPU that makes the access.', default: 0 }),
    pio: hexFlag('pio', { max: 0xffffn })({
      description: 'Port address.',
      exactlyOne: ['pio', 'mmio'],
      helpValue: 'PORT',
    }),
    mmio: hexFlag('mmio')({ description: 'Guest physical address.', exactlyOne: ['pio', 'mmio'] }),
    read: Flags.boolean({ description: 'Read.', exactlyOne: ['read', 'write'] }),
    write: hexFlag('write')({
      description: 'Write this value.',
      exactlyOne: ['read', 'write'],
      helpValue: 'VALUE',
    }),
    size: intFlag(
      'size',
      1n,
      8n,
    )({ description: 'Access size in bytes (1, 2, 4; 8 for MMIO).', default: 4 }),
  }

  async run(): Promise<AccessResult> {
    const { args, flags } = await this.parse(GuestAccess)
    const type = flags.pio !== undefined ? 'pio' : 'mmio'
    const result = await this.call<AccessResult>('guest.access', {
      name: args.name,
      vcpu: flags.vcpu,
      type,
      dir: flags.read ? 'read' : 'write',
      addr: flags.pio ?? flags.mmio,
      size: flags.size,
      value: flags.write ?? 0n,
    })
    const addr = `0x${BigInt(result.addr).toString(16)}`
    this.log(
      flags.read
        ? `${type.toUpperCase()} read  ${addr} size ${flags.size}: 0x${BigInt(result.result).toString(16)}`
        : `${type.toUpperCase()} write ${addr} size ${flags.size}: 0x${BigInt(result.value).toString(16)} done`,
    )
    return result
  }
}
