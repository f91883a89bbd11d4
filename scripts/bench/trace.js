// Live ioreq tracing, each figure against a floor measured in the same rounds:
// (a) statistics ingest with exact per-row counts, against a bare loop reading the same
//     words of the same records;
// (b) recording: TraceFileWriter over ring reads, in-process and through trace.read's reply
//     encoding (base64 in JSON, as `ioreq record` gets it), against writing the same bytes
//     to a file in the same chunks with writeSync and nothing else;
// (c) live: a daemon whose simulation makes as many requests as it can (BENCH_WORKLOAD,
//     default mixed, at rate 0 on 3 vCPUs for BENCH_SECONDS, default 2), a watch client
//     refreshing at 10 Hz and a log client beside it, then a recorder too, against the
//     two parts of that work alone: the dispatch (the same daemon code and workload in a
//     process of its own, its trace publish replaced by a count: _dispatch-floor.js) and
//     the publish loop (TraceHub.publish of the same kind of requests, no vCPUs, no
//     dispatch); the floor is their sum per request. Checks: final counts against the daemon's totals, and the
//     recorder's file row by row against the daemon's statistics.
// Rates are per second of CPU time, which a loaded machine does not skew: (a), (b) and
// the publish loop of this process's, the dispatch of its daemon's (the live daemon's
// includes serving the watch, the log and the recorder).
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Buffer } from 'node:buffer'
import { performance } from 'node:perf_hooks'
import { setTimeout } from 'node:timers'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { execa } from 'execa'
import { cpuSeconds, derive, fmt, median, perCpuSecond, rounds } from './_lib.js'

export const title = 'live ioreq tracing: ingest, recording, watch at 10 Hz under load'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const dist = (path) => import(join(root, 'dist', path))
const runJs = join(root, 'bin', 'run.js')

/** Realistic records: a few hundred distinct rows (ports, MMIO registers, PCI config). */
async function makeRecords(n) {
  const { writeRecord, packFlags, pciAddr } = await dist('core/trace/record.js')
  const keys = []
  for (let vmid = 1; vmid <= 2; vmid++)
    for (let vcpu = 0; vcpu < 4; vcpu++) {
      for (const port of [0x3f8, 0x3fd, 0x70, 0x71, 0x60, 0x64, 0xcf8])
        for (const write of [false, true])
          keys.push({ vmid, vcpu, type: 0, write, addr: BigInt(port) })
      for (let reg = 0; reg < 8; reg++)
        keys.push({
          vmid,
          vcpu,
          type: 1,
          write: reg % 2 === 0,
          addr: 0xfe00_0000n + BigInt(reg * 0x1000),
        })
      for (let dev = 0; dev < 8; dev++)
        keys.push({ vmid, vcpu, type: 2, write: false, addr: pciAddr(0, dev, 0, 0) })
    }
  const bytes = new Uint8Array(n * 32)
  const view = new DataView(bytes.buffer)
  const expected = new Map()
  let seed = 7
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32
  for (let i = 0; i < n; i++) {
    // skewed like real traffic: a few hot rows, a long tail
    const k = keys[Math.floor(random() ** 3 * keys.length)]
    writeRecord(view, i * 32, {
      t: i / 1000,
      addr: k.addr,
      value: BigInt(i & 0xff),
      latencyNs: Math.floor(Math.exp(7 + random() * 7)),
      vmid: k.vmid,
      vcpu: k.vcpu,
      size: 4,
      flags: packFlags(k.type, k.write, 0, 4),
    })
    const id = `${k.vmid}/${k.vcpu}/${k.type}/${k.write}/${k.addr}`
    expected.set(id, (expected.get(id) ?? 0) + 1)
  }
  return { bytes, expected, rows: keys.length }
}

