// ssh: `hsmctl --host ssh://127.0.0.1 vm list --json` beside `ssh 127.0.0.1 true` in the
// same rounds (the floor of any tool that runs a command over SSH: a connection, a login,
// a remote command), and `vm list` over a fleet of 8 hosts beside one host. The hosts are
// real OpenSSH servers on 127.0.0.1 (scripts/bench/_sshd.js: one port, one "host" with
// its own hsmd). hsmctl reuses its connection through a control master and the master's
// forward to hsmd's socket (HSMCTL_SSH_PERSIST, core/daemon/ssh/transport.ts and
// forward.ts): the untimed warm-up rounds open them. A figure without reuse follows.
// Wall-clock times: most of the work is in processes that are not our children (sshd's
// sessions, the remote hsmctl, hsmd), so CPU time would not see it; the rounds interleave
// the value and its floor, so a loaded machine slows both.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { derive, human, median, rounds, runCommand, START_UP_ROUNDS } from './_lib.js'
import { sshdMissing, startSshHosts } from './_sshd.js'

export const title =
  'ssh: hsmctl --host ssh:// against plain ssh, and a fleet of 8 against one host'

const runJs = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'run.js')

const SINGLE = {
  label: 'hsmctl --host ssh://127.0.0.1 vm list --json',
  unit: 'ms',
  floorLabel: 'ssh 127.0.0.1 true (a new connection each time, as any ssh command)',
  target: { atMost: 1.5 },
}
const FLEET = {
  label: 'hsmctl vm list --json over a fleet of 8 hosts',
  unit: 'ms',
  floorLabel: 'the same over one host',
  target: { atMost: 2 },
}

export async function run(report) {
  const missing = sshdMissing()
  if (missing) {
    // setup.sh installs them; without them there is no floor to measure against
    report.unmeasurable({ ...SINGLE, why: missing })
    report.unmeasurable({ ...FLEET, why: missing })
    return
  }
  const ssh = await startSshHosts(8)
  try {
    const env = ssh.env
    const [one] = ssh.hosts
    const wall = (cmd, args) => () => runCommand(cmd, args, { env }).wallMs
    // each host's hsmd running, with a VM, as an operator's would be
    for (const h of ssh.hosts)
      runCommand(
        process.execPath,
        [runJs, 'vm', 'create', 'b1', '--memory', '1M', '--host', h.url],
        { env },
      )

    // the floor of both: a new ssh connection that runs `true`
    const sshTrue = wall('ssh', [
      '-F',
      join(ssh.dir, 'ssh_config'),
      '-p',
      String(one.port),
      '127.0.0.1',
      'true',
    ])
    const single = await rounds(
      {
        floor: sshTrue,
        value: wall(process.execPath, [runJs, '--host', one.url, 'vm', 'list', '--json']),
      },
      { count: START_UP_ROUNDS, warmup: 2 },
    )
    report.figure({ ...SINGLE, value: single.value, floor: single.floor })

    // without reuse: a handshake, a login and a remote hsmctl (dial-stdio) every time
    const fresh = await rounds(
      {
        floor: sshTrue,
        value: () =>
          runCommand(process.execPath, [runJs, '--host', one.url, 'vm', 'list', '--json'], {
            env: { ...env, HSMCTL_SSH_PERSIST: '0' },
          }).wallMs,
      },
      { count: START_UP_ROUNDS, warmup: 1 },
    )
    // no target of its own (issue 14 asks for the reused connection): what reuse saves
    const ratio = median(derive((v, f) => v / f, fresh.value, fresh.floor))
    report.note(
      `without reuse (HSMCTL_SSH_PERSIST=0: a handshake, a login and a remote hsmctl each time): ${human(median(fresh.value))} ms, ${ratio.toFixed(2)}x ssh 127.0.0.1 true (${human(median(fresh.floor))} ms)`,
    )

    const fleet = ssh.hosts.map((h) => h.url).join(',')
    const eight = await rounds(
      {
        floor: wall(process.execPath, [runJs, 'vm', 'list', '--json', '--host', one.url]),
        value: wall(process.execPath, [runJs, 'vm', 'list', '--json', '--host', fleet]),
      },
      { count: START_UP_ROUNDS, warmup: 2 },
    )
    report.figure({ ...FLEET, value: eight.value, floor: eight.floor })
  } finally {
    await ssh.stop()
  }
}
