// Commands that talk to hsmd: the --backend flag, the daemon started on demand (said once
// on stderr), prompts only on a terminal, and confirmation of destructive verbs. --host
// (HSMCTL_HOST) puts that hsmd on another machine, reached over ssh (core/daemon/ssh).

import { Args } from '@oclif/core'
import type { VerbContext } from '../core/acrn-dm/owners/owner.js'
import type { DaemonClient } from '../core/daemon/client.js'
import type { FleetMember } from '../core/daemon/ssh/fleet.js'
import type { Backend } from '../core/daemon/paths.js'
import { sshTarget, type SshHost } from '../core/daemon/ssh/hosts.js'
import type { DaemonTarget } from '../core/daemon/target.js'
import { UsageError } from '../core/errors.js'
import { HsmCommand } from './base-command.js'
import { backendFlag, hostFlag } from './flags.js'

export const vmNameArg = Args.string({
  name: 'NAME',
  description: 'The VM’s name.',
  required: true,
})

export function interactive(): boolean {
  return process.stdin.isTTY === true && process.stderr.isTTY === true
}

/** A command's id as the user types it (`vm start`, not `vm:start`). */
export const commandName = (id: string | undefined) => (id ?? 'this command').replaceAll(':', ' ')

/** Where a remote hsmctl's messages (hsmd started there) go: our stderr. */
export const remoteMessage = (text: string) => process.stderr.write(text + '\n')

/**
 * A command that cannot run on a remote host says why, before it does anything: `why`
 * completes "`vm stop` ..." (e.g. "manages acrn-dm through its monitor sockets on this
 * machine").
 */
export function refuseRemote(id: string, host: SshHost, why: string): UsageError {
  return new UsageError(`\`${id}\` ${why}, so it cannot run on ${host.label}`, {
    flag: '--host',
    hint: `run it on that host (ssh ${sshTarget(host)} hsmctl ${id} ...), or leave out --host (and HSMCTL_HOST) to run it here`,
  })
}

/**
 * For commands outside DaemonCommand that take --host: the one host it names (none:
 * this machine); `localOnly` (why the command cannot run remotely) refuses any host.
 */
export async function singleHost(
  id: string | undefined,
  value: string | undefined,
  localOnly?: string,
): Promise<SshHost | undefined> {
  if (!value) return undefined
  const { parseHosts } = await import('../core/daemon/ssh/hosts.js')
  const hosts = parseHosts(value)
  if (hosts.length === 0) return undefined
  if (localOnly) throw refuseRemote(commandName(id), hosts[0]!, localOnly)
  if (hosts.length > 1)
    throw new UsageError(
      `${hosts.length} hosts named; \`${commandName(id)}\` runs on one host at a time`,
      { flag: '--host', hint: 'name one host' },
    )
  return hosts[0]
}

/** --host's value as oclif would take it (the last one given, before `--`), or HSMCTL_HOST. */
export function hostValue(argv: readonly string[], env: NodeJS.ProcessEnv): string | undefined {
  let value: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!
    if (token === '--') break
    if (token === '--host' && i + 1 < argv.length) value = argv[++i]
    else if (token.startsWith('--host=')) value = token.slice('--host='.length)
  }
  return value ?? env.HSMCTL_HOST
}

export abstract class DaemonCommand extends HsmCommand {
  static override baseFlags = { ...HsmCommand.baseFlags, backend: backendFlag, host: hostFlag }

  /** Why this command cannot run with --host (it works on this machine's files or processes). */
  static localOnly: string | undefined

  /** It takes several hosts at once (`vm list`, `ioreq watch`); others refuse a fleet. */
  static fleet = false

  private client: DaemonClient | undefined
  private hostList: SshHost[] | undefined
  private members: FleetMember[] = []

  override async init(): Promise<void> {
    await super.init()
    const hosts = await this.hosts()
    const ctor = this.constructor as typeof DaemonCommand
    if (hosts.length === 0) return
    if (ctor.localOnly) throw refuseRemote(commandName(this.id), hosts[0]!, ctor.localOnly)
    if (hosts.length > 1 && !ctor.fleet)
      throw new UsageError(
        `${hosts.length} hosts named; \`${commandName(this.id)}\` runs on one host at a time`,
        {
          flag: '--host',
          hint: 'name one host; only `vm list` and `ioreq watch --once`/`--interval` query several',
        },
      )
  }

  /**
   * The hosts --host (or HSMCTL_HOST) names (none: this machine), read from the command
   * line without parsing the rest: init() refuses before run() parses and acts.
   */
  protected async hosts(): Promise<SshHost[]> {
    if (this.hostList) return this.hostList
    const value = hostValue(this.argv, process.env)
    if (!value) return (this.hostList = [])
    const { parseHosts } = await import('../core/daemon/ssh/hosts.js')
    return (this.hostList = parseHosts(value))
  }

  /**
   * A file hsmd itself opens (a payload): on a remote host it would look in its own file
   * system, so --host refuses it rather than load whatever is at that path there.
   */
  protected async localFileForDaemon(flag: string, path: string): Promise<void> {
    const [host] = await this.hosts()
    if (!host) return
    throw new UsageError(
      `${path} is a file on this machine, and hsmd on ${host.label} opens files on its own`,
      {
        flag,
        hint: `copy it there (scp) and run the command on that host (ssh ${sshTarget(host)} hsmctl ...)`,
      },
    )
  }

  /** The hsmd this command talks to (one host; fleets go through hosts()). */
  async target(): Promise<DaemonTarget> {
    const { flags } = await this.parse(this.constructor as typeof DaemonCommand)
    const [host] = await this.hosts()
    return { backend: (flags as { backend: Backend }).backend, host }
  }

  protected async daemon(): Promise<DaemonClient> {
    if (this.client) return this.client
    const { openDaemon } = await import('../core/daemon/target.js')
    this.client = await openDaemon(await this.target(), {
      onStart: ({ pid, socket }) =>
        process.stderr.write(
          `hsmctl: started the hsmd daemon (pid ${pid}, ${socket}); stop it with \`hsmctl daemon stop\`\n`,
        ),
      onRemoteMessage: remoteMessage,
    })
    return this.client
  }

  /** Every host --host names, each with its own ssh session (closed when the command ends). */
  protected async fleet(): Promise<FleetMember[]> {
    const [hosts, { backend }] = await Promise.all([this.hosts(), this.target()])
    const { connectRemote } = await import('../core/daemon/ssh/transport.js')
    this.members = await Promise.all(
      hosts.map(async (host) => ({
        host,
        client: await connectRemote(host, { backend, onRemoteMessage: remoteMessage }),
      })),
    )
    return this.members
  }

  /** One daemon call (public so that shared command bodies can use it). */
  async call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    return (await this.daemon()).call<T>(method, params)
  }

  /** What a VM's owner (core/acrn-dm/owners) needs to run a verb: hsmd, prompts, progress. */
  verbContext(flags: { backend: string; host?: string | undefined; yes?: boolean }): VerbContext {
    return {
      backend: flags.backend as Backend,
      host: flags.host,
      call: (method, params) => this.call(method, params),
      confirm: (question) => this.confirm(question, flags.yes ?? false),
      note: (line) => process.stderr.write(`hsmctl: ${line}\n`),
    }
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
    for (const m of this.members.splice(0)) m.client.close()
    await super.finally(error)
  }
}
