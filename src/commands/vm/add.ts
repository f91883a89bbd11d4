import { Args, Flags } from '@oclif/core'
import { DaemonCommand } from '../../cli/daemon-command.js'
import type { AddedScript } from '../../core/acrn-dm/launch-script.js'

export default class VmAdd extends DaemonCommand {
  static override localOnly = 'registers a launch script in this machine’s script registry'

  static override summary =
    'Register an acrn-dm launch script (and its arguments) as a VM to start later.'

  static override description = `Copies SCRIPT to NAME.sh and ARGS to NAME.args in acrnctl's registry,
/usr/share/acrn/conf/add (HSMCTL_ACRN_CONF_DIR), so that \`vm start NAME\` and acrnctl both
start it. Both files are written or neither.

The VM name is read from the script without running any of it (acrnctl runs the whole
script): it is the last argument of the command whose name ends in acrn-dm, expanded as bash
would, following quotes, line continuations, plain assignments above it (name=vm1, export,
arrays over several lines), the script's arguments ($1, \${1:-vm1}) and \${VAR:-default}.
A name made by a command substitution, arithmetic, a variable set by read, a loop or a
sourced file, or a positional parameter inside a function cannot be read: the error says
which line and why; give the name with --name. The name must be new (no registered script,
acrn-dm or hsmd VM has it), up to 15 letters, digits, _ and -, starting with a letter.
ARGS may not hold blanks or glob characters (NAME.args is one line that start splits).`

  static override examples = [
    '<%= config.bin %> <%= command.id %> launch_user_vm_id1.sh',
    '<%= config.bin %> <%= command.id %> launch.sh -- vm2 2G',
    '<%= config.bin %> <%= command.id %> generated.sh --name rtvm',
  ]

  static override strict = false

  static override args = {
    script: Args.string({
      name: 'SCRIPT',
      description: 'The launch script (bash); ARGS after it (or after --) are its arguments.',
      required: true,
    }),
  }

  static override flags = {
    name: Flags.string({
      description: 'The VM name, when it cannot be read from the script.',
      helpValue: 'NAME',
    }),
  }

  async run(): Promise<AddedScript> {
    const { args, argv, flags } = await this.parse(VmAdd)
    const scriptArgs = (argv as string[]).slice(1)
    const [
      { readUserFile },
      { registerLaunchScript },
      { acrnPaths },
      { resolve },
      { locateOwner },
    ] = await Promise.all([
      import('../../core/user-file.js'),
      import('../../core/acrn-dm/launch-script.js'),
      import('../../core/acrn-dm/paths.js'),
      import('node:path'),
      import('../../core/acrn-dm/owners/locate.js'),
    ])
    const source = resolve(args.script)
    // acrnctl reads at most 20 KiB; launch scripts are far smaller than this bound
    const text = readUserFile(source, {
      flag: 'SCRIPT',
      what: 'launch script',
      maxBytes: 1 << 20,
      regularOnly: true,
    })
    // a name taken anywhere: a registered script, a running acrn-dm, hsmd's or another's VM
    const { readLaunchScript } = await import('../../core/acrn-dm/launch-script.js')
    let candidate = flags.name
    try {
      candidate ??= readLaunchScript(text.toString('utf8'), scriptArgs).name
    } catch {
      // registerLaunchScript says why
    }
    const existing = candidate === undefined ? undefined : await locateOwner(candidate, flags)
    const taken = existing?.takenBy
    const added = registerLaunchScript({
      confDir: acrnPaths().confDir,
      source,
      text,
      args: scriptArgs,
      ...(flags.name !== undefined ? { name: flags.name } : {}),
      taken: () => taken,
    })
    this.log(
      `added ${added.name}: ${added.script}${added.args?.length ? ` (arguments: ${added.args.join(' ')})` : ''}` +
        (added.nameFrom === 'given'
          ? ', named by --name'
          : `, named on line ${added.nameFrom.line} of ${source}`),
    )
    return added
  }
}
