// How long a poller spins before it sleeps, learned from its own waits: helper/hsm-spin.h's
// rule (the kernel's haltpoll cpuidle governor's), for the pollers of the main thread.
// After each wait, whose whole length (spin, sleep and wake-up) was `waited`: longer than
// the most it may spin, the budget halves (0 below GROW_START_NS); within the most but
// past the budget (it slept, and a longer spin would have caught the input), it doubles
// from GROW_START_NS; within the budget, it stays. So a poller whose input comes quickly
// keeps spinning, and one whose input comes late (a loaded machine, where the thread that
// sends it waits for the CPU a spin would hold) sleeps at once.

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
