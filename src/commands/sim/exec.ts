import { Args, Flags } from '@oclif/core'
import { HsmCommand } from '../../cli/base-command.js'
import { hostFlag } from '../../cli/flags.js'
import { UsageError } from '../../core/errors.js'

export default class SimExec extends HsmCommand {
  static override summary =
    "Run a program with its /dev/acrn_hsm served by hsmd's simulation (the device shim preloaded)."

  static override description = `Like \`strace PROGRAM\`: the program runs unchanged with helper/build/libhsm-shim.so
preloaded (LD_PRELOAD, after any libraries already there) and HSM_SHIM_SOCKET set, so its
opens, ioctls and stats of /dev/acrn_hsm reach the simulated platform of the sim daemon
(helper/SHIM.md). The daemon is started if need be, and asked to serve its simulation to
shimmed programs if it does not already (\`daemon run --serve-sim\`): on
hsmd-sim-shim.sock in its runtime directory, until it stops. The program's VMs show in
\`vm list\` with it as their holder, and \`guest access\`, \`ioreq tail\` and the other
commands reach them.

Everything after PROGRAM is the program's own; \`--\` before PROGRAM ends hsmctl's flags
too. stdin, stdout and stderr are the program's. SIGINT, SIGTERM and SIGHUP sent to hsmctl
are passed on to the program (Ctrl-C on a terminal reaches both, as one process group),
and hsmctl exits with the program's status, or 128 + N when signal N killed it. Before
the program runs, hsmctl's own failures have the usual exit codes, and 127 (not found) or
126 (not executable) for PROGRAM, as sh reports them. --json does not apply: the output
is the program's.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> -- helper/build/vm-sample',
    '<%= config.bin %> <%= command.id %> -- acrn-dm -m 128M --cpu_affinity 1 -s 0:0,hostbridge -s 1:0,lpc -l com1,stdio -E guest.elf demo',
    '<%= config.bin %> <%= command.id %> --transport socket -- helper/build/vm-sample',
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
    transport: Flags.string({
      description:
        'How the shim talks to the daemon: auto (the shared-memory ring when the daemon offers it), ring (the same, and say so when it does not), socket (the unix socket alone).',
      options: ['auto', 'ring', 'socket'],
      default: 'auto',
      env: 'HSM_SHIM_TRANSPORT',
    }),
  }

  static override enableJsonFlag = false

  async run(): Promise<void> {
    const exec = await import('../../core/native/sim-exec.js')
    const split = exec.splitExecArgv(this.argv, ['--transport', '--host'])
    // only hsmctl's own flags: the program's arguments are not parsed
    const { flags } = await this.parse(
      { flags: SimExec.flags, baseFlags: SimExec.baseFlags, args: {}, strict: true },
      split.own,
    )
    const { singleHost } = await import('../../cli/daemon-command.js')
    await singleHost(this.id, flags.host, 'runs a program on this machine against its own hsmd')
    if (split.program === undefined) {
      throw new UsageError('PROGRAM is missing', {
        hint: 'hsmctl sim exec [--transport auto|ring|socket] -- PROGRAM [ARGS...]',
      })
    }
    // bad input changes nothing: look for the program and the shim before the daemon
    const shim = exec.builtShim()
    const path = await exec.findProgram(split.program, process.env)
    const { ensureDaemon } = await import('../../core/daemon/autostart.js')
    const client = await ensureDaemon({
      backend: 'sim',
      onStart: ({ pid, socket }) =>
        process.stderr.write(
          `hsmctl: started the hsmd daemon (pid ${pid}, ${socket}); stop it with \`hsmctl daemon stop\`\n`,
        ),
    })
    let serving: import('../../core/daemon/sim-serving.js').SimServing
    try {
      serving = await client.call('sim.serve')
    } finally {
      client.close()
    }
    if (serving.started) {
      process.stderr.write(
        `hsmctl: hsmd serves its simulation to shimmed programs on ${serving.socket} (${serving.transport})\n`,
      )
    }
    const env = exec.shimEnvironment(process.env, {
      shim,
      socket: serving.socket,
      transport: flags.transport as import('../../core/native/sim-exec.js').ShimTransport,
    })
    process.exitCode = await exec.runProgram(path, split.program, split.args, env)
  }
}
