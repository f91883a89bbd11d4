import { Flags } from '@oclif/core'
import { DaemonCommand, vmNameArg } from '../../../cli/daemon-command.js'
import { hexFlag, intFlag } from '../../../cli/flags.js'
import type { VmDetails } from '../../../core/vmm/manager.js'
import type { Wire } from '../../../core/daemon/protocol.js'
import type { VmJson } from '../../../ui/vm.js'

export default class VmRegsSet extends DaemonCommand {
  static override summary = 'Set a vCPU’s registers (SET_VCPU_REGS) from a preset, flags or a file.'

  static override description = `Presets: real-mode (CR0 0x30, CS base from the entry's high bits and IP from its low 16,
as vm-sample does), protected-mode (flat 32-bit segments, paging off, CR0 0x31, as acrn-dm
enters a 32-bit ELF) and long-mode (64-bit: paging on with the page tables at --cr3,
which is required, PAE, EFER LME|LMA). On the simulation the vCPU executes from there once
the VM starts. The VM must not be running. --file takes JSON or YAML: {vcpu, preset, rip, rsp, cr0, cr3, cr4}.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo --vcpu 0 --rip 0x0',
    '<%= config.bin %> <%= command.id %> demo --vcpu 0 --preset protected-mode --rip 0x100000',
    '<%= config.bin %> <%= command.id %> demo --preset long-mode --rip 0x2000 --cr3 0x1000',
    '<%= config.bin %> <%= command.id %> demo --file regs.json',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    vcpu: intFlag('vcpu', 0n, 15n)({ description: 'The vCPU.', default: 0 }),
    preset: Flags.string({
      description: 'Register preset.',
      options: ['real-mode', 'protected-mode', 'long-mode'],
      default: 'real-mode',
    }),
    rip: hexFlag('rip')({ description: 'Entry point (guest physical address).' }),
    rsp: hexFlag('rsp')({ description: 'Stack pointer.' }),
    cr0: hexFlag('cr0')({ description: 'CR0 instead of the preset’s.' }),
    cr3: hexFlag('cr3')({ description: 'CR3.' }),
    cr4: hexFlag('cr4')({ description: 'CR4.' }),
    file: Flags.string({
      description: 'Registers from a JSON/YAML file.',
      helpValue: 'FILE',
      exclusive: ['rip', 'rsp', 'cr0', 'cr3', 'cr4'],
    }),
  }

  async run(): Promise<VmJson> {
    const { args, flags } = await this.parse(VmRegsSet)
    let regs: Record<string, unknown> = {
      vcpu: flags.vcpu,
      preset: flags.preset,
      ...Object.fromEntries(
        (['rip', 'rsp', 'cr0', 'cr3', 'cr4'] as const)
          .filter((r) => flags[r] !== undefined)
          .map((r) => [r, flags[r]]),
      ),
    }
    if (flags.file) {
      const { specFromObject } = await import('../../../core/vmm/spec.js')
      const { readUserFile } = await import('../../../core/user-file.js')
      const { parse } = await import('yaml')
      const text = readUserFile(flags.file, {
        flag: '--file',
        what: 'registers file',
        maxBytes: 1 << 16,
        sizeHint: 'it holds one vCPU’s registers (see `hsmctl vm regs set --help`)',
      }).toString('utf8')
      let doc: unknown
      try {
        doc = parse(text)
      } catch (e) {
        const { UsageError } = await import('../../../core/errors.js')
        throw new UsageError(
          `${flags.file}: not valid JSON or YAML: ${(e as Error).message.split('\n')[0]}`,
          { flag: '--file' },
        )
      }
      const [parsed] = specFromObject({ name: args.name, regs: [doc] }, flags.file).regs
      regs = { ...parsed }
    }
    const vm = await this.call<Wire<VmDetails>>('vm.regs', { name: args.name, ...regs })
    this.log(`set registers of ${args.name} vCPU ${String(regs.vcpu)} (${String(regs.preset)})`)
    const { vmJson } = await import('../../../ui/vm.js')
    return vmJson(vm)
  }
}
