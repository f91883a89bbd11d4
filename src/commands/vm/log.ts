import { Flags } from '@oclif/core'
import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'

export default class VmLog extends DaemonCommand {
  static override localOnly = 'reads a launch script’s log on this machine'

  static override summary =
    'Print the output of a launch script `vm start` ran (acrn-dm’s own log); --follow keeps printing.'

  static override description = `\`vm start\` runs a registered script in the background with its stdout and stderr in
$HSMCTL_STATE_DIR/acrn-dm/NAME.log (the run before stays as NAME.log.1); its last line says
how the script ended. --follow prints what comes next until the script has exited, or
Ctrl-C. VMs started by acrnctl or by hand have no log here.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> vm1',
    '<%= config.bin %> <%= command.id %> vm1 --follow',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    follow: Flags.boolean({
      char: 'f',
      description: 'Keep printing until the script exits or Ctrl-C.',
    }),
  }

  async run(): Promise<{ name: string; path: string; text: string; exitStatus: number | null }> {
    const { args, flags } = await this.parse(VmLog)
    const [{ logPaths, lastExitStatus }, { stateDir }, { readPrivateFile }] = await Promise.all([
      import('../../core/acrn-dm/supervisor.js'),
      import('../../core/daemon/paths.js'),
      import('../../core/daemon/private-files.js'),
    ])
    const { log } = logPaths(stateDir(), args.name)
    let text: Buffer
    try {
      text = readPrivateFile(log)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
      // no log: the VM's owner says why (a script not started here, a VM hsmctl did not start)
      const { ownerOf } = await import('../../core/acrn-dm/owners/locate.js')
      throw (await ownerOf(args.name, flags)).refusal('log')
    }
    if (!this.jsonEnabled()) process.stdout.write(text)
    if (flags.follow && !this.jsonEnabled()) {
      const { currentAbortSignal } = await import('../../cli/shell/host.js')
      const { setTimeout: sleep } = await import('node:timers/promises')
      const signal = currentAbortSignal()
      let offset = text.length
      while (!signal.aborted) {
        const ended = lastExitStatus(stateDir(), args.name) !== undefined
        const now = readPrivateFile(log)
        if (now.length > offset) process.stdout.write(now.subarray(offset))
        offset = Math.max(offset, now.length)
        if (ended) break
        await sleep(200, undefined, { signal }).catch(() => {})
      }
    }
    const status = lastExitStatus(stateDir(), args.name)
    return { name: args.name, path: log, text: text.toString('utf8'), exitStatus: status ?? null }
  }
}
