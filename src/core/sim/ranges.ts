// Ranges of numbers handed out and given back: the simulated process's address space and
// the host RAM frames behind it. First fit; freed ranges merge with their neighbours, so
// memory a process gives back (munmap, exit) can be mapped again.

export class RangeAllocator {
  /** Free ranges [start, end), sorted and apart. */
  private readonly holes: Array<[number, number]>

  constructor(base: number, limit: number) {
    this.holes = limit > base ? [[base, limit]] : []
  }

  /** The start of `size` free units, now taken; undefined when no hole is that large. */
  allocate(size: number): number | undefined {
    for (let i = 0; i < this.holes.length; i++) {
      const hole = this.holes[i]!
      if (hole[1] - hole[0] < size) continue
      const start = hole[0]
      if (hole[1] - start === size) this.holes.splice(i, 1)
      else hole[0] = start + size
      return start
    }
    return undefined
  }

  /** Give [start, start + size) back (it must have been allocated). */
  free(start: number, size: number): void {
    const end = start + size
    let i = 0
    while (i < this.holes.length && this.holes[i]![0] < start) i++
    this.holes.splice(i, 0, [start, end])
    // merge with the next, then with the previous
    const next = this.holes[i + 1]
    if (next && next[0] === end) {
      this.holes[i]![1] = next[1]
      this.holes.splice(i + 1, 1)
    }
    const prev = this.holes[i - 1]
    if (prev && prev[1] === start) {
      prev[1] = this.holes[i]![1]
      this.holes.splice(i, 1)
    }
  }

  /** The largest single allocation that can succeed now. */
  largest(): number {
    let best = 0
    for (const [start, end] of this.holes) best = Math.max(best, end - start)
    return best
  }
}
