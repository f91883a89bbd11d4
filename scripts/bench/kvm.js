// The KVM CPU engine (src/core/sim/hypervisor/cpu/kvm.ts) against its floor, a bare C
// program on /dev/kvm (helper/kvm-floor.c), both running the same guest bytes (taken from
// `kvm-floor dump`) in the same rounds, interleaved (wall-clock: the engine's vCPU thread
// and the main thread share the work):
//  - guest OUTs: KVM_RUN -> PIO exit -> resume in C, against the engine delivering each
//    exit to onExit on the main thread, which completes it at once (the least a handler
//    can do: the cost of the engine's path itself), a promise later, or on the event
//    loop's next turn (setImmediate: as a completion that comes from I/O would);
//  - a compute loop (dec/jnz, no exits) in both, in CPU time of the thread running the
//    guest (a loaded machine's waits for a CPU are as large as the loop), and natively on
//    the host for scale.
// And issue 10's whole hypervisor path in the same rounds: a VM of hsmd's own VmManager on
// the simulation whose guest OUTs go (a) to an ioeventfd (no client), (b) to hsmd's UART
// through its default client, against the floor of any path through the simulated
// hypervisor: `kvm-floor handoff`, the same exits each handed to a second C thread and
// back as the engine hands them to the main thread, where the model lives (the crossing
// alone runs at 0.56 to 0.73 of the bare loop's rate on a 2-CPU machine at load 2.5 to 18:
// issue 10's ">= 0.5x the bare loop" for (a) measured the machine's scheduling more than
// our code, and flipped between runs; the ratio to the bare loop is still noted); (c) to a
// C client under the shim (vm-sample: ATTACH/NOTIFY over the ring; >= 0.1x the bare loop,
// issue 10's). The host running the compute loop natively is noted for scale.
//
//   npm run build && npm run bench -- kvm     (BENCH_KVM_OUTS, BENCH_KVM_LOOPS, BENCH_KVM_PATH_OUTS)
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setImmediate } from 'node:timers'
import { URL, fileURLToPath } from 'node:url'
import { fmt, human, median, rounds } from './_lib.js'

export const title = 'KVM engine: guest OUT exits/s and a compute loop vs a bare KVM_RUN loop in C'

const dist = new URL('../../dist/', import.meta.url)
const load = (path) => import(new URL(path, dist).href)
const floorPath = fileURLToPath(new URL('../../helper/build/kvm-floor', import.meta.url))

const OUTS = Number(process.env.BENCH_KVM_OUTS ?? 50_000)
const LOOPS = Number(process.env.BENCH_KVM_LOOPS ?? 500_000)
const DONE_PORT = 0x81

function floor(guest, count) {
  return JSON.parse(execFileSync(floorPath, [guest, String(count)], { encoding: 'utf8' }))
}

