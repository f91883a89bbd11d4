// acrnctl's verbs on a running acrn-dm, through its monitor socket, done right: the
// request goes to exactly the named VM's socket, every refusal is an error with the reason
// (acrnctl prints "errno(-1)" and may exit 0), and a stop waits until the VM is gone.

import { existsSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { DeviceModelError, TimeoutError, UsageError } from '../errors.js'
import {
  DEVARGS_MAX,
  DM_MSG_NAMES,
  DmMsg,
  MonitorError,
  monitorRequest,
  suspendModeName,
  type MngrMsg,
  type MngrRequest,
} from './monitor.js'
import { acrnDmProcess } from './process.js'
import type { AcrnDmInstance } from './vms.js'

/** What a verb needs of an acrn-dm: its name, pid, socket and command line. */
export type Target = Pick<AcrnDmInstance, 'name' | 'pid' | 'path'> & { argv: readonly string[] }

export function targetOf(instance: AcrnDmInstance): Target {
  return {
    name: instance.name,
    pid: instance.pid,
    path: instance.path,
    argv: instance.process?.argv ?? [],
  }
}

/** Ask acrn-dm; a socket that cannot be reached or does not answer is an error with a hint. */
export async function ask(target: Target, req: MngrRequest, timeoutMs?: number): Promise<MngrMsg> {
  try {
    return await monitorRequest(target.path, req, timeoutMs)
  } catch (e) {
    if (!(e instanceof MonitorError)) throw e
    const what = `${DM_MSG_NAMES[req.msgid] ?? `message ${req.msgid}`} to ${target.name} (acrn-dm pid ${target.pid})`
    const f = e.failure
    switch (f.kind) {
      case 'connect':
        throw new DeviceModelError(
          `${what}: cannot connect to ${target.path}: ${f.code}`,
          f.code === 'EACCES'
            ? 'acrn-dm’s sockets are root’s: run hsmctl as root (sudo), as acrnctl must be'
            : 'acrn-dm may have exited meanwhile: see hsmctl vm list',
        )
      case 'timeout':
        throw new DeviceModelError(
          `${what}: no answer within ${f.ms} ms`,
          `acrn-dm is busy or hung; its output may say why (hsmctl vm log ${target.name}), and kill -TERM ${target.pid} ends it`,
        )
      default:
        throw new DeviceModelError(
          `${what}: ${e.message}`,
          'acrn-dm may have exited meanwhile: see hsmctl vm list',
        )
    }
  }
}

/** The power-event channel acrn-dm was started with, if any (its stop/suspend hooks). */
export function pmNotifyChannel(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--pm_notify_channel') return argv[i + 1]
    if (a.startsWith('--pm_notify_channel=')) return a.slice('--pm_notify_channel='.length)
  }
  return undefined
}

function hookRefusal(target: Target, verb: 'stop' | 'suspend', err: number): DeviceModelError {
  const channel = pmNotifyChannel(target.argv)
  const request = verb === 'stop' ? 'DM_STOP' : 'DM_SUSPEND'
  if (channel === undefined && err === -1) {
    return new DeviceModelError(
      `${target.name} (acrn-dm pid ${target.pid}) has no ${verb} hook: ${request} answered -1`,
      verb === 'stop'
        ? `acrn-dm asks the guest to shut down only when started with --pm_notify_channel (power_button, ioc or uart) in its launch script; without one, power it off: hsmctl vm stop ${target.name} --force`
        : 'acrn-dm asks the guest to suspend only when started with --pm_notify_channel (power_button, ioc or uart) in its launch script',
    )
  }
  return new DeviceModelError(
    `${target.name} (acrn-dm pid ${target.pid}): ${request} answered ${err} (the sum of its ${verb} hooks' results${channel ? `, channel ${channel}` : ''})`,
    `acrn-dm's output may say which hook failed: hsmctl vm log ${target.name}`,
  )
}

/** Whether the acrn-dm is gone: its socket removed and its process exited. */
export function isGone(target: Target, proc?: string): boolean {
  return !existsSync(target.path) && !acrnDmProcess(target.pid, target.name, proc)
}

/** Wait until the acrn-dm is gone, or time out. */
export async function waitGone(target: Target, timeoutMs: number, proc?: string): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    // a crash leaves the socket behind: a process that is gone is enough
    if (!acrnDmProcess(target.pid, target.name, proc)) return true
    if (Date.now() > deadline) return false
    await sleep(50)
  }
}

export interface StopResult {
  name: string
  pid: number
  force: boolean
  /** Seconds from the request until the process was gone. */
  seconds: number
}

