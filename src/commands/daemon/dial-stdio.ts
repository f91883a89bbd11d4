import { Flags } from '@oclif/core'
import { HsmCommand } from '../../cli/base-command.js'
import { backendFlag } from '../../cli/flags.js'
import type { Backend } from '../../core/daemon/paths.js'

export default class DaemonDialStdio extends HsmCommand {
  static override summary =
    "Connect stdin and stdout to this host's hsmd (what `--host ssh://...` runs on the far side)."

  static override description = `\`hsmctl --host ssh://HOST ...\` runs \`ssh HOST hsmctl daemon dial-stdio\`, as \`docker -H
ssh://\` runs \`docker system dial-stdio\`: this command starts hsmd if none runs (as any
command does; --no-start only reaches a running one), writes one line saying it reached
it, then passes bytes both ways between its stdio and hsmd's socket until either side
closes. If it cannot reach hsmd it writes the error as one JSON-RPC line (id null) and
exits with that error's code. It is not meant to be run by hand.`

  static override examples = ['ssh edge1 <%= config.bin %> <%= command.id %> --backend sim']

  static override enableJsonFlag = false

  static override flags = {
    backend: backendFlag,
    'no-start': Flags.boolean({ description: 'Do not start hsmd; say whether it runs.' }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(DaemonDialStdio)
    const { dialStdio } = await import('../../core/daemon/ssh/dial-stdio.js')
    const code = await dialStdio({
      backend: flags.backend as Backend,
      start: !flags['no-start'],
      stdin: process.stdin,
      stdout: process.stdout,
      stderr: process.stderr,
    })
    process.exitCode = code
  }
}
