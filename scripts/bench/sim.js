// The simulated HSM's request path, in requests per second of this process's CPU time (a
// loaded machine does not skew it: everything runs in this process), each figure
// against a floor measured in the same rounds: a loop that makes the same slot writes and
// the same Atomics state changes (FREE -> PENDING -> PROCESSING -> COMPLETE -> FREE) with
// no dispatch at all. The figures (issue 3):
//   (a) guest write -> ioeventfd client -> completion
//   (b) guest access -> default client (ATTACH, read slot, NOTIFY) -> completion
//   (c) the ioeventfd path with 100 and 10,000 ioeventfds registered, against the same
//       path with 1 (the lookup must not grow with the count: 10,000 keeps >= 50%)
// The vCPUs execute no guest code (cpu: 'none'): the accesses are made by guestAccess, and
// a started VM with no payload would otherwise run its zeroed RAM on a KVM vCPU thread,
// whose CPU time this process's rate would count.
// Uses the built dist/ (npm run build, or npx tsc -p tsconfig.build.json).
import { createSimPlatform, encode, Ioctl, IoreqState, structs } from '../../dist/index.js'
import { perCpuSecond, rounds } from './_lib.js'

export const title = 'simulated HSM dispatch, requests/s against a slot-writes-only floor'

const N = Number(process.env.BENCH_SIM_N ?? 200_000)
const MMIO = 0xd000_0000

/** A running one-vCPU VM with a default client; its ioreq page mapped in the process. */
async function bootVm(platform) {
  const proc = platform.spawn()
  const fd = await proc.open('/dev/acrn_hsm')
  const page = await proc.mmap(4096)
  const creation = encode(structs.acrn_vm_creation, { ioreq_buf: page, cpu_affinity: 0b10n })
  await proc.ioctl(fd, Ioctl.CREATE_VM, creation)
  await proc.ioctl(fd, Ioctl.CREATE_IOREQ_CLIENT)
  await proc.ioctl(fd, Ioctl.START_VM)
  const vmid = new DataView(creation.buffer).getUint16(0, true)
  return { proc, fd, page, vmid }
}

/** The floor: one slot's request written and walked through its four states, no dispatch. */
function floor(n) {
  const buffer = new SharedArrayBuffer(4096)
  const dv = new DataView(buffer)
  const u8 = new Uint8Array(buffer)
  const i32 = new Int32Array(buffer)
  const processed = 136 >> 2
  for (let i = 0; i < n; i++) {
    u8.fill(0, 64, 128)
    dv.setUint32(0, 1, true)
    dv.setUint32(4, 0, true)
    dv.setUint32(64, 1, true)
    dv.setUint32(72, MMIO, true)
    dv.setUint32(76, 0, true)
    dv.setUint32(80, 4, true)
    dv.setUint32(88, i, true)
    dv.setUint32(132, 0, true)
    Atomics.store(i32, processed, IoreqState.PENDING)
    if (Atomics.load(i32, processed) !== IoreqState.PENDING) throw new Error('floor')
    dv.setUint32(132, 1, true)
    Atomics.store(i32, processed, IoreqState.PROCESSING)
    dv.getUint32(4, true)
    Atomics.store(i32, processed, IoreqState.COMPLETE)
    if (Atomics.load(i32, processed) !== IoreqState.COMPLETE) throw new Error('floor')
    dv.getUint32(88, true)
    Atomics.store(i32, processed, IoreqState.FREE)
  }
}

/**
 * (a)/(c): guest MMIO writes that an ioeventfd takes, with `extra` more ioeventfds
 * registered. Returns the measure: requests per second of a round of n writes.
 */
async function ioeventfdPath(extra) {
  const platform = createSimPlatform({ cpu: 'none' })
  const { proc, fd, vmid } = await bootVm(platform)
  const others = await proc.eventfd(0)
  for (let i = 0; i < extra; i++) {
    const addr = BigInt(MMIO + 0x1000 + i * 8)
    await proc.ioctl(
      fd,
      Ioctl.IOEVENTFD,
      encode(structs.acrn_ioeventfd, { fd: others, addr, len: 4 }),
    )
  }
  // The target is registered last: a list scanned oldest first would meet it last.
  const efd = await proc.eventfd(0)
  await proc.ioctl(
    fd,
    Ioctl.IOEVENTFD,
    encode(structs.acrn_ioeventfd, { fd: efd, addr: BigInt(MMIO), len: 4 }),
  )
  const access = { vmid, vcpu: 0, type: 'mmio', dir: 'write', addr: MMIO, size: 4, value: 1 }
  return () =>
    perCpuSecond(N, async (n) => {
      for (let i = 0; i < n; i++) await platform.guestAccess(access)
      // every write signalled the ioeventfd once (reading resets its count)
      const signalled = await proc.eventfdRead(efd)
      if (signalled !== BigInt(n))
        throw new Error(`ioeventfd signalled ${signalled} times for ${n} writes`)
    })
}

/** (b): guest reads served by the default client: ATTACH, read the slot, answer, NOTIFY. */
async function defaultClientPath() {
  const platform = createSimPlatform({ cpu: 'none' })
  const { proc, fd, page, vmid } = await bootVm(platform)
  // The ioreq page as the client sees it: a pointer into its own memory.
  const view = proc.view(page, 4096)
  const dv = new DataView(view.buffer, view.byteOffset, 4096)
  const i32 = new Int32Array(view.buffer, view.byteOffset, 1024)
  const notify = encode(structs.acrn_ioreq_notify, { vcpu: 0 })
  const access = { vmid, vcpu: 0, type: 'pio', dir: 'read', addr: 0x3f8, size: 1 }
  return () =>
    perCpuSecond(N, async (n) => {
      for (let i = 0; i < n; i++) {
        const done = platform.guestAccess(access)
        await proc.ioctl(fd, Ioctl.ATTACH_IOREQ_CLIENT)
        if (
          Atomics.load(i32, 136 >> 2) !== IoreqState.PROCESSING ||
          dv.getUint32(132, true) !== 0
        ) {
          throw new Error('slot 0 is not a PROCESSING default-client request')
        }
        dv.setUint32(88, dv.getUint32(72, true) & 0xff, true)
        await proc.ioctl(fd, Ioctl.NOTIFY_REQUEST_FINISH, notify)
        if ((await done) !== 0xf8n) throw new Error('the guest did not get the answer')
      }
    })
}

export async function run(report) {
  const s = await rounds({
    floor: () => perCpuSecond(N * 5, floor),
    a: await ioeventfdPath(0),
    b: await defaultClientPath(),
    c100: await ioeventfdPath(99),
    c10k: await ioeventfdPath(9_999),
  })
  const slots = 'slot writes + Atomics state changes, no dispatch'
  const one = '(a): the same path with 1 ioeventfd'
  const figures = [
    ['(a) guest write -> ioeventfd -> complete', s.a, s.floor, slots, 0.08],
    ['(b) guest access -> default client -> complete', s.b, s.floor, slots, 0.035],
    ['(c) ioeventfd path, 100 ioeventfds', s.c100, s.a, one, 0.5],
    ['(c) ioeventfd path, 10,000 ioeventfds', s.c10k, s.a, one, 0.5],
  ]
  for (const [label, value, floor, floorLabel, atLeast] of figures) {
    report.figure({ label, unit: 'requests/s', value, floor, floorLabel, target: { atLeast } })
  }
  report.note(`(${N.toLocaleString('en-US')} requests per round; the floor makes 5 times as many)`)
}
