// Shared benchmark helpers: timing of whole commands and of in-process loops.
import { spawnSync } from 'node:child_process'
import { performance } from 'node:perf_hooks'

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Wall time in ms of one run of a command (stdout discarded); throws if it fails. */
export function timeCommand(cmd, args, options = {}) {
  const start = performance.now()
  const result = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...options })
  const ms = performance.now() - start
  if (result.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${result.status}: ${result.stderr}`)
  }
  return ms
}

/**
 * Median wall times of several commands, interleaved run by run so that machine noise
 * hits them alike. `commands` is {label: [cmd, args]}.
 */
export function compareCommands(commands, runs = 15, warmup = 2) {
  const times = Object.fromEntries(Object.keys(commands).map((k) => [k, []]))
  for (let i = 0; i < runs + warmup; i++) {
    for (const [label, [cmd, args, options]] of Object.entries(commands)) {
      const ms = timeCommand(cmd, args, options)
      if (i >= warmup) times[label].push(ms)
    }
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]))
}

/** Operations per second of `fn` (called with the iteration count), best of `rounds`. */
export async function opsPerSecond(fn, iterations, rounds = 5) {
  let best = 0
  for (let r = 0; r < rounds; r++) {
    const start = performance.now()
    await fn(iterations)
    const seconds = (performance.now() - start) / 1000
    best = Math.max(best, iterations / seconds)
  }
  return best
}

export const fmt = (n, digits = 1) => n.toLocaleString('en-US', { maximumFractionDigits: digits })