async function ingest(report) {
  const { TraceStats } = await dist('core/trace/stats.js')
  const n = 1 << 21
  const { bytes, expected, rows } = await makeRecords(n)
  const words = new Uint32Array(bytes.buffer)
  let sink = 0
  let stats
  const s = await rounds({
    // the bare loop reads the words ingest reads and does nothing with them; 8 passes, so
    // that a round is long enough to time
    bare: () =>
      perCpuSecond(8 * n, () => {
        for (let pass = 0; pass < 8; pass++)
          for (let o = 0; o < n * 8; o += 8)
            sink = (sink + (words[o + 2] ^ words[o + 3] ^ words[o + 6] ^ words[o + 7])) | 0
      }),
    ingest: () =>
      perCpuSecond(n, () => {
        stats = new TraceStats()
        stats.ingest(bytes)
      }),
  })
  // the loop's result is used, so that it cannot be optimised away
  if (sink === 0x7fffffff) report.note('')
  report.figure({
    label: '(a) statistics ingest',
    unit: 'events/s',
    value: s.ingest,
    floor: s.bare,
    floorLabel: 'a bare loop over the same words of the same records',
    target: { atLeast: 0.05 },
  })
  let exact = stats.total === n && stats.rowCount === expected.size
  for (const r of stats.rows(undefined, true)) {
    const type = ['pio', 'mmio', 'pcicfg'].indexOf(r.type)
    const id = `${r.vmid}/${r.vcpu}/${type}/${r.dir === 'write'}/${r.addr}`
    if (expected.get(id) !== r.count) exact = false
  }
  report.check(
    '(a) per-row counts exact',
    exact,
    `${fmt(n, 0)} events over ${stats.rowCount} rows of ${rows} keys`,
  )
}

async function recording(report, dir) {
  const { TraceRing } = await dist('core/trace/ring.js')
  const { TraceFileWriter, readTraceFile } = await dist('core/trace/file.js')
  const { TraceHub } = await dist('core/trace/hub.js')
  const { traceMethods, READ_MAX } = await dist('core/trace/methods.js')
  const { RECORD_SIZE } = await dist('core/trace/record.js')
  const { stringify } = await dist('core/daemon/protocol.js')
  const n = 1 << 18
  const { bytes } = await makeRecords(n)
  const ring = new TraceRing(n)
  new Uint8Array(ring.view.buffer).set(bytes)
  ring.head = n
  // the same records behind trace.read, as the daemon holds them
  const hub = new TraceHub(n)
  new Uint8Array(hub.ring.view.buffer).set(bytes)
  hub.ring.head = n
  const read = traceMethods(hub, () => [])['trace.read']
  const file = join(dir, 'bench.hsmtrace')
  const s = await rounds({
    floor: () =>
      perCpuSecond(n, () => {
        const fd = openSync(file, 'w', 0o644)
        const chunk = READ_MAX * RECORD_SIZE
        for (let at = 0; at < bytes.byteLength; at += chunk) {
          const part = bytes.subarray(at, Math.min(at + chunk, bytes.byteLength))
          for (let done = 0; done < part.byteLength;) done += writeSync(fd, part, done)
        }
        closeSync(fd)
      }),
    writer: () =>
      perCpuSecond(n, () => {
        const writer = new TraceFileWriter(file, {
          createdAt: new Date().toISOString(),
          vms: [{ vmid: 1, name: 'bench' }],
        })
        for (let cursor = 0; cursor < n;) {
          const r = ring.read(cursor, READ_MAX)
          writer.write(r.bytes)
          cursor = r.cursor
        }
        writer.close()
      }),
    wire: () =>
      perCpuSecond(n, () => {
        const writer = new TraceFileWriter(file, { createdAt: '', vms: [] })
        for (let cursor = 0; cursor < n;) {
          const reply = JSON.parse(stringify(read({ cursor, max: 1_000_000 }, {})))
          writer.write(new Uint8Array(Buffer.from(reply.records, 'base64')))
          cursor = reply.cursor
        }
        writer.close()
      }),
  })
  const floorLabel = `writeSync of the same bytes in the same chunks (${READ_MAX} records), nothing else`
  report.figure({
    label: '(b) recording: ring reads -> TraceFileWriter',
    unit: 'events/s',
    value: s.writer,
    floor: s.floor,
    floorLabel,
    target: { atLeast: 0.25 },
  })
  report.figure({
    label: '(b) recording through trace.read',
    unit: 'events/s',
    value: s.wire,
    floor: s.floor,
    floorLabel,
    target: { atLeast: 0.025 },
  })
  const back = readTraceFile(file)
  const header = statSync(file).size - n * RECORD_SIZE
  report.check(
    '(b) the file holds every record, 32 bytes each, and one header',
    back.count === n &&
      Buffer.compare(Buffer.from(back.records), Buffer.from(bytes)) === 0 &&
      header > 0 &&
      header <= 8192,
    `${fmt(n, 0)} records, a ${fmt(header, 0)}-byte header`,
  )
}

