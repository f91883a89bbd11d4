// How long a poller spins before it sleeps, learned from its own waits: helper/hsm-spin.h's
// rule (the kernel's haltpoll cpuidle governor's), for the pollers of the main thread.
// After each wait, whose whole length (spin, sleep and wake-up) was `waited`: longer than
// the most it may spin, the budget halves (0 below GROW_START_NS); within the most but
// past the budget (it slept, and a longer spin would have caught the input), it doubles
// from GROW_START_NS; within the budget, it stays. So a poller whose input comes quickly
// keeps spinning, and one whose input comes late (a loaded machine, where the thread that
// sends it waits for the CPU a spin would hold) sleeps at once.

import { openSync, readSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'

const GROW_START_NS = 10_000

export class LearnedSpin {
  /** The budget, in nanoseconds. */
  ns: number

  constructor(readonly maxNs: number) {
    this.ns = maxNs
  }

  learn(waitedNs: number): void {
    let b = this.ns
    if (waitedNs > this.maxNs) {
      b /= 2
      if (b < GROW_START_NS) b = 0
    } else if (waitedNs > b) {
      b = b < GROW_START_NS / 2 ? GROW_START_NS : b * 2
    }
    this.ns = Math.min(b, this.maxNs)
  }
}

/** How often the pollers look again whether the machine has a CPU to spare. */
const LOOK_NS = 1_000_000

let lookedAt = -Infinity
/** The average of runnable threads beyond the CPUs (at least 0), over the last looks. */
let excess = 0
let loadavg: number | undefined
const text = Buffer.alloc(128)

/**
 * Whether a poller of this thread may spin: as haltpoll polls only on an idle CPU, only
 * while the machine has a CPU to spare: the runnable threads /proc/loadavg counts (this one
 * among them) are, on average over the last looks (1/8 each), no more than the CPUs this
 * process may use and one more (helper/hsm-spin.h's hsm_spin_allowed, the same rule). Read at most once
 * a millisecond; where /proc cannot be read, spinning stays allowed.
 */
export function spinAllowed(nowNs = performance.now() * 1e6): boolean {
  if (nowNs - lookedAt < LOOK_NS) return excess < 1
  lookedAt = nowNs
  try {
    loadavg ??= openSync('/proc/loadavg', 'r')
    const n = readSync(loadavg, text, 0, text.length, 0)
    const now = runnableExcess(text.toString('latin1', 0, n), availableParallelism())
    if (now !== undefined) excess += (now - excess) / 8
  } catch {
    // no /proc: spinning stays as it was
  }
  return excess < 1
}

/**
 * Runnable threads beyond the CPUs and one more (0 to 64), from /proc/loadavg's text
 * ("0.52 0.58 0.59 3/188 4242": the fourth field's numerator); undefined if it is not that.
 * One beyond the CPUs is ours: the spinner, the peer at work, a third just woken.
 */
export function runnableExcess(loadavgText: string, cpus: number): number | undefined {
  const m = /^\S+ \S+ \S+ (\d+)\//.exec(loadavgText)
  if (!m) return undefined
  return Math.min(64, Math.max(0, Number(m[1]) - cpus - 1))
}