/** DM_STOP, then wait until acrn-dm has exited (its VM destroyed). */
export async function stopVm(
  target: Target,
  options: { force: boolean; timeoutMs: number },
): Promise<StopResult> {
  const start = Date.now()
  const reply = await ask(target, { msgid: DmMsg.STOP, value: options.force ? 1 : 0 })
  if (reply.value !== 0) throw hookRefusal(target, 'stop', reply.value)
  if (!(await waitGone(target, options.timeoutMs))) {
    throw new TimeoutError(
      `${target.name} (acrn-dm pid ${target.pid}) still runs ${Math.round(options.timeoutMs / 1000)} s after it accepted DM_STOP${options.force ? ' with force' : ''}`,
      options.force
        ? `acrn-dm tears down at its next event; kill -TERM ${target.pid} ends it cleanly`
        : `the guest has not shut down; wait longer (--timeout), or power it off: hsmctl vm stop ${target.name} --force`,
    )
  }
  return {
    name: target.name,
    pid: target.pid,
    force: options.force,
    seconds: (Date.now() - start) / 1000,
  }
}

/** DM_SUSPEND: the guest's suspend hooks. */
export async function suspendVm(target: Target): Promise<{ name: string; mode: string }> {
  const reply = await ask(target, { msgid: DmMsg.SUSPEND })
  if (reply.value !== 0) throw hookRefusal(target, 'suspend', reply.value)
  return { name: target.name, mode: await queryMode(target) }
}

/** DM_RESUME with a wake-up reason: acrn-dm's own hook wakes a suspended VM. */
export async function resumeVm(
  target: Target,
  reason: number,
): Promise<{ name: string; mode: string }> {
  const reply = await ask(target, { msgid: DmMsg.RESUME, value: reason })
  if (reply.value !== 0) {
    throw new DeviceModelError(
      `${target.name} (acrn-dm pid ${target.pid}): DM_RESUME answered ${reply.value} (the sum of its resume hooks' results)`,
      `acrn-dm's output may say why: hsmctl vm log ${target.name}`,
    )
  }
  return { name: target.name, mode: await queryMode(target) }
}

/** DM_QUERY's suspend mode, by name. */
export async function queryMode(target: Target): Promise<string> {
  return suspendModeName((await ask(target, { msgid: DmMsg.QUERY })).value)
}

/** `SLOT,PATH` as DM_BLKRESCAN takes it (acrn-dm: a decimal slot, a comma, the path). */
export function parseRescan(text: string): { slot: number; path: string } {
  const m = /^(\d{1,2}),(.+)$/.exec(text)
  const hint =
    'give the PCI slot of a virtio-blk device started with `nodisk`, and the new backing file: 3,/var/lib/disk.img'
  if (!m) throw new UsageError(`'${text}' is not SLOT,PATH`, { hint })
  const slot = Number(m[1])
  if (slot > 31)
    throw new UsageError(`slot ${slot} does not exist: PCI slots are 0 to 31`, { hint })
  if (Buffer.byteLength(text) > DEVARGS_MAX) {
    throw new UsageError(
      `'${text}' is ${Buffer.byteLength(text)} bytes; acrn-dm takes at most ${DEVARGS_MAX}`,
      { hint },
    )
  }
  if (m[2]!.includes('nodisk')) {
    throw new UsageError('acrn-dm refuses a path holding "nodisk" (it means no backing file)', {
      hint,
    })
  }
  return { slot, path: m[2]! }
}

/** The virtio-blk devices of acrn-dm's command line: `-s SLOT[:FUNC],virtio-blk,...`. */
export function virtioBlkSlots(argv: readonly string[]): { slot: number; backing: string }[] {
  const out: { slot: number; backing: string }[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const spec =
      a === '-s' || a === '--pci_slot' ? argv[++i] : a.startsWith('-s') ? a.slice(2) : undefined
    const m =
      spec === undefined ? null : /^(\d+)(?::\d+)?(?::\d+)?,virtio-blk(?:,(.*))?$/.exec(spec)
    if (m) out.push({ slot: Number(m[1]), backing: m[2] ?? '' })
  }
  return out
}

/** DM_BLKRESCAN: give an empty (`nodisk`) virtio-blk device a backing file. */
export async function blkrescanVm(
  target: Target,
  rescan: { slot: number; path: string },
): Promise<{ name: string; slot: number; path: string }> {
  const reply = await ask(target, {
    msgid: DmMsg.BLKRESCAN,
    devargs: `${rescan.slot},${rescan.path}`,
  })
  if (reply.value !== 0) {
    const blks = virtioBlkSlots(target.argv)
    const here = blks.find((b) => b.slot === rescan.slot)
    const why =
      blks.length === 0
        ? 'it has no virtio-blk device'
        : !here
          ? `slot ${rescan.slot} is not a virtio-blk device (${blks.map((b) => `slot ${b.slot}`).join(', ')} ${blks.length === 1 ? 'is' : 'are'})`
          : !here.backing.includes('nodisk')
            ? `slot ${rescan.slot} has a backing file already (${here.backing.split(',')[0]}); acrn-dm only fills a device started with nodisk`
            : 'acrn-dm could not open the file, or the slot was filled already'
    throw new DeviceModelError(
      `${target.name} (acrn-dm pid ${target.pid}): DM_BLKRESCAN ${rescan.slot},${rescan.path} answered ${reply.value}: ${why}`,
      `acrn-dm's output says more: hsmctl vm log ${target.name}`,
    )
  }
  return { name: target.name, ...rescan }
}
