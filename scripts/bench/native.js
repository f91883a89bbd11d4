// ioctl round trips per second through the native backend (NativeProcess -> hsm-helper
// with libhsm-shim.so preloaded -> SimServer in this process -> the simulation), as a
// ratio to the in-process simulation (SimProcess) measured in the same run, one call at
// a time and pipelined. The ioctl is NOTIFY_REQUEST_FINISH on a VM without a default
// client: a struct copy and HSM's lookup, nothing else (§4.7), so the figure is the cost
// of the path. For reference, `helper read` is a frame to the helper and back with no
// syscall at all (the read op copies 8 bytes of its own memory): the frame protocol alone.
// Every shimmed ioctl is one synchronous round trip between the helper and this process's
// event loop, so the figure is bound by that latency (see helper/SHIM.md, "Cost"). The
// shim's calls cross in its shared-memory ring (the default); `helper + shim, socket` is
// the same with HSM_SHIM_TRANSPORT=socket, the transport it falls back to.
// `shim-load` (helper/shim-load.c) is the shim path without the helper: a C program
// issuing the same ioctl under the shim from 1 thread and from 16 at once, with the
// context switches it takes per call.
//
//   npm run build && npm run bench -- native        (BENCH_CALLS=20000 to change the count)
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { URL } from 'node:url'
import { execa } from 'execa'
import { fmt, opsPerSecond } from './_lib.js'

export const title =
  'ioctl round trips/s: hsm-helper under the shim vs the in-process simulation (ratio)'

const dist = new URL('../../dist/', import.meta.url)
const load = (path) => import(new URL(path, dist).href)

export async function run() {
  const [
    { createSimPlatform },
    { SimServer },
    { NativeProcess },
    preflight,
    { Ioctl },
    { ringAddonError },
  ] = await Promise.all([
    load('core/sim/index.js'),
    load('core/native/sim-server.js'),
    load('core/native/helper-process.js'),
    load('core/native/preflight.js'),
    load('core/abi/ioctls.js'),
    load('core/native/ring.js'),
  ])
  const calls = Number(process.env.BENCH_CALLS ?? 20_000)
  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-bench-'))
  const platform = createSimPlatform()
  const server = await SimServer.listen(join(dir, 'sim.sock'), { platform })
  const shimmed = (transport) =>
    NativeProcess.start({
      checkDevice: false,
      env: {
        LD_PRELOAD: preflight.shimPath(),
        HSM_SHIM_SOCKET: server.path,
        HSM_SHIM_TRANSPORT: transport,
      },
    })
  const native = await shimmed('ring')
  const overSocket = await shimmed('socket')
  const alone = await NativeProcess.start({ device: '/dev/null', checkDevice: false })
  const scratch = await alone.mmap(4096)
  const sim = platform.spawn()
  try {
    // One VM per process, no default client: NOTIFY is HSM's no-op (§4.7).
    const vmOf = async (proc) => {
      const fd = await proc.open('/dev/acrn_hsm')
      const page = await proc.mmap(4096)
      const creation = new Uint8Array(48)
      const v = new DataView(creation.buffer)
      v.setBigUint64(32, page, true)
      v.setBigUint64(40, 0b10n, true)
      await proc.ioctl(fd, Ioctl.CREATE_VM, creation)
      return fd
    }
    const notify = new Uint8Array(8) // vmid 0, reserved 0, vcpu 0
    const simFd = await vmOf(sim)
    const nativeFd = await vmOf(native)
    const socketFd = await vmOf(overSocket)
    if (server.shimTransports.ring !== 1) {
      console.log(
        `the ring was refused (${ringAddonError()}): both rows below went over the socket`,
      )
    }
    const backends = {
      'in-process sim': (n) => [sim, simFd, n],
      'helper + shim': (n) => [native, nativeFd, n],
      'helper + shim, socket': (n) => [overSocket, socketFd, n],
      'helper read*': (n) => [alone, -1, n],
    }
    const call = (proc, fd) =>
      proc === alone ? alone.read(scratch, 8) : proc.ioctl(fd, Ioctl.NOTIFY_REQUEST_FINISH, notify)
    const serial = async ([proc, fd, n]) => {
      for (let i = 0; i < n; i++) await call(proc, fd)
    }
    const pipelined = async ([proc, fd, n]) => {
      // Windows of 1000 calls in flight.
      for (let done = 0; done < n; done += 1000) {
        const batch = []
        for (let i = 0; i < Math.min(1000, n - done); i++) batch.push(call(proc, fd))
        await Promise.all(batch)
      }
    }
    const results = {}
    for (const [label, args] of Object.entries(backends)) {
      // The socket is slow: fewer calls, the same rounds.
      const scale = label.endsWith('socket') ? 4 : 1
      const oneAtATime = await opsPerSecond(
        (n) => serial(args(n)),
        Math.round(calls / 4 / scale),
        3,
      )
      const piped = await opsPerSecond((n) => pipelined(args(n)), Math.round(calls / scale), 3)
      results[label] = { oneAtATime, piped }
    }
    const base = results['in-process sim']
    for (const [label, r] of Object.entries(results)) {
      const ratio =
        label === 'in-process sim'
          ? ''
          : `   ratio ${fmt(r.piped / base.piped, 3)}x / ${fmt(r.oneAtATime / base.oneAtATime, 3)}x`
      console.log(
        `${label.padEnd(21)} pipelined ${fmt(r.piped, 0).padStart(9)}/s   one at a time ${fmt(r.oneAtATime, 0).padStart(9)}/s${ratio}`,
      )
    }
    // The shim alone, from C, against the same server.
    const load = preflight.shimLoadPath()
    if (existsSync(load)) {
      for (const threads of [1, 16]) {
        const per = Math.max(1, Math.round(calls / threads))
        // execa's promise: the server answering it runs on this event loop
        const { stdout: line } = await execa(load, [String(threads), String(per)], {
          env: { LD_PRELOAD: preflight.shimPath(), HSM_SHIM_SOCKET: server.path },
        })
        const m = /per_second (\d+) switches_per_call ([\d.]+)/.exec(line)
        if (!m) throw new Error(`shim-load printed: ${line}`)
        const label = `shim-load ×${threads}`
        console.log(
          `${label.padEnd(21)} ${threads === 1 ? 'one at a time' : 'concurrent   '} ${fmt(Number(m[1]), 0).padStart(9)}/s   ${m[2]} context switches per call in the program`,
        )
      }
    } else {
      console.log(`shim-load not built (${load}): make -C helper`)
    }
    const shim = results['helper + shim'].piped
    console.log(
      `target >= 100,000/s pipelined through helper + shim: ${shim >= 100_000 ? 'met' : 'NOT met'} (${fmt(shim, 0)}/s)`,
    )
    console.log(
      '* helper read: a frame to hsm-helper and back, no syscall, no shim: the protocol alone',
    )
    console.log(
      'shim-load: a C program under the shim, no helper: the shim path alone, from 1 and 16 threads',
    )
  } finally {
    await native.exit()
    await overSocket.exit()
    await alone.exit()
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
