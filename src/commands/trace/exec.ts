import { Args, Flags } from '@oclif/core'
import { HsmCommand } from '../../cli/base-command.js'
import { backendFlag, hostFlag } from '../../cli/flags.js'
import type { Backend } from '../../core/daemon/paths.js'
import { UsageError } from '../../core/errors.js'

export default class TraceExec extends HsmCommand {
  static override summary =
    'Run a program under the tap: its HSM ioctls and I/O requests stream to hsmd.'

  static override description = `Like \`strace PROGRAM\`: the program runs unchanged with helper/build/libhsm-tap.so
preloaded (LD_PRELOAD, after any libraries already there) and HSM_TAP_SOCKET set to the
daemon's tap socket (helper/TAP.md). The tap passes every call on to the device unchanged
and streams to hsmd each HSM ioctl (\`hsmctl ioctl log\`) and each I/O request the program
completes: its VMs' traffic shows in \`ioreq watch\`, \`tail\` and \`record\` like any
other, by the name the program gave the VM.

On the sim backend the tap is stacked on the device shim (the tap first) and the program
runs against the daemon's simulation, as under \`hsmctl sim exec\`; the daemon is asked
to serve its simulation if it does not already. On the native backend the program talks
to the real /dev/acrn_hsm.

Everything after PROGRAM is the program's own; \`--\` before PROGRAM ends hsmctl's flags
too. stdin, stdout and stderr are the program's. SIGINT, SIGTERM and SIGHUP sent to hsmctl
are passed on to the program, and hsmctl exits with the program's status, or 128 + N when
signal N killed it. Before the program runs, hsmctl's own failures have the usual exit
codes, and 127 (not found) or 126 (not executable) for PROGRAM, as sh reports them.
--json does not apply: the output is the program's.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> -- helper/build/vm-sample',
    '<%= config.bin %> <%= command.id %> --backend native -- acrn-dm -m 2048M -s 0:0,hostbridge -s 1:0,lpc -l com1,stdio vm1',
  ]

  static override strict = false

  static override args = {
    program: Args.string({
      name: 'PROGRAM',
      description: 'The program, found on PATH as sh finds it; its arguments follow.',
      required: true,
    }),
  }

  static override flags = {
    host: hostFlag,
    backend: backendFlag,
    transport: Flags.string({
      description:
        'Sim backend: how the shim under the tap talks to the daemon: auto (the shared-memory ring when offered), ring (the same, and say so when not), socket.',
      options: ['auto', 'ring', 'socket'],
      default: 'auto',
      env: 'HSM_SHIM_TRANSPORT',
    }),
  }

  static override enableJsonFlag = false

  async run(): Promise<void> {
    const [simExec, tapExec] = await Promise.all([
      import('../../core/native/sim-exec.js'),
      import('../../core/native/tap-exec.js'),
    ])
    const split = simExec.splitExecArgv(this.argv, ['--transport', '--backend', '--host'])
    // only hsmctl's own flags: the program's arguments are not parsed
    const { flags } = await this.parse(
      { flags: TraceExec.flags, baseFlags: TraceExec.baseFlags, args: {}, strict: true },
      split.own,
    )
    const { singleHost } = await import('../../cli/daemon-command.js')
    await singleHost(this.id, flags.host, 'runs a program on this machine against its own hsmd')
    if (split.program === undefined) {
      throw new UsageError('PROGRAM is missing', {
        hint: 'hsmctl trace exec [--backend sim|native] [--transport auto|ring|socket] -- PROGRAM [ARGS...]',
      })
    }
    const backend = flags.backend as Backend
    // bad input changes nothing: look for the program and the libraries before the daemon
    tapExec.builtTap()
    if (backend === 'sim') simExec.builtShim()
    const path = await simExec.findProgram(split.program, process.env)
    const { ensureDaemon } = await import('../../core/daemon/autostart.js')
    const client = await ensureDaemon({
      backend,
      onStart: ({ pid, socket }) =>
        process.stderr.write(
          `hsmctl: started the hsmd daemon (pid ${pid}, ${socket}); stop it with \`hsmctl daemon stop\`\n`,
        ),
    })
    let setup: import('../../core/native/tap-exec.js').TapSetup
    try {
      setup = await tapExec.tapSetup(client, {
        backend,
        transport: flags.transport as import('../../core/native/sim-exec.js').ShimTransport,
        shim: () => simExec.builtShim(),
        said: (line) => process.stderr.write(line + '\n'),
      })
    } finally {
      client.close()
    }
    const env = tapExec.tapEnvironment(process.env, setup)
    process.exitCode = await simExec.runProgram(path, split.program, split.args, env)
  }
}
