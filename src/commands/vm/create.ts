import { Args, Flags } from '@oclif/core'
import { DaemonCommand, interactive } from '../../cli/daemon-command.js'
import { affinityFlag, hexFlag, intFlag, sizeFlag } from '../../cli/flags.js'
import type { VmDetails } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { VmJson } from '../../ui/vm.js'

export default class VmCreate extends DaemonCommand {
  static override summary = 'Create a VM (CREATE_VM), with its default ioreq client served by hsmd.'

  static override description = `Opens /dev/acrn_hsm for the VM in the daemon, maps its ioreq page, creates the VM in the
hypervisor and the default ioreq client, and optionally maps RAM at guest address 0. The VM
is left created (not running): set registers and start it. On a terminal, without NAME, a
short wizard asks for the settings.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo --vcpus 1 --memory 64M',
    '<%= config.bin %> <%= command.id %> rt --cpu-affinity 0x6 --flag rt --flag lapic-passthrough',
    '<%= config.bin %> <%= command.id %> hello --memory 1M --payload hello.bin --entry real-mode --start',
  ]

  static override args = {
    name: Args.string({
      description:
        'Unique VM name: up to 15 letters, digits, _ . - (the hypervisor keeps 15 bytes).',
      required: false,
    }),
  }

  static override flags = {
    vcpus: intFlag(
      'vcpus',
      1n,
      16n,
    )({ description: 'Number of vCPUs (one pCPU each).', exclusive: ['cpu-affinity'] }),
    'cpu-affinity': affinityFlag({
      description: 'Bitmap of pCPUs for the vCPUs (0x6 = pCPUs 1 and 2).',
      helpValue: 'MASK',
    }),
    memory: sizeFlag('memory', { align: 4096n, min: 4096n })({
      description: 'RAM to map at guest address 0 (64M, 1G).',
    }),
    payload: Flags.string({
      description:
        'A flat binary loaded at guest address 0 of --memory; the BSP enters it in the --entry state.',
      helpValue: 'FILE',
      dependsOn: ['memory'],
    }),
    entry: Flags.string({
      description: 'The BSP’s entry state for --payload (as vm regs set --preset).',
      options: ['real-mode', 'protected-mode', 'long-mode'],
      dependsOn: ['payload'],
    }),
    rip: hexFlag('rip')({
      description: 'Where the payload is entered (default 0).',
      dependsOn: ['payload'],
    }),
    cr3: hexFlag('cr3')({
      description: 'long-mode: the page tables (PML4) the payload holds.',
      dependsOn: ['payload'],
    }),
    start: Flags.boolean({ description: 'Start the VM once it is set up (START_VM).' }),
    flag: Flags.string({
      description:
        'VM flag, by name (rt, lapic-passthrough, io-completion-polling, ...) or number; repeatable.',
      multiple: true,
    }),
  }

  async run(): Promise<VmJson> {
    const { args, flags } = await this.parse(VmCreate)
    const { parseVmFlag } = await import('../../core/vmm/flags.js')
    let name = args.name
    let vcpus = flags.vcpus
    let memory = flags.memory
    if (name === undefined) {
      if (!interactive()) {
        const { UsageError } = await import('../../core/errors.js')
        throw new UsageError('NAME is required when not running interactively', {
          hint: 'hsmctl vm create NAME [--vcpus N] [--memory SIZE]',
        })
      }
      // the wizard proposes what the flags would do: every pCPU a User VM may use here
      const { userVmAffinity } = await this.call<{ userVmAffinity: string }>('host.devices')
      const { MAX_VCPUS_PER_VM } = await import('../../core/abi/constants.js')
      let allowed = 0
      for (let mask = BigInt(userVmAffinity); mask; mask >>= 1n) allowed += Number(mask & 1n)
      const all = Math.min(allowed, MAX_VCPUS_PER_VM)
      const wizard = await import('../../ui/wizard.js')
      ;({ name, vcpus, memory } = await wizard.createVmWizard({ vcpus: vcpus ?? all, memory }))
      // all of them is the configured affinity (A.2): as `vm create NAME` asks for it
      if (flags.vcpus === undefined && vcpus === all) vcpus = undefined
    }
    const flagBits = (flags.flag ?? []).reduce((bits, f) => bits | parseVmFlag(f), 0n)
    if (flags.payload !== undefined) {
      await this.localFileForDaemon('--payload', flags.payload)
      // hsmd reads it (as the same user): a file it cannot read is said here, before any call
      const { checkUserFile } = await import('../../core/user-file.js')
      checkUserFile(flags.payload, { flag: '--payload' })
    }
    // one call: no other client's operation on the name falls between CREATE_VM and the RAM
    let vm = await this.call<Wire<VmDetails>>('vm.create', {
      name,
      ...(vcpus !== undefined ? { vcpus } : {}),
      ...(flags['cpu-affinity'] !== undefined ? { cpuAffinity: flags['cpu-affinity'] } : {}),
      flags: flagBits,
      ...(memory !== undefined ? { memory } : {}),
      ...(flags.payload ? { file: (await import('node:path')).resolve(flags.payload) } : {}),
    })
    if (flags.payload) {
      try {
        vm = await this.call<Wire<VmDetails>>('vm.regs', {
          name,
          vcpu: 0,
          preset: flags.entry ?? 'real-mode',
          rip: flags.rip ?? 0n,
          ...(flags.cr3 !== undefined ? { cr3: flags.cr3 } : {}),
        })
      } catch (e) {
        // a failed command changes nothing: no VM, and no console log of one
        await this.call('vm.destroy', { name, rollback: true }).catch(() => {})
        throw e
      }
    }
    if (flags.start) {
      vm = await this.call<Wire<VmDetails>>('vm.start', { name })
      const execution = vm.execution as { reason?: string } | undefined
      if (execution?.reason)
        this.logToStderr(`note: vCPUs do not execute guest code: ${execution.reason}`)
    }
    const { renderVm, vmJson } = await import('../../ui/vm.js')
    this.log(renderVm(vm))
    return vmJson(vm)
  }
}
