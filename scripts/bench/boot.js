// acrn-dm boots Debian's Linux kernel on the simulation (issue 11 item 5), against QEMU
// with KVM booting the same kernel and initramfs (scripts/boot-kit.js) in the same rounds:
//  - the time from acrn-dm's start (`hsmctl sim exec -- acrn-dm ... -k vmlinuz -r
//    initrd.cpio.gz`) to the init marker on its COM1, against QEMU+KVM's time from its start
//    to the same marker (target: within 3x);
//  - the I/O requests per second acrn-dm's boot sustained (what the daemon counted for the
//    VM at the marker, over that time), against the same requests over QEMU+KVM's time.
// Where QEMU+KVM cannot boot the kernel on this machine within 90 s (a software nested
// KVM such as KVM-PVM), both figures are not measurable here and say why; QEMU's TCG time
// and how far acrn-dm's boot got in the same 90 s are printed as context.
//
//   npm run build && npm run bench -- boot      (root: acrn-dm reads the host MADT;
//                                                 BENCH_BOOT_ROUNDS, default 3)
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath, URL } from 'node:url'
import { bootQemu, Cannot, prepare, tail } from '../boot-kit.js'
import { acrnDmBuild } from './_acrn-dm.js'
import { derive, human, rounds } from './_lib.js'

export const title = "Linux boot: acrn-dm on the simulation vs QEMU+KVM, Debian's kernel to init"

const root = fileURLToPath(new URL('../../', import.meta.url))
const runJs = join(root, 'bin', 'run.js')
const NR_HUGEPAGES = '/proc/sys/vm/nr_hugepages'
const ROUNDS = Math.max(1, Number(process.env.BENCH_BOOT_ROUNDS ?? 3))
/** QEMU+KVM's budget, as test/boot/linux-boot.test.ts explains: over 4x QEMU TCG's time. */
const PEER_BUDGET_MS = 90_000
const NAME = 'benchboot'

/** Why this machine cannot run acrn-dm, or undefined. */
function cannot() {
  if (process.getuid?.() !== 0) return 'acrn-dm needs root (it reads the host MADT first)'
  if (!existsSync('/sys/firmware/acpi/tables/APIC')) return 'this host has no ACPI MADT'
  if (!existsSync('/dev/kvm')) return 'no /dev/kvm: acrn-dm’s vCPUs cannot execute'
  if (!existsSync(join(root, 'helper', 'build', 'libhsm-shim.so')))
    return 'the device shim is not built (make -C helper)'
  return undefined
}

const hsmctl = (args, env) =>
  spawnSync(process.execPath, [runJs, ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', ...env },
  })

/** Requests the daemon counted for VM `name` (`ioreq watch --once`), by row and in all. */
function counted(name, env) {
  const r = hsmctl(['ioreq', 'watch', name, '--once', '--format', 'jsonl'], env)
  if (r.status !== 0) return { total: 0, rows: {} }
  const rows = Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .map((row) => [row.key, row.count]),
  )
  return { total: Object.values(rows).reduce((a, b) => a + b, 0), rows }
}

/**
 * One acrn-dm boot under `hsmctl sim exec`: resolves {ms, requests} at the marker, then
 * lets the guest power off; or, with `budgetMs` and no marker by then, {reached: false,
 * requests, vcpus, console} after stopping acrn-dm. acrn-dm is always gone after.
 */
async function bootAcrnDm(acrnDm, kit, env, cwd, budgetMs) {
  const start = performance.now()
  const child = spawn(
    process.execPath,
    [
      runJs,
      ...['sim', 'exec', '--', acrnDm, '-m', '256M', '--cpu_affinity', '1'],
      ...['-s', '0:0,hostbridge', '-s', '1:0,lpc', '-l', 'com1,stdio'],
      ...['-k', kit.kernel, '-r', kit.initrd, '-B', kit.cmdline, NAME],
    ],
    { cwd, env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['pipe', 'pipe', 'pipe'] },
  )
  let out = ''
  child.stdout.on('data', (d) => (out += d.toString('latin1')))
  child.stderr.on('data', (d) => (out += d.toString('latin1')))
  child.stdin.on('error', () => {})
  const exited = new Promise((r) => child.on('close', r))
  try {
    for (;;) {
      if (out.includes(`${kit.marker} `)) break
      if (child.exitCode !== null)
        throw new Error(`acrn-dm exited ${child.exitCode}:\n${tail(out, 30)}`)
      if (performance.now() - start > budgetMs) {
        const requests = counted(NAME, env)
        const show = hsmctl(['vm', 'show', NAME, '--json'], env)
        const vcpus = show.status === 0 ? JSON.parse(show.stdout).hypervisor?.vcpus : undefined
        child.kill('SIGINT')
        await exited
        return { reached: false, requests, vcpus, console: out }
      }
      await sleep(20)
    }
    const ms = performance.now() - start
    const requests = counted(NAME, env)
    child.stdin.end('poweroff\n') // /init waits for a line, then powers off
    const status = await Promise.race([exited, sleep(120_000).then(() => 'hang')])
    if (status !== 0) throw new Error(`acrn-dm after the power-off: ${status}\n${tail(out, 30)}`)
    return { reached: true, ms, requests }
  } finally {
    // never leave acrn-dm running: SIGINT through hsmctl, then SIGKILL acrn-dm itself
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT')
      if ((await Promise.race([exited.then(() => 'done'), sleep(20_000)])) !== 'done') {
        const kids = spawnSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).stdout
        for (const pid of (kids ?? '').split('\n').filter(Boolean))
          process.kill(Number(pid), 'SIGKILL')
        child.kill('SIGKILL')
      }
    }
  }
}

