// acrn-dm's VMs (issue 12): `hsmctl vm list --json` with 4 acrn-dm VMs running on the
// simulation (started from registered launch scripts, each asked DM_QUERY on its monitor
// socket and merged with hsmd's view), against ACRN's own `acrnctl list` on the same VMs
// in the same rounds: C, no daemon, the same DM_QUERY per socket; and the same command
// against `node -e 0` (the start-up any Node.js program pays). In CPU time of each command
// and everything it waited for (hsmd's share for hsmctl, and the acrn-dm processes'
// answers for both), wall-clock medians noted. A check: both list the same 4 VMs running.
//
// It needs what acrn-dm needs (root, the host's MADT, its build from ../shared/acrn-dm by
// scripts/build-acrn-dm.js, iasl, hugepages) and runs everything in a private mount
// namespace (acrnctl and acrn-dm hard-code /run/acrn/mngr and /usr/share/acrn/conf/add),
// so the host's directories are never touched. Where it cannot run, it says why and skips.
//
//   npm run build && npm run bench -- acrn-dm
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, URL } from 'node:url'
import { acrnDmBuild, privateAcrnNamespace } from './_acrn-dm.js'
import { rounds, START_UP, START_UP_ROUNDS, startUpMeasures, wallNote } from './_lib.js'

export const title = 'acrn-dm VMs: hsmctl vm list --json vs acrnctl list on the same 4 VMs'

const root = fileURLToPath(new URL('../../', import.meta.url))
const runJs = join(root, 'bin', 'run.js')
const NR_HUGEPAGES = '/proc/sys/vm/nr_hugepages'
const VMS = ['bench1', 'bench2', 'bench3', 'bench4']

/** Why this machine cannot run acrn-dm, or undefined. */
function cannot() {
  if (process.getuid?.() !== 0) return 'acrn-dm needs root (it reads the host MADT first)'
  if (!existsSync('/sys/firmware/acpi/tables/APIC')) return 'this host has no ACPI MADT'
  if (!existsSync(join(root, 'helper', 'build', 'libhsm-shim.so')))
    return 'the device shim is not built (make -C helper)'
  if (spawnSync('unshare', ['--version'], { stdio: 'ignore' }).status !== 0)
    return 'unshare (util-linux) is missing'
  return undefined
}