export async function run(report) {
  const [{ kvmEngine }, { allocateBacking }, { encode }, { acrn_regs }] = await Promise.all([
    load('core/sim/hypervisor/cpu/kvm.js'),
    load('core/sim/kernel/shared-memory.js'),
    load('core/abi/layout.js'),
    load('core/abi/structs.js'),
  ])
  const found = kvmEngine()
  if ('reason' in found) return report.note(`skipped: ${found.reason}`)
  if (!existsSync(floorPath))
    return report.note(`skipped: ${floorPath} is not built (make -C helper)`)
  const ram = allocateBacking(0x10000)
  if (ram.address === undefined)
    return report.note(
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
      const cpu0 = vcpuThreadsCpu()
      const start = performance.now()
      vm.run()
      const end = await done
      if (end instanceof Error) throw end
      const cpu1 = vcpuThreadsCpu()
      let cpuSeconds = 0
      for (const [tid, t] of cpu1) cpuSeconds += t - (cpu0.get(tid) ?? t)
      return { seconds: (end - start) / 1000, exits, cpuSeconds }
    } finally {
      vm.destroy()
    }
  }

  const exitsPerSecond = (r) => r.exits / r.seconds
  const measures = { floorOut: () => exitsPerSecond(floor('out', OUTS)) }
  for (const [how, completion] of Object.entries(completions))
    measures[how] = async () => exitsPerSecond(await engine('out', OUTS, completion))
  // the compute loop in CPU time of the thread that runs the guest (wall times noted): what
  // the vCPU thread adds to execution itself, which a loaded machine's waits for a CPU,
  // as large as the loop on either side, would hide
  const computeWall = { floor: [], engine: [] }
  measures.floorCompute = () => {
    const r = floor('compute', LOOPS)
    computeWall.floor.push(r.seconds * 1000)
    return r.cpu_seconds * 1000
  }
  measures.engineCompute = async () => {
    const r = await engine('compute', LOOPS)
    computeWall.engine.push(r.seconds * 1000)
    return r.cpuSeconds * 1000
  }
  measures.host = () => floor('host', LOOPS).seconds * 1000
  // the floor of the hypervisor paths: the same exits, each crossing to a second thread and
  // back (the simulated hypervisor is JavaScript on the main thread), nothing done between
  measures.floorHandoff = () => exitsPerSecond(floor('handoff', PATH_OUTS))
  const paths = await hypervisorPaths()
  for (const [name, measure] of Object.entries(paths.measures)) measures[name] = measure
  let s
  try {
    s = await rounds(measures)
  } finally {
    paths.close()
  }

  const out = `the bare C KVM_RUN loop, the same guest (${fmt(OUTS, 0)} OUTs)`
  for (const [how, atLeast] of [
    ['at once', 0.35],
    ['a promise later', 0.35],
    ['next event-loop turn', 0.25],
  ]) {
    report.figure({
      label: `guest OUT exits, completed ${how}`,
      unit: 'exits/s',
      value: s[how],
      floor: s.floorOut,
      floorLabel: out,
      target: { atLeast },
    })
  }
  report.figure({
    label: `compute loop, ${fmt(LOOPS, 0)} x dec/jnz`,
    unit: 'CPU ms',
    value: s.engineCompute,
    floor: s.floorCompute,
    floorLabel: "the bare C KVM_RUN loop, the same guest (each the CPU time of the guest's thread)",
    // issue 10: at least 0.9x the floor's speed
    target: { atMost: 1 / 0.9 },
  })
  const handoff = `kvm-floor handoff: the same guest's exits, each handed to a second C thread and back (${fmt(PATH_OUTS, 0)} OUTs)`
  // Measured at load averages of 2.5 to 18 on 2 CPUs (seven runs): the ioeventfd path 0.70 to
  // 0.95 of the handoff (medians), the UART path, whose main thread does 2 to 4 times more
  // per exit (the console), 0.45 to 1.36. The shim's target is issue 10's.
  for (const [name, label, floorName, floorLabel, atLeast] of [
    ['ioeventfd', 'guest OUTs to an ioeventfd (no client)', 'floorHandoff', handoff, 0.6],
    ['uart', "guest OUTs to hsmd's UART (its default client)", 'floorHandoff', handoff, 0.35],
    [
      'shim',
      'guest OUTs to vm-sample under the shim (ATTACH/NOTIFY, the lane)',
      'floorOut',
      out,
      0.1,
    ],
  ]) {
    report.figure({
      label: label,
      unit: 'exits/s',
      value: s[name],
      floor: s[floorName],
      floorLabel,
      target: { atLeast },
    })
  }
  const toBare = (series) => {
    const r = series.map((v, i) => v / s.floorOut[i])
    return `${human(median(r))} (${human(Math.min(...r))}–${human(Math.max(...r))})`
  }
  report.note(
    'targets to the handoff, not to the bare loop: any path through the simulated hypervisor crosses to its thread and back, ' +
      "which alone ran at 0.56-0.73 of the bare loop (medians of seven runs, load averages 2.5-18) (issue 10's 0.5 of the bare loop for the ioeventfd path flipped between runs)",
  )
  report.note(
    `of the bare loop: the crossing alone (kvm-floor handoff) ${toBare(s.floorHandoff)}, ` +
      `the ioeventfd path ${toBare(s.ioeventfd)}, the UART path ${toBare(s.uart)}`,
  )
  report.note(
    `vm-sample under the shim with HSM_SHIM_LANE=0 (every call over the ring, hsmd's JavaScript on each): ${toBare(s.shimRing)} of the bare loop`,
  )
  report.note(
    `compute loop, wall-clock medians of the same runs: the engine ${human(median(computeWall.engine))} ms, the bare loop ${human(median(computeWall.floor))} ms`,
  )
  report.note(
    `the host runs the same loop in ${human(median(s.host))} ms: the guest runs ${fmt(median(s.floorCompute) / median(s.host), 0)}x slower than the host`,
  )
}

const PATH_OUTS = Number(process.env.BENCH_KVM_PATH_OUTS ?? 20_000)

/** Each vCPU thread of this process (hsm-vcpuN), by tid: its CPU seconds so far. */
function vcpuThreadsCpu() {
  const out = new Map()
  for (const tid of readdirSync('/proc/self/task')) {
    let stat
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
    } catch {
      continue // ended meanwhile
    }
    if (!stat.includes('(hsm-vcpu')) continue
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    out.set(tid, (Number(fields[11]) + Number(fields[12])) / 100) // clock ticks (USER_HZ)
  }
  return out
}