export async function run(report) {
  const why = cannot()
  if (why) return report.note(`skipped: ${why}`)
  const build = acrnDmBuild()
  if ('unavailable' in build) return report.note(`skipped: ${build.unavailable}`)
  const acrnDm = build.path

  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-bench-boot-'))
  const hugepages = readFileSync(NR_HUGEPAGES, 'utf8')
  const env = { HSMCTL_RUNTIME_DIR: join(dir, 'run'), HSMCTL_STATE_DIR: join(dir, 'state') }
  const labels = {
    time: 'acrn-dm start to the init marker',
    rate: 'I/O requests/s of that boot',
    qemuTime: 'QEMU -enable-kvm start to the same marker (same kernel, initramfs, cmdline)',
    qemuRate: 'the same requests over QEMU+KVM’s time to the marker',
  }
  try {
    let kit
    try {
      kit = prepare(dir)
    } catch (e) {
      if (e instanceof Cannot) return report.note(`skipped: ${e.message}`)
      throw e
    }
    report.note(`${kit.kernelPackage}, cmdline "${kit.cmdline}"`)
    const qemu = (kvm, budgetMs) =>
      bootQemu({ kvm, kernel: kit.kernel, initrd: kit.initrd, marker: kit.marker, budgetMs })
    const started = hsmctl(['daemon', 'start'], env)
    if (started.status !== 0) throw new Error(`daemon start: ${started.stderr}`)
    let probe
    try {
      probe = await qemu(true, PEER_BUDGET_MS)
    } catch (e) {
      if (e instanceof Cannot) return report.note(`skipped: ${e.message} (setup.sh installs it)`)
      throw e
    }

    if (!probe.reached) {
      // eslint-disable-next-line no-control-regex -- terminal escapes in QEMU's output
      const serial = tail(probe.serial.replace(/\x1b(\[[0-9;?]*[A-Za-z]|[a-z])/g, ''), 3)
      const because = `QEMU -enable-kvm did not reach the init marker in ${PEER_BUDGET_MS / 1000} s (its serial output ends: ${serial.replace(/\n/g, ' | ') || 'nothing'}), so this host's /dev/kvm cannot boot Linux${existsSync('/sys/module/kvm_pvm') ? ' (kvm_pvm: a software nested KVM that emulates an unmodified guest)' : ''}`
      report.unmeasurable({
        label: labels.time,
        unit: 'ms',
        floorLabel: labels.qemuTime,
        target: { atMost: 3 },
        why: because,
      })
      report.unmeasurable({
        label: labels.rate,
        unit: 'req/s',
        floorLabel: labels.qemuRate,
        target: { atLeast: 1 / 3 },
        why: because,
      })
      const tcg = await qemu(false, 300_000)
      report.note(
        `context: QEMU TCG (no KVM) ${tcg.reached ? `reached the marker in ${human(tcg.ms)} ms` : `did not reach it: ${tcg.why}`}`,
      )
      const far = await bootAcrnDm(acrnDm, kit, env, dir, PEER_BUDGET_MS)
      if (far.reached) {
        report.note(
          `context: acrn-dm reached the marker in ${human(far.ms)} ms, where QEMU+KVM did not`,
        )
      } else {
        const v = far.vcpus?.[0]?.execution
        report.note(
          `context: acrn-dm in the same ${PEER_BUDGET_MS / 1000} s: ${far.requests.total} requests (${Object.entries(
            far.requests.rows,
          )
            .map(([k, n]) => `${k} ${n}`)
            .join(
              ', ',
            )}), vCPU 0 ${v ? `${v.state}${v.at ? `, ${v.at.mode} mode, rip ${v.at.rip}` : ''}, exits ${JSON.stringify(v.exits)}` : 'gone'}; console: ${tail(far.console.replace(/^hsmctl: .*\n/gm, ''), 2).replace(/\n/g, ' | ') || 'nothing'}`,
        )
      }
      return
    }

    const requests = []
    const s = await rounds(
      {
        qemu: async () => {
          const q = await qemu(true, PEER_BUDGET_MS * 2)
          if (!q.reached) throw new Error(`QEMU+KVM did not boot this round: ${q.why}`)
          return q.ms
        },
        acrnDm: async () => {
          const b = await bootAcrnDm(acrnDm, kit, env, dir, 30 * PEER_BUDGET_MS)
          if (!b.reached)
            throw new Error(`acrn-dm did not reach the marker in ${(30 * PEER_BUDGET_MS) / 1000} s`)
          requests.push(b.requests.total)
          return b.ms
        },
      },
      { count: ROUNDS, warmup: 0 },
    )
    report.figure({
      label: labels.time,
      unit: 'ms',
      value: s.acrnDm,
      floor: s.qemu,
      floorLabel: labels.qemuTime,
      target: { atMost: 3 },
    })
    const req = Object.assign([...requests], { load: s.acrnDm.load })
    report.figure({
      label: labels.rate,
      unit: 'req/s',
      value: derive((n, ms) => n / (ms / 1000), req, s.acrnDm),
      floor: derive((n, ms) => n / (ms / 1000), req, s.qemu),
      floorLabel: labels.qemuRate,
      target: { atLeast: 1 / 3 },
    })
  } finally {
    hsmctl(['daemon', 'stop'], env)
    writeFileSync(NR_HUGEPAGES, hugepages)
    rmSync(dir, { recursive: true, force: true })
  }
}
