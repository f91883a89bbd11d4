// Commands that talk to hsmd: the --backend flag, the daemon started on demand (said once
// on stderr), prompts only on a terminal, and confirmation of destructive verbs.

import { Args } from '@oclif/core'
import type { DaemonClient } from '../core/daemon/client.js'
import type { Backend } from '../core/daemon/paths.js'
import { UsageError } from '../core/errors.js'
import { HsmCommand } from './base-command.js'
import { backendFlag } from './flags.js'

export const vmNameArg = Args.string({
  name: 'NAME',
  description: 'The VM’s name.',
  required: true,
})

export function interactive(): boolean {
  return process.stdin.isTTY === true && process.stderr.isTTY === true
}

export abstract class DaemonCommand extends HsmCommand {
  static override baseFlags = { ...HsmCommand.baseFlags, backend: backendFlag }

  private client: DaemonClient | undefined

  protected async daemon(): Promise<DaemonClient> {
    if (this.client) return this.client
    const { flags } = await this.parse(this.constructor as typeof DaemonCommand)
    const { ensureDaemon } = await import('../core/daemon/autostart.js')
    this.client = await ensureDaemon({
      backend: (flags as { backend: Backend }).backend,
      onStart: ({ pid, socket }) =>
        process.stderr.write(
          `hsmctl: started the hsmd daemon (pid ${pid}, ${socket}); stop it with \`hsmctl daemon stop\`\n`,
        ),
    })
    return this.client
  }

  /** One daemon call (public so that shared command bodies can use it). */
  async call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    return (await this.daemon()).call<T>(method, params)
  }

  /** Ask on a terminal; off a terminal, demand --yes (STYLE.md: never hang a script). */
  protected async confirm(question: string, yes: boolean): Promise<void> {
    if (yes) return
    if (!interactive()) {
      throw new UsageError('--yes is required when not running interactively', {
        hint: `${question} Add --yes to go ahead.`,
      })
    }
    const { confirm } = await import('../ui/prompt.js')
    const ok = await confirm({ message: question, default: false })
    if (!ok) {
      const { InterruptedError } = await import('../core/errors.js')
      throw new InterruptedError('cancelled; nothing was changed')
    }
  }

  protected override async finally(error: Error | undefined): Promise<void> {
    this.client?.close()
    await super.finally(error)
  }
}