/**
 * Real mode at GPA 0: ECX = count, OUT to `port` (through DX) count times, then OUT to
 * 0x81 and HLT: the floor's loop, with the port any 16-bit one.
 */
function outGuest(port, count) {
  const b = Buffer.from([
    0x66,
    0xb9,
    0,
    0,
    0,
    0, // mov $count, %ecx
    0xba,
    port & 0xff,
    port >> 8, // mov $port, %dx
    0xee, // 9: out %al, (%dx)
    0x66,
    0x49, // dec %ecx
    0x75,
    0xfb, // jnz 9
    0xba,
    0x81,
    0x00, // mov $0x81, %dx
    0xee, // out %al, (%dx)
    0xf4, // hlt
    0xeb,
    0xfd, // jmp hlt
  ])
  b.writeUInt32LE(count, 2)
  return b
}

/**
 * The hypervisor paths as measures (exits/s of one run each): hsmd's VmManager on a fresh
 * simulated platform per run, and vm-sample under the shim against a served one.
 */
async function hypervisorPaths() {
  const [{ simVmmPlatform }, { VmManager }, { Journal }, { serveSimPlatform }, preflight, io] =
    await Promise.all([
      load('core/vmm/sim-platform.js'),
      load('core/vmm/manager.js'),
      load('core/vmm/journal.js'),
      load('core/native/sim-server.js'),
      load('core/native/preflight.js'),
      load('core/sim/hypervisor/io.js'),
    ])
  const timeGuest = (sim, setup) => timeRequests(sim, io.REQ_ADDRESS, setup)
  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-bench-kvm-'))
  let runs = 0
  const viaManager = (path) => async () => {
    const platform = simVmmPlatform()
    const manager = new VmManager({ platform, journal: new Journal(dir), stateDir: dir })
    const name = `b${runs++}`
    try {
      const seconds = await timeGuest(platform.sim, async () => {
        await manager.create({ name, vcpus: 1 })
        await manager.memsegSet(
          name,
          { gpa: 0n, size: 0x10000n, type: 'ram', access: 7 },
          outGuest(path === 'uart' ? 0x3f8 : 0x80, PATH_OUTS),
        )
        if (path === 'ioeventfd')
          await manager.ioeventfdAdd(name, { addr: 0x80n, len: 1, pio: true })
        await manager.setRegs(name, { vcpu: 0, preset: 'real-mode', rip: 0n })
        await manager.start(name)
      })
      return PATH_OUTS / seconds
    } finally {
      await manager.shutdown()
    }
  }
  const payload = join(dir, 'out.bin')
  writeFileSync(payload, outGuest(0x80, PATH_OUTS))
  const viaShim = async (extraEnv = {}) => {
    const socket = join(dir, `hsm-${runs++}.sock`)
    const server = await serveSimPlatform(socket)
    let sample
    try {
      const seconds = await timeGuest(server.platform, async () => {
        sample = spawn(preflight.vmSamplePath(), ['--payload', payload], {
          env: {
            ...process.env,
            ...extraEnv,
            LD_PRELOAD: preflight.shimPath(),
            HSM_SHIM_SOCKET: socket,
          },
          stdio: 'ignore',
        })
      })
      return PATH_OUTS / seconds
    } finally {
      if (sample && sample.exitCode === null) {
        sample.kill('SIGINT')
        await new Promise((resolve) => sample.on('exit', resolve))
      }
      await server.close()
    }
  }
  return {
    measures: {
      ioeventfd: viaManager('ioeventfd'),
      uart: viaManager('uart'),
      shim: () => viaShim(),
      // the same over the ring alone, for the note: what the lane saves
      shimRing: () => viaShim({ HSM_SHIM_LANE: '0' }),
    },
    close: () => rmSync(dir, { recursive: true, force: true }),
  }
}

/**
 * Seconds from the first request the guest makes to its OUT to 0x81 (set-up excluded),
 * as the simulation completes them.
 */
async function timeRequests(sim, addressOffset, setup) {
  let first = 0
  let finish
  const done = new Promise((resolve) => (finish = resolve))
  sim.observeCompletions((vm, vcpu, slot, base) => {
    if (first === 0) first = performance.now()
    if (slot.getUint32(base + addressOffset, true) === 0x81) finish(performance.now())
  })
  await setup()
  const end = await done
  sim.observeCompletions(null)
  return (end - first) / 1000
}
