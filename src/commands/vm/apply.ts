import { Flags } from '@oclif/core'
import { DaemonCommand } from '../../cli/daemon-command.js'
import type { VmDetails } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { VmJson } from '../../ui/vm.js'

export default class VmApply extends DaemonCommand {
  static override summary =
    'Create a whole VM from one spec file (YAML or JSON), as `vm dump` prints it.'

  static override description = `The spec names the VM and lists its vCPUs, flags, memory segments (with payload
files, relative to the spec), registers, pass-through devices, ioeventfds, irqfds and the
state to leave it in. If any step fails, the VM is destroyed again: nothing is half-made.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> -f demo.yaml',
    '<%= config.bin %> vm dump demo > demo.yaml',
  ]

  static override flags = {
    file: Flags.string({
      char: 'f',
      description: 'The spec file.',
      required: true,
      helpValue: 'FILE',
    }),
  }

  async run(): Promise<VmJson> {
    const { flags } = await this.parse(VmApply)
    const { dirname, resolve } = await import('node:path')
    const { parseSpec, specToObject } = await import('../../core/vmm/spec.js')
    const { readUserFile } = await import('../../core/user-file.js')
    const { MAX_LINE } = await import('../../core/daemon/protocol.js')
    // bounded before it is parsed: a spec larger than hsmd's request limit cannot be sent
    const text = readUserFile(flags.file, {
      flag: '--file',
      what: 'spec file',
      maxBytes: MAX_LINE,
      sizeHint:
        'hsmd takes requests of at most 1 MiB, and a VM’s spec is a few kilobytes (see `hsmctl vm dump NAME`)',
    }).toString('utf8')
    const spec = parseSpec(text, flags.file)
    // payload paths are relative to the spec; the daemon gets absolute ones
    for (const m of spec.memory)
      if (m.file !== undefined) m.file = resolve(dirname(flags.file), m.file)
    const vm = await this.call<Wire<VmDetails>>('vm.apply', {
      spec: specToObject(spec),
      source: flags.file,
    })
    const { renderVm, vmJson } = await import('../../ui/vm.js')
    this.log(renderVm(vm))
    return vmJson(vm)
  }
}
