import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { intFlag } from '../../cli/flags.js'
import type { Launched } from '../../core/acrn-dm/supervisor.js'
import type { VmJson } from '../../ui/vm.js'

export default class VmStart extends DaemonCommand {
  static override summary =
    'Start a created VM (START_VM), a journaled one (recreated first), or a registered launch script.'

  static override description = `A VM that is only journaled (an earlier daemon held it, \`vm list\` shows it journaled)
is recreated from its journal, as by \`vm apply NAME\`, and left running.

A launch script registered with \`vm add\` (or acrnctl): runs it with bash and its
registered arguments in the background, in a session of its own, its output in a log
(\`vm log NAME\`), and returns once its VM is up (acrn-dm's vCPU thread runs, and on the
simulation the HSM runs the VM), or fails with the script's own last lines of output
(exit 6) if it exits first, or exit 7 after --timeout (left running). On the simulation
(--backend sim) the script's acrn-dm runs under the device shim, against the daemon's
simulation, as \`sim exec\` runs a program.`

  static override examples = ['<%= config.bin %> <%= command.id %> demo']

  static override args = { name: vmNameArg }

  static override flags = {
    timeout: intFlag(
      'timeout',
      1n,
      86_400n,
    )({
      description: 'Launch scripts: seconds the script may take to bring its VM up.',
      default: 60,
    }),
  }

  async run(): Promise<VmJson | Launched> {
    const { args, flags } = await this.parse(VmStart)
    const { ownerOrHsmd } = await import('../../core/acrn-dm/owners/locate.js')
    const owner = await ownerOrHsmd(args.name, flags)
    const started = await owner.start(this.verbContext(flags), { timeoutSeconds: flags.timeout })
    if (started.by === 'script') {
      const { launched } = started
      this.log(
        `started ${args.name} (acrn-dm pid ${launched.pid}); its output: hsmctl vm log ${args.name}`,
      )
      return launched
    }
    const { vm } = started
    // a VM only journaled is recreated first (as `vm apply NAME`)
    if (vm.recreated) process.stderr.write(`hsmctl: recreated ${vm.name} from its journal\n`)
    const { renderVmLine, vmJson } = await import('../../ui/vm.js')
    this.log(renderVmLine(vm))
    const execution = vm.execution as { reason?: string } | undefined
    // the VM runs, but nothing it was loaded with will execute: say so where it is seen
    if (execution?.reason)
      this.logToStderr(`note: vCPUs do not execute guest code: ${execution.reason}`)
    return vmJson(vm)
  }
}