/** `hsmctl daemon start` and friends in their own runtime and state directories. */
function cliIn(dir) {
  const env = {
    ...process.env,
    HSMCTL_RUNTIME_DIR: join(dir, 'run'),
    HSMCTL_STATE_DIR: join(dir, 'state'),
    // the workload makes the accesses; the VM's zeroed RAM is no guest code to execute
    HSMCTL_CPU: 'none',
  }
  delete env.NODE_ENV
  // async: the floor's daemon runs in this process and must answer
  const cli = async (...args) => {
    const r = await execa(process.execPath, [runJs, ...args], { env, reject: false })
    if (r.exitCode !== 0) throw new Error(`hsmctl ${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }
  return { env, cli }
}

async function live(report, dir) {
  const workload = process.env.BENCH_WORKLOAD ?? 'mixed'
  const seconds = Number(process.env.BENCH_SECONDS ?? 2)
  const { connect } = await dist('core/daemon/client.js')
  const { socketPath } = await dist('core/daemon/paths.js')
  const { WatchSession } = await dist('ui/watch/session.js')
  const { layoutWatch } = await dist('ui/watch/layout.js')
  const { initialUiState } = await dist('ui/watch/state.js')
  const { TraceStats } = await dist('core/trace/stats.js')
  const { TraceFileWriter, readTraceFile } = await dist('core/trace/file.js')
  const { TraceHub } = await dist('core/trace/hub.js')
  const { readRecord, flagType, flagWrite } = await dist('core/trace/record.js')

  const daemon = cliIn(join(dir, 'live'))
  const alone = cliIn(join(dir, 'alone'))
  const clients = []
  // the floor's daemon: the same code in a process of its own, every publish only counted
  const floorDaemon = spawn(process.execPath, [join(here, '_dispatch-floor.js')], {
    env: alone.env,
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const floorLines = createInterface({ input: floorDaemon.stdout })[Symbol.asyncIterator]()
  const floorLine = async () => {
    const { value, done } = await floorLines.next()
    if (done) throw new Error('the dispatch floor daemon stopped')
    return value
  }
  try {
    await floorLine() // ready
    await daemon.cli('daemon', 'start')
    for (const { cli } of [daemon, alone]) {
      await cli('vm', 'create', 'load', '--vcpus', '3', '--memory', '1M')
      await cli('vm', 'start', 'load')
    }
    const connectTo = async (env) => {
      const c = await connect(socketPath('sim', env))
      clients.push(c)
      return c
    }
    const control = await connectTo(daemon.env)
    const watchClient = await connectTo(daemon.env)
    const logClient = await connectTo(daemon.env)
    const recorder = await connectTo(daemon.env)

    const workloadParams = {
      name: 'load',
      workload,
      rate: 0,
      vcpus: [0, 1, 2],
      durationMs: seconds * 1000,
    }
    /** The workload on the live daemon, run to its end: its status and how long it took. */
    const workloadOn = async (client) => {
      const started = performance.now()
      await client.call('guest.run', workloadParams)
      const status = await client.call('guest.wait', { name: 'load' })
      return { status, elapsed: (performance.now() - started) / 1000 }
    }

    // the publish loop's requests: the records the mixed workload's rows look like
    const sample = (await makeRecords(4096)).bytes
    const view = new DataView(sample.buffer)
    const requests = Array.from({ length: 4096 }, (_, i) => {
      const r = readRecord(view, i * 32)
      const flags = view.getUint8(i * 32 + 31)
      return {
        vmid: r.vmid,
        vcpu: r.vcpu,
        type: flagType(flags),
        write: flagWrite(flags),
        client: 0,
        size: r.size,
        addr: r.addr,
        value: r.value,
        latencyNs: r.latencyNs,
        t: 0,
      }
    })
    const hub = new TraceHub()

    const notes = {
      hz: [],
      worstGap: 0,
      exact: true,
      recorder: [],
      accesses: [],
      wall: [],
      floorWall: [],
    }
    const { pid: daemonPid } = await control.call('daemon.status')
    const liveRun = async (extra) => {
      const before = await control.call('trace.stats', {})
      const cpu0 = cpuSeconds(daemonPid)
      const watch = new WatchSession({ client: watchClient, spec: {} })
      const log = new WatchSession({ client: logClient, spec: {} })
      await watch.sampleTop()
      await log.sampleLog(40)
      log.dropped = 0
      let done = false
      const ran = workloadOn(control).finally(() => (done = true))
      // the watch and the log refresh on a 100 ms clock, as `ioreq watch --interval 0.1` does
      const refresh = async (session, sampleOnce) => {
        const gaps = []
        let last = performance.now()
        let next = last
        while (!done) {
          await sampleOnce(session)
          layoutWatch(session.frame(initialUiState()), 120, 40)
          const now = performance.now()
          gaps.push(now - last)
          last = now
          next += 100
          await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())))
        }
        return gaps
      }
      const side = extra?.(() => done)
      const gapLists = await Promise.all([
        refresh(watch, (x) => x.sampleTop()),
        refresh(log, (x) => x.sampleLog(40)),
      ])
      const { status, elapsed } = await ran
      const cpu = cpuSeconds(daemonPid) - cpu0
      await watch.sampleTop()
      await side
      for (const gaps of gapLists) {
        notes.hz.push((gaps.length / gaps.reduce((a, b) => a + b, 0)) * 1000)
        notes.worstGap = Math.max(notes.worstGap, ...gaps)
      }
      const published = watch.published - before.published
      notes.accesses.push(published / status.accesses)
      notes.exact &&= watch.model.totals.count === watch.published
      notes.wall.push(published / elapsed)
      return published / cpu
    }

    // a recorder beside the same traffic: its file must hold every request, row for row
    const recorded = async (isDone) => {
      const file = join(dir, 'live.hsmtrace')
      const first = await recorder.call('trace.read', { max: 0 })
      const writer = new TraceFileWriter(file, { createdAt: '', vms: first.vms })
      let cursor = first.cursor
      let dropped = 0
      for (;;) {
        const stop = isDone()
        const reply = await recorder.call('trace.read', { cursor, max: 1_000_000 })
        cursor = reply.cursor
        dropped += reply.dropped
        writer.write(new Uint8Array(Buffer.from(reply.records, 'base64')))
        if (stop && reply.cursor >= reply.published) break
        if (reply.cursor >= reply.published) await new Promise((res) => setTimeout(res, 50))
      }
      writer.close()
      const after = await control.call('trace.stats', {})
      const got = new TraceStats()
      got.ingest(readTraceFile(file).records)
      notes.recorder.push({
        equal: got.total === after.published - first.cursor && dropped === 0,
        records: writer.records,
        dropped,
      })
    }

    const s = await rounds({
      dispatch: async () => {
        floorDaemon.stdin.write(`${JSON.stringify(workloadParams)}\n`)
        const [perCpu, perWall] = (await floorLine()).split(' ').map(Number)
        notes.floorWall.push(perWall)
        return perCpu
      },
      publish: () =>
        perCpuSecond(1 << 20, (m) => {
          for (let i = 0; i < m; i++) hub.publish(requests[i & 4095])
        }),
      watchLog: () => liveRun(),
      withRecorder: () => liveRun(recorded),
    })
    const floor = derive((d, p) => 1 / (1 / d + 1 / p), s.dispatch, s.publish)
    const floorLabel =
      'the dispatch alone (the same daemon, no trace) + TraceHub.publish alone, per request'
    report.figure({
      label: '(c) live, watch + log: requests published',
      unit: 'requests/CPU-s',
      value: s.watchLog,
      floor,
      floorLabel,
      target: { atLeast: 0.6 },
    })
    report.figure({
      label: '(c) live, watch + log + recorder: requests published',
      unit: 'requests/CPU-s',
      value: s.withRecorder,
      floor,
      floorLabel,
      target: { atLeast: 0.6 },
    })
    report.note(
      `per second of wall-clock time: watch + log ${fmt(median(notes.wall), 0)}/s, dispatch alone ${fmt(median(notes.floorWall), 0)}/s`,
    )
    report.note(
      `floor parts: dispatch alone ${fmt(median(s.dispatch), 0)}/s, publish alone ${fmt(median(s.publish), 0)}/s; ` +
        `${workload} at rate 0 on 3 vCPUs for ${seconds} s; ${fmt(100 * median(notes.accesses), 0)}% of its accesses are published requests`,
    )
    report.note(
      `watch and log refreshed at ${fmt(Math.min(...notes.hz), 1)}–${fmt(Math.max(...notes.hz), 1)} Hz (asked: 10), worst gap ${fmt(notes.worstGap, 0)} ms`,
    )
    report.check('(c) final watch totals = daemon published, every round', notes.exact)
    report.check(
      '(c) recorder file = daemon statistics, nothing dropped, every round',
      notes.recorder.every((r) => r.equal),
      `${notes.recorder.length} runs, ${fmt(
        notes.recorder.reduce((n, r) => n + r.records, 0),
        0,
      )} records, ${notes.recorder.reduce((n, r) => n + r.dropped, 0)} dropped`,
    )
  } finally {
    for (const c of clients) c.close()
    floorDaemon.stdin.end()
    if (floorDaemon.exitCode === null && floorDaemon.signalCode === null)
      await once(floorDaemon, 'exit')
    spawnSync(process.execPath, [runJs, 'daemon', 'stop'], { env: daemon.env })
  }
}

export async function run(report) {
  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-bench-trace-'))
  try {
    await ingest(report)
    await recording(report, dir)
    await live(report, dir)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
