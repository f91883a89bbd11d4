// What /proc says about an acrn-dm process: whether the pid still is the acrn-dm that made
// a socket (pids are reused), its command line, its age, its session, and whether its
// vCPU thread has started (acrn-dm names it `vcpu 0` once the VM is set up, just before
// START_VM: main.c, start_thread).

import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export interface ProcessInfo {
  pid: number
  /** argv, as /proc/PID/cmdline has it. */
  argv: string[]
  /** The session it belongs to (a launched script's supervisor leads one). */
  session: number
  /** Seconds since it started. */
  uptimeSeconds: number
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1')
  } catch {
    return undefined
  }
}

const CLOCK_TICKS = 100 // sysconf(_SC_CLK_TCK) on Linux x86-64

/** The process, or undefined when it has exited (or /proc cannot be read). */
export function processInfo(pid: number, proc = '/proc'): ProcessInfo | undefined {
  const stat = read(join(proc, String(pid), 'stat'))
  const cmdline = read(join(proc, String(pid), 'cmdline'))
  if (stat === undefined || cmdline === undefined) return undefined
  // the fields after the command name, which may itself hold spaces and parentheses
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined // exited, not yet reaped
  const session = Number(fields[3])
  const startTicks = Number(fields[19])
  const uptime = Number((read(join(proc, 'uptime')) ?? '0').split(' ')[0])
  return {
    pid,
    argv: cmdline.split('\0').filter((a, i, all) => i < all.length - 1 || a !== ''),
    session,
    uptimeSeconds: Math.max(0, Math.round(uptime - startTicks / CLOCK_TICKS)),
  }
}

/**
 * The acrn-dm that made `NAME.monitor.PID.socket`, if that pid still is it: acrn-dm takes
 * the VM name as its last argument. A pid now used by another program is not it.
 */
export function acrnDmProcess(pid: number, name: string, proc = '/proc'): ProcessInfo | undefined {
  const info = processInfo(pid, proc)
  return info && info.argv.at(-1) === name ? info : undefined
}

/** Whether acrn-dm's vCPU thread runs: the VM is set up and START_VM follows. */
export function vcpuThreadStarted(pid: number, proc = '/proc'): boolean {
  let tasks: string[]
  try {
    tasks = readdirSync(join(proc, String(pid), 'task'))
  } catch {
    return false
  }
  return tasks.some((t) => read(join(proc, String(pid), 'task', t, 'comm'))?.startsWith('vcpu '))
}
