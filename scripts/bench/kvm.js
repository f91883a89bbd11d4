// The KVM CPU engine (src/core/sim/hypervisor/cpu/kvm.ts) against its floor, a bare C
// program on /dev/kvm (helper/kvm-floor.c), both running the same guest bytes (taken from
// `kvm-floor dump`) in the same run, interleaved, best of several rounds:
//  - guest OUTs: KVM_RUN -> PIO exit -> resume in C, against the engine delivering each
//    exit to onExit on the main thread, which completes it at once (the least a handler
//    can do: the cost of the engine's path itself), a promise later, or on the event
//    loop's next turn (setImmediate: as a completion that comes from I/O would);
//  - a compute loop (dec/jnz, no exits) in both, and natively on the host for scale.
// Issue 10's targets are for the whole hypervisor path (ioeventfd >= 0.5x the floor,
// hsmd's UART >= 0.25x, compute >= 0.9x); this measures the engine under them.
//
//   npm run build && npm run bench -- kvm     (BENCH_KVM_OUTS, BENCH_KVM_LOOPS, BENCH_KVM_ROUNDS)
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { setImmediate } from 'node:timers'
import { URL, fileURLToPath } from 'node:url'
import { fmt } from './_lib.js'

export const title = 'KVM engine: guest OUT exits/s and a compute loop vs a bare KVM_RUN loop in C'

const dist = new URL('../../dist/', import.meta.url)
const load = (path) => import(new URL(path, dist).href)
const floorPath = fileURLToPath(new URL('../../helper/build/kvm-floor', import.meta.url))

const OUTS = Number(process.env.BENCH_KVM_OUTS ?? 50_000)
const LOOPS = Number(process.env.BENCH_KVM_LOOPS ?? 500_000)
const ROUNDS = Number(process.env.BENCH_KVM_ROUNDS ?? 3)
const DONE_PORT = 0x81

function floor(guest, count) {
  return JSON.parse(execFileSync(floorPath, [guest, String(count)], { encoding: 'utf8' }))
}

export async function run() {
  const [{ kvmEngine }, { allocateBacking }, { encode }, { acrn_regs }] = await Promise.all([
    load('core/sim/hypervisor/cpu/kvm.js'),
    load('core/sim/kernel/shared-memory.js'),
    load('core/abi/layout.js'),
    load('core/abi/structs.js'),
  ])
  const found = kvmEngine()
  if ('reason' in found) return console.log(`skipped: ${found.reason}`)
  if (!existsSync(floorPath))
    return console.log(`skipped: ${floorPath} is not built (make -C helper)`)
  const ram = allocateBacking(0x10000)
  if (ram.address === undefined)
    return console.log(
      'skipped: guest RAM is not shared memory (build/hsm_memory.node is not built)',
    )
  const guests = {
    out: execFileSync(floorPath, ['dump', 'out']),
    compute: execFileSync(floorPath, ['dump', 'compute']),
  }

  const completions = {
    'at once': (complete) => complete(),
    'a promise later': (complete) => void Promise.resolve().then(complete),
    'next event-loop turn': (complete) => setImmediate(complete),
  }

  /** Seconds for the engine to run `guest` with ECX = count, to its `out 0x81`. */
  async function engine(guest, count, completion = completions['at once']) {
    new Uint8Array(ram.buffer).set(guests[guest], 0)
    let finish
    const done = new Promise((resolve) => (finish = resolve))
    let exits = 0
    const vm = found.engine.createVm({
      vcpus: 1,
      onExit: (vcpu, exit) => {
        exits++
        if (exit.addr === DONE_PORT) finish(performance.now())
        else completion(() => vm.complete(vcpu, 0n))
      },
      onFault: (vcpu, reason) => finish(new Error(reason)),
    })
    try {
      vm.setMemory([{ gpa: 0, size: 0x10000, hostAddress: ram.address, readonly: false }])
      // The floor's state: real mode, CS base 0, IP 0 (vm-sample's entry state).
      vm.setRegs(
        0,
        encode(acrn_regs, {
          gprs: { rcx: BigInt(count) },
          cr0: 0x30n,
          cs_ar: 0x9f,
          cs_sel: 0xf000,
          cs_base: 0n,
          cs_limit: 0xffff,
          rip: 0n,
        }),
      )
      const start = performance.now()
      vm.run()
      const end = await done
      if (end instanceof Error) throw end
      return { seconds: (end - start) / 1000, exits }
    } finally {
      vm.destroy()
    }
  }

  const best = { floorOut: 0, engineOut: {}, floorCompute: Infinity, engineCompute: Infinity }
  for (let round = 0; round < ROUNDS; round++) {
    const f = floor('out', OUTS)
    best.floorOut = Math.max(best.floorOut, f.exits / f.seconds)
    for (const [how, completion] of Object.entries(completions)) {
      const e = await engine('out', OUTS, completion)
      best.engineOut[how] = Math.max(best.engineOut[how] ?? 0, e.exits / e.seconds)
    }
    best.floorCompute = Math.min(best.floorCompute, floor('compute', LOOPS).seconds)
    best.engineCompute = Math.min(best.engineCompute, (await engine('compute', LOOPS)).seconds)
  }
  const host = floor('host', LOOPS).seconds

  console.log(`guest OUT, ${fmt(OUTS, 0)} exits (best of ${ROUNDS}):`)
  console.log(`  floor (C, KVM_RUN loop)                 ${fmt(best.floorOut, 0)} exits/s`)
  for (const [how, rate] of Object.entries(best.engineOut))
    console.log(
      `  engine, completed ${how.padEnd(20)} ${fmt(rate, 0)} exits/s  ${fmt(rate / best.floorOut, 2)}x the floor`,
    )
  console.log(`compute loop, ${fmt(LOOPS, 0)} x dec/jnz (best of ${ROUNDS}):`)
  console.log(`  floor (C)                      ${fmt(best.floorCompute * 1000, 1)} ms`)
  console.log(
    `  engine                         ${fmt(best.engineCompute * 1000, 1)} ms  ${fmt(best.floorCompute / best.engineCompute, 2)}x the floor's speed`,
  )
  console.log(
    `  host (same loop, no VM)        ${fmt(host * 1000, 3)} ms  (the guest runs ${fmt(best.floorCompute / host, 0)}x slower than the host)`,
  )
}
