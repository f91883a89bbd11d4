// Who holds a VM that `vm` commands name, each kind behind one interface (issue 12 item 4):
//   hsmd.ts     hsmd's own VMs and its journaled specs: the daemon's verbs (start, pause,
//               reset, destroy, show), asked over its socket;
//   acrn-dm.ts  a running acrn-dm: acrnctl's verbs through its monitor socket (stop,
//               suspend, resume, blkrescan), reset (stop, start its script), destroy;
//   script.ts   a launch script registered with `vm add` or acrnctl, not running: start, del;
//   outside.ts  a VM of the HSM another process holds, which hsmctl cannot talk to;
//   gone.ts     only the monitor socket a crashed acrn-dm left behind.
// A verb an owner cannot do throws that owner's refusal, which says what to do instead.
// locate.ts finds a name's owner. (hsmd's own view of the same VMs: core/vmm/owners.)

import { NotFoundError, UsageError, type HsmctlError } from '../../errors.js'
import type { Backend } from '../../daemon/paths.js'
import type { Wire } from '../../daemon/protocol.js'
import type { ForgottenVm, HypervisorView, VmDetails } from '../../vmm/manager.js'
import type { StopResult } from '../lifecycle.js'
import type { Launched } from '../supervisor.js'
import type { VmDescription } from '../vms.js'

export type Verb =
  | 'start'
  | 'stop'
  | 'suspend'
  | 'resume'
  | 'reset'
  | 'blkrescan'
  | 'del'
  | 'destroy'
  | 'pause'
  | 'log'

/** What an owner needs from the command that runs a verb. */
export interface VerbContext {
  readonly backend: Backend
  /** --host: hsmd on another machine (acrn-dm's side is this machine's only). */
  readonly host?: string | undefined
  /** One hsmd call; the daemon is started on demand. */
  call<T>(method: string, params?: Record<string, unknown>): Promise<T>
  /** Ask before a destructive step (a prompt on a terminal, else --yes). */
  confirm(question: string): Promise<void>
  /** A line of progress for stderr. */
  note(line: string): void
}

/** `vm show`: hsmd's details of its VM, or what the HSM, monitor socket and registry know. */
export type Shown =
  | { by: 'hsmd'; vm: Wire<VmDetails> }
  | { by: 'other'; vm: VmDescription; view?: Wire<HypervisorView> }

/** `vm start`: hsmd started (or recreated) its VM, or a registered script was launched. */
export type Started =
  | { by: 'hsmd'; vm: Wire<VmDetails> & { recreated?: boolean } }
  | { by: 'script'; launched: Launched }

/** `vm reset`: hsmd reset its VM, or an acrn-dm was stopped and its script started again. */
export type Reset =
  | { by: 'hsmd'; vm: Wire<VmDetails> }
  | { by: 'acrn-dm'; result: { name: string; stopped: StopResult; started: Launched } }

/** `vm destroy`: hsmd destroyed (or forgot) its VM, or an acrn-dm was powered off. */
export type Destroyed =
  | { by: 'hsmd'; result: { name: string; vmid: number } | ForgottenVm }
  | { by: 'acrn-dm'; result: { name: string; vmid: number | null; pid: number } }

export interface VmOwner {
  readonly kind: 'hsmd' | 'acrn-dm' | 'script' | 'outside' | 'gone'
  readonly name: string
  /** What holds the name, for `vm add`'s refusal of a duplicate; undefined: it may be taken. */
  readonly takenBy: string | undefined
  /** The error saying why this owner cannot `verb` its VM, and what can be done instead. */
  refusal(verb: Verb): HsmctlError
  show(ctx: VerbContext): Promise<Shown>
  start(ctx: VerbContext, options: { timeoutSeconds: number }): Promise<Started>
  /** `force` asks first (ctx.confirm). */
  stop(ctx: VerbContext, options: { force: boolean; timeoutMs: number }): Promise<StopResult>
  suspend(): Promise<{ name: string; mode: string }>
  resume(reason: number): Promise<{ name: string; mode: string }>
  blkrescan(rescan: {
    slot: number
    path: string
  }): Promise<{ name: string; slot: number; path: string }>
  pause(ctx: VerbContext): Promise<Wire<VmDetails>>
  reset(ctx: VerbContext, options: { force: boolean; timeoutSeconds: number }): Promise<Reset>
  destroy(ctx: VerbContext): Promise<Destroyed>
  del(ctx: VerbContext): Promise<{ name: string; removed: string[] }>
}

/** Every verb refused; each owner overrides the verbs it has. */
export abstract class Owner implements VmOwner {
  abstract readonly kind: VmOwner['kind']
  abstract readonly takenBy: string | undefined
  constructor(readonly name: string) {}
  abstract refusal(verb: Verb): HsmctlError
  abstract show(ctx: VerbContext): Promise<Shown>

  async start(_ctx: VerbContext, _options: { timeoutSeconds: number }): Promise<Started> {
    throw this.refusal('start')
  }
  async stop(
    _ctx: VerbContext,
    _options: { force: boolean; timeoutMs: number },
  ): Promise<StopResult> {
    throw this.refusal('stop')
  }
  async suspend(): Promise<{ name: string; mode: string }> {
    throw this.refusal('suspend')
  }
  async resume(_reason: number): Promise<{ name: string; mode: string }> {
    throw this.refusal('resume')
  }
  async blkrescan(_rescan: {
    slot: number
    path: string
  }): Promise<{ name: string; slot: number; path: string }> {
    throw this.refusal('blkrescan')
  }
  async pause(_ctx: VerbContext): Promise<Wire<VmDetails>> {
    throw this.refusal('pause')
  }
  async reset(
    _ctx: VerbContext,
    _options: { force: boolean; timeoutSeconds: number },
  ): Promise<Reset> {
    throw this.refusal('reset')
  }
  async destroy(_ctx: VerbContext): Promise<Destroyed> {
    throw this.refusal('destroy')
  }
  async del(_ctx: VerbContext): Promise<{ name: string; removed: string[] }> {
    throw this.refusal('del')
  }
}

/** No VM of that name anywhere. */
export function noSuchVm(name: string): NotFoundError {
  return new NotFoundError(
    `no VM named '${name}'`,
    'see hsmctl vm list (names are matched exactly)',
  )
}

/** `--timeout S` as milliseconds. */
export function timeoutMs(seconds: number): number {
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new UsageError(`${seconds} is not a number of seconds above 0`, { flag: '--timeout' })
  }
  return Math.round(seconds * 1000)
}
