// The pollers' spin rules (src/core/native/spin.ts, helper/hsm-spin.h): the haltpoll rule
// for the budget, and spinning only while the machine has a CPU to spare.
import { describe, expect, it } from 'vitest'
import { LearnedSpin, runnableExcess, spinAllowed } from '../../../src/core/native/spin.js'

describe('LearnedSpin (the haltpoll rule)', () => {
  it('halves past the most, to 0 below 10 µs; doubles from 10 µs when a longer spin would have caught it', () => {
    const s = new LearnedSpin(50_000)
    expect(s.ns).toBe(50_000)
    s.learn(60_000)
    expect(s.ns).toBe(25_000)
    s.learn(10_000) // within the budget: stays
    expect(s.ns).toBe(25_000)
    s.learn(80_000)
    s.learn(80_000)
    expect(s.ns).toBe(0) // 12.5 µs, then 6.25 µs: below 10 µs
    s.learn(30_000) // slept, and a spin of 30 µs would have caught it
    expect(s.ns).toBe(10_000)
    s.learn(30_000)
    s.learn(30_000)
    expect(s.ns).toBe(40_000)
    s.learn(45_000)
    expect(s.ns).toBe(50_000) // never past the most
  })
})

describe('spinning only with a CPU to spare', () => {
  it("reads the runnable count from /proc/loadavg's text, beyond the CPUs and one of ours", () => {
    expect(runnableExcess('0.52 0.58 0.59 3/188 4242\n', 2)).toBe(0)
    expect(runnableExcess('0.52 0.58 0.59 4/188 4242\n', 2)).toBe(1)
    expect(runnableExcess('5.10 4.00 3.00 9/300 1\n', 2)).toBe(6)
    expect(runnableExcess('1.00 1.00 1.00 1/100 1\n', 8)).toBe(0)
    expect(runnableExcess('0.0 0.0 0.0 999/1000 1\n', 1)).toBe(64)
    expect(runnableExcess('garbage', 2)).toBeUndefined()
    expect(runnableExcess('', 2)).toBeUndefined()
  })

  it('answers from this machine, and at most once a millisecond looks again', () => {
    const first = spinAllowed(1e15)
    expect(typeof first).toBe('boolean')
    // within the millisecond: the same answer, without reading /proc again
    expect(spinAllowed(1e15 + 500_000)).toBe(first)
  })
})