export async function run(report) {
  const why = cannot()
  if (why) return report.note(`skipped: ${why}`)
  const build = acrnDmBuild()
  if ('unavailable' in build) return report.note(`skipped: ${build.unavailable}`)
  const { path: acrnDm, acrnctl } = build

  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-bench-acrn-dm-'))
  const hugepages = readFileSync(NR_HUGEPAGES, 'utf8')
  const env = {
    ...process.env,
    NODE_ENV: undefined,
    NO_COLOR: '1',
    HSMCTL_RUNTIME_DIR: join(dir, 'run'),
    HSMCTL_STATE_DIR: join(dir, 'state'),
    HSMCTL_ACRN_MNGR_DIR: undefined,
    HSMCTL_ACRN_CONF_DIR: undefined,
  }
  let ns
  /** nsenter's arguments to run `cmd args` in the namespace. */
  const inNs = (cmd, args) => ['-t', String(ns), '-m', '--', cmd, ...args]
  const hsmctl = (...args) => {
    const r = spawnSync('nsenter', inNs(process.execPath, [runJs, ...args]), {
      env,
      encoding: 'utf8',
    })
    if (r.status !== 0) throw new Error(`hsmctl ${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }
  const pids = []
  try {
    ns = privateAcrnNamespace(dir)
    // a guest that writes COM1 and halts, as acrn-dm's -E loader takes it
    const guest = join(dir, 'guest.elf')
    const src = join(dir, 'g.S')
    writeFileSync(
      src,
      ".code32\n.globl _start\n_start: mov $0x3f8,%dx\nmov $'H',%al\nout %al,(%dx)\n1: hlt\njmp 1b\n",
    )
    for (const [tool, args] of [
      ['as', ['--32', src, '-o', join(dir, 'g.o')]],
      [
        'ld',
        [
          '-m',
          'elf_i386',
          '-N',
          '--no-warn-rwx-segments',
          '-e',
          '_start',
          '-Ttext=0x100000',
          join(dir, 'g.o'),
          '-o',
          guest,
        ],
      ],
    ]) {
      const r = spawnSync(tool, args, { encoding: 'utf8' })
      if (r.status !== 0) return report.note(`skipped: ${tool} (binutils) failed: ${r.stderr}`)
    }
    const script = join(dir, 'launch.sh')
    writeFileSync(
      script,
      `#!/bin/bash\n${acrnDm} -m 128M --cpu_affinity 1 -s 0:0,hostbridge -s 1:0,lpc -l com1,stdio -E ${guest} $1\n`,
    )
    for (const name of VMS) {
      hsmctl('vm', 'add', script, '--', name)
      pids.push(JSON.parse(hsmctl('vm', 'start', name, '--json')).pid)
    }
    const daemonPid = JSON.parse(hsmctl('daemon', 'status', '--json')).pid

    // the check: both see the same 4 VMs, running
    const ours = JSON.parse(hsmctl('vm', 'list', '--json'))
      .filter((v) => v.owner.startsWith('acrn-dm'))
      .map((v) => `${v.name} ${v.state}`)
      .sort()
    const theirs = spawnSync('nsenter', inNs(acrnctl, ['list']), { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean)
      .map((l) => l.replace(/\t\t/, ' ').replace(/ started$/, ' running'))
      .sort()
    const expected = VMS.map((n) => `${n} running`)
    report.check(
      'hsmctl vm list and acrnctl list show the same 4 VMs running',
      JSON.stringify(ours) === JSON.stringify(expected) &&
        JSON.stringify(theirs) === JSON.stringify(expected),
      `hsmctl: ${ours.join(', ')}; acrnctl: ${theirs.join(', ')}`,
    )

    const walls = {}
    const t = await rounds(
      startUpMeasures(
        {
          acrnctl: ['nsenter', inNs(acrnctl, ['list']), { env }, pids],
          node: ['nsenter', inNs(...START_UP.node), { env }],
          hsmctl: [
            'nsenter',
            inNs(process.execPath, [runJs, 'vm', 'list', '--json']),
            { env },
            [daemonPid, ...pids],
          ],
        },
        walls,
      ),
      { count: START_UP_ROUNDS, warmup: 2 },
    )
    report.figure({
      label: 'hsmctl vm list --json (4 acrn-dm VMs, + hsmd)',
      unit: 'CPU ms',
      value: t.hsmctl,
      floor: t.acrnctl,
      floorLabel:
        'acrnctl list on the same 4 VMs (C, no daemon; each through nsenter, and acrn-dm answering)',
      // node's own start-up is some 12x acrnctl's whole run (the next figure's floor)
      target: { atMost: 30 },
    })
    report.figure({
      label: 'the same hsmctl vm list --json',
      unit: 'CPU ms',
      value: t.hsmctl,
      floor: t.node,
      floorLabel: 'node -e 0, through nsenter (what any Node.js program pays to start)',
      target: { atMost: 2 },
    })
    report.note(
      wallNote(walls, {
        acrnctl: 'acrnctl list',
        node: 'node -e 0',
        hsmctl: 'hsmctl vm list --json',
      }),
    )
  } finally {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // gone
      }
    }
    if (ns !== undefined) {
      spawnSync('nsenter', inNs(process.execPath, [runJs, 'daemon', 'stop']), { env })
      process.kill(ns, 'SIGKILL')
    }
    writeFileSync(NR_HUGEPAGES, hugepages)
    rmSync(dir, { recursive: true, force: true })
  }
}
