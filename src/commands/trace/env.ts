import { Flags } from '@oclif/core'
import { DaemonCommand } from '../../cli/daemon-command.js'
import type { Backend } from '../../core/daemon/paths.js'

export interface TraceEnvResult {
  /** The line to add to a launch script (sh). */
  line: string
  /** The libraries it preloads, in order (added after any already in LD_PRELOAD). */
  preload: string[]
  /** The variables it sets besides LD_PRELOAD. */
  env: Record<string, string>
}

export default class TraceEnv extends DaemonCommand {
  static override summary =
    'Print the environment line that runs a launch script’s program under the tap.'

  static override description = `One sh line to add to a launch script (before acrn-dm runs): it adds
helper/build/libhsm-tap.so to LD_PRELOAD and names the daemon's tap socket, so the
program's HSM ioctls and I/O requests stream to hsmd as under \`hsmctl trace exec\`
(helper/TAP.md). Other programs the script runs load the tap too and pay nothing: it
starts with a process's first HSM call. On the sim backend the line stacks the tap on the
device shim, and the daemon is asked to serve its simulation if it does not already.
The daemon must be running when the program starts for its first calls to be seen;
until it answers, the tap keeps up to 1 MiB of records and says so once on stderr.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> --backend native',
    'eval "$(<%= config.bin %> <%= command.id %>)"',
  ]

  static override flags = {
    transport: Flags.string({
      description:
        'Sim backend: how the shim under the tap talks to the daemon (auto, ring, socket).',
      options: ['auto', 'ring', 'socket'],
      default: 'auto',
    }),
  }

  async run(): Promise<TraceEnvResult> {
    const { flags } = await this.parse(TraceEnv)
    const [tapExec, simExec] = await Promise.all([
      import('../../core/native/tap-exec.js'),
      import('../../core/native/sim-exec.js'),
    ])
    const setup = await tapExec.tapSetup(await this.daemon(), {
      backend: flags.backend as Backend,
      transport: flags.transport as import('../../core/native/sim-exec.js').ShimTransport,
      shim: () => simExec.builtShim(),
      said: (line) => process.stderr.write(line + '\n'),
    })
    const line = tapExec.tapEnvLine(setup)
    const all = tapExec.tapEnvironment({}, setup)
    const { LD_PRELOAD: _preload, ...env } = all as Record<string, string>
    if (!this.jsonEnabled()) process.stdout.write(line + '\n')
    return { line, preload: tapExec.tapLibraries(setup), env }
  }
}
