// --host ssh://...: commands, the shell and the watch views reach another host's hsmd
// through a real OpenSSH server (scripts/bench/_sshd.js: sshd on 127.0.0.1, a throwaway
// host key, user key, known_hosts and config; each port a "host" with its own runtime
// and state dirs, so its own hsmd). The remote hsmctl is this checkout's bin/run.js.
import { readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { sshdMissing, startSshHosts, type SshTestHosts } from '../../scripts/bench/_sshd.js'
import { hsmctl, hsmctlAsync, RUN_JS } from '../support/cli.js'
import { haveTmux, TmuxSession } from '../support/tmux.js'

const missing = sshdMissing()
if (missing) {
  if (process.env.HSMCTL_CI === '1') throw new Error(`cannot run the ssh tests: ${missing}`)
  console.warn(`\n*** SKIPPED the --host ssh:// tests: ${missing} ***\n`)
}

const LONG = 240_000 // a hang guard: these machines are shared and busy

interface VmRow {
  name: string
  host?: string
  error?: { message: string; exitCode: number }
}

describe.skipIf(missing !== undefined)('--host ssh:// (a real sshd)', { timeout: LONG }, () => {
  let ssh: SshTestHosts
  // host 0 and 1 work; 2's known_hosts entry is another key; 3 has no hsmctl on its PATH;
  // 4's login prints a line
  beforeAll(async () => {
    ssh = await startSshHosts(5, { wrongKey: [2], noHsmctl: [3], noisy: [4] })
  }, LONG)
  afterAll(async () => ssh?.stop(), LONG)

  const url = (i: number) => ssh.hosts[i]!.url
  const label = (i: number) => url(i).slice('ssh://'.length)
  /** hsmctl on the client side (its own runtime dir: no local hsmd is involved). */
  const remote = (args: string[], env: NodeJS.ProcessEnv = {}, input?: string) =>
    hsmctl(args, { ...ssh.env, ...env }, input)
  /** hsmctl on "host" i itself, straight to its socket (no ssh): what is really there. */
  const onHost = (i: number, args: string[]) => hsmctl(args, ssh.hosts[i]!.env)
  const namesOn = (i: number) =>
    (JSON.parse(onHost(i, ['vm', 'list', '--json']).stdout) as VmRow[]).map((v) => v.name)

  it('a create and a query run on the named host, and only there', () => {
    const create = remote(['vm', 'create', 'r1', '--memory', '1M', '--host', url(0)])
    expect(create.stderr).toMatch(new RegExp(`hsmctl: ${label(0)}: started the hsmd daemon`))
    expect(create.code, create.stderr).toBe(0)
    expect(create.stdout).toMatch(/r1\s+vmid \d+\s+created/)
    // the global flag before the command (docker -H style), and HSMCTL_HOST
    const listed = remote(['--host', url(0), 'vm', 'list', '--json'])
    expect(listed.code, listed.stderr).toBe(0)
    expect((JSON.parse(listed.stdout) as VmRow[]).map((v) => v.name)).toContain('r1')
    const shown = remote(['vm', 'show', 'r1'], { HSMCTL_HOST: url(0) })
    expect(shown.code, shown.stderr).toBe(0)
    expect(shown.stdout).toMatch(/r1\s+vmid \d+/)
    // really on host 0's hsmd; not on host 1's, nor on the client's own machine dirs
    expect(namesOn(0)).toContain('r1')
    expect(remote(['vm', 'list', '--json', '--host', url(1)]).stdout).not.toMatch(/"r1"/)
    // an error from the remote hsmd keeps its class and exit code
    const nope = remote(['vm', 'show', 'nope', '--host', url(0)])
    expect(nope.code).toBe(3)
    expect(nope.stderr).toMatch(/no VM named 'nope'/)
  })

  it('later commands reach hsmd through the master’s forward; a stale one falls back to dial-stdio', async () => {
    // the first command's dial-stdio asked the control master for a forward to hsmd
    const dir = join(ssh.env.HSMCTL_RUNTIME_DIR!, 'ssh')
    const forward = async () => {
      for (let i = 0; i < 200; i++) {
        const found = readdirSync(dir).find((f) => f.endsWith('.hsmd'))
        if (found) return found
        await new Promise((r) => setTimeout(r, 50))
      }
      return undefined
    }
    expect(remote(['vm', 'list', '--host', url(0)]).code).toBe(0)
    expect(await forward()).toBeDefined()
    // with ssh itself broken, a query still works: it needs no new ssh session
    const reused = remote(['vm', 'list', '--json', '--host', url(0)], {
      HSMCTL_SSH_COMMAND: `ssh -F ${ssh.dir}/no-such-config`,
    })
    expect(reused.code, reused.stderr).toBe(0)
    expect(reused.stdout).toMatch(/"r1"/)
    // hsmd gone on the host: the forward leads nowhere, dial-stdio starts hsmd again
    expect(onHost(0, ['daemon', 'stop']).code).toBe(0)
    const again = remote(['vm', 'list', '--json', '--host', url(0)])
    expect(again.code, again.stderr).toBe(0)
    expect(again.stderr).toMatch(new RegExp(`hsmctl: ${label(0)}: started the hsmd daemon`))
    // r1's spec was journaled when hsmd stopped
    expect(JSON.parse(again.stdout)).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'r1', owner: 'journal' })]),
    )
  })

  it('ioreq watch --once and ioreq tail carry a remote VM’s requests', async () => {
    expect(remote(['vm', 'create', 'w1', '--memory', '1M', '--start', '--host', url(1)]).code).toBe(
      0,
    )
    const tail = hsmctlAsync(['ioreq', 'tail', 'w1', '--count', '2', '--host', url(1)], ssh.env)
    // the tail says on stderr when it follows; a few accesses until it has two
    for (let i = 0; i < 40; i++) {
      const access = remote(['guest', 'access', 'w1', '--pio', '0x3f8', '--read', '--host', url(1)])
      expect(access.code, access.stderr).toBe(0)
      const done = await Promise.race([
        tail.then(() => true),
        new Promise((r) => setTimeout(() => r(false), 250)),
      ])
      if (done) break
    }
    const tailed = await tail
    expect(tailed.code, tailed.stderr).toBe(0)
    expect(tailed.stdout.trim().split('\n')).toHaveLength(2)
    expect(tailed.stdout).toMatch(/w1\s+vcpu0\s+PIO\s+IN\s+0x3f8/)
    const watch = remote([
      'ioreq',
      'watch',
      'w1',
      '--once',
      '--interval',
      '0.2',
      '--format',
      'jsonl',
      '--host',
      url(1),
    ])
    expect(watch.code, watch.stderr).toBe(0)
    const rows = watch.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { vm: string; addr: string; count: number })
    const row = rows.find((r) => r.vm === 'w1' && r.addr === '0x3f8')
    expect(row?.count).toBeGreaterThanOrEqual(2)
  })

  it('commands that work on this machine refuse --host and change nothing', () => {
    const stop = remote(['vm', 'stop', 'r1', '--host', url(0)])
    expect(stop.code).toBe(2)
    expect(stop.stderr).toMatch(new RegExp(`\`vm stop\` asks acrn-dm .* cannot run on ${label(0)}`))
    const exec = remote(['--host', url(0), 'sim', 'exec', 'true'])
    expect(exec.code).toBe(2)
    expect(exec.stderr).toMatch(/`sim exec` runs a program on this machine/)
    const payload = remote([
      'vm',
      'create',
      'p1',
      '--memory',
      '1M',
      '--payload',
      RUN_JS,
      '--host',
      url(0),
    ])
    expect(payload.code).toBe(2)
    expect(payload.stderr).toMatch(/--payload: .* hsmd on .* opens files on its own/)
    expect(namesOn(0)).not.toContain('p1')
    const many = remote(['vm', 'create', 'm1', '--memory', '1M', '--host', `${url(0)},${url(1)}`])
    expect(many.code).toBe(2)
    expect(many.stderr).toMatch(/2 hosts named; `vm create` runs on one host at a time/)
    expect(namesOn(0)).not.toContain('m1')
  })

  it('wrong host key, wrong user, no hsmctl there, a bad URL: clear errors naming the host', () => {
    const key = remote(['vm', 'list', '--host', url(2)])
    expect(key.code).toBe(5)
    expect(key.stderr).toMatch(
      new RegExp(`ssh refused ${label(2)}: its host key is not the one in known_hosts`),
    )
    expect(key.stderr).toMatch(/Hint: .*ssh-keygen -R/)
    const user = remote(['vm', 'list', '--host', `ssh://nosuchuser@${label(0)}`])
    expect(user.code).toBe(5)
    expect(user.stderr).toMatch(
      new RegExp(`ssh could not log in to nosuchuser@${label(0)}.*Permission denied`),
    )
    const none = remote(['vm', 'list', '--host', url(3)])
    expect(none.code).toBe(5)
    expect(none.stderr).toMatch(
      new RegExp(`ssh reached ${label(3)}, but hsmctl is not installed there`),
    )
    const noisy = remote(['vm', 'list', '--host', url(4)])
    expect(noisy.code).toBe(5)
    expect(noisy.stderr).toMatch(
      new RegExp(`ssh reached ${label(4)}, but something there printed text before hsmctl`),
    )
    const daemon = remote(['vm', 'list', '--backend', 'native', '--host', url(0)])
    expect(daemon.code).toBe(5)
    expect(daemon.stderr).toMatch(new RegExp(`hsmd on ${label(0)}: /dev/acrn_hsm`))
    const bad = remote(['vm', 'list', '--host', 'tcp://127.0.0.1'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(
      /--host: 'tcp:\/\/127.0.0.1' uses tcp:\/\/; hsmctl reaches remote hosts over ssh:\/\/ only/,
    )
  })

  it('a fleet: vm list and ioreq watch ask every host in parallel; one down is one row, exit 8', () => {
    // nobody listens on port 1: that host is down
    const fleet = `${url(0)}, ${url(1)},ssh://127.0.0.1:1`
    const list = remote(['vm', 'list', '--json', '--host', fleet])
    expect(list.code, list.stderr).toBe(8)
    const rows = JSON.parse(list.stdout) as VmRow[]
    expect(rows.find((r) => r.name === 'r1')?.host).toBe(label(0))
    expect(rows.find((r) => r.name === 'w1')?.host).toBe(label(1))
    const down = rows.filter((r) => r.error)
    expect(down).toHaveLength(1)
    expect(down[0]).toMatchObject({ host: '127.0.0.1:1', error: { exitCode: 5 } })
    expect(down[0]!.error!.message).toMatch(/ssh could not connect to 127\.0\.0\.1:1/)
    // the table: a HOST column, the down host's row and its error under the table
    const table = remote(['vm', 'list', '--host', fleet])
    expect(table.code).toBe(8)
    expect(table.stdout).toMatch(/^HOST\s+NAME\s+VMID\s+STATE/m)
    expect(table.stdout).toMatch(
      new RegExp(`^${label(1).replace(/\./g, '\\.')}\\s+w1\\s+\\d+\\s+running`, 'm'),
    )
    expect(table.stdout).toMatch(/^127\.0\.0\.1:1\s+-\s+-\s+no answer/m)
    // all hosts up: exit 0; @FILE names them one a line
    const file = `${ssh.dir}/fleet`
    writeFileSync(file, `# two hosts\n${url(0)}\n${url(1)}\n`)
    const both = remote(['vm', 'list', '--json', '--host', `@${file}`])
    expect(both.code, both.stderr).toBe(0)
    expect(new Set((JSON.parse(both.stdout) as VmRow[]).map((r) => r.host))).toEqual(
      new Set([label(0), label(1)]),
    )
    // ioreq watch: w1's requests on host 1, with its host; the down host an error record
    const watch = remote([
      'ioreq',
      'watch',
      '--once',
      '--interval',
      '0.2',
      '--format',
      'jsonl',
      '--host',
      fleet,
    ])
    expect(watch.code, watch.stderr).toBe(8)
    const records = watch.stdout
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as {
            host: string
            vm?: string
            addr?: string
            count?: number
            error?: string
          },
      )
    expect(records.find((r) => r.vm === 'w1' && r.addr === '0x3f8')).toMatchObject({
      host: label(1),
    })
    expect(records.filter((r) => r.error)).toEqual([
      expect.objectContaining({
        host: '127.0.0.1:1',
        error: expect.stringMatching(/Connection refused/),
      }),
    ])
    const csv = remote([
      'ioreq',
      'watch',
      '--once',
      '--interval',
      '0.2',
      '--format',
      'csv',
      '--host',
      fleet,
    ])
    expect(csv.stdout.split('\n')[0]).toMatch(/^time,host,vm,vmid,.*,client,error$/)
  })

  it('daemon status and stop reach the remote hsmd', () => {
    expect(remote(['daemon', 'start', '--host', url(1)]).code).toBe(0)
    const status = remote(['daemon', 'status', '--json', '--host', url(1)])
    expect(status.code, status.stderr).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({ running: true, backend: 'sim' })
    expect(JSON.parse(status.stdout).socket).toContain(ssh.hosts[1]!.env.HSMCTL_RUNTIME_DIR)
    const stop = remote(['daemon', 'stop', '--host', url(1)])
    expect(stop.code, stop.stderr).toBe(0)
    expect(stop.stderr).toMatch(new RegExp(`stopped hsmd \\(sim\\) pid \\d+ on ${label(1)}`))
    const after = remote(['daemon', 'status', '--host', url(1)])
    expect(after.code).toBe(3)
    expect(after.stdout).toMatch(new RegExp(`hsmd \\(sim\\) on ${label(1)}: not running`))
  })

  describe.skipIf(!haveTmux)('the shell in a terminal', () => {
    const sessions: TmuxSession[] = []
    afterEach(() => {
      for (const s of sessions.splice(0)) s.kill()
    })

    it('the prompt shows the host, commands and the watch view run there', async () => {
      const env = Object.fromEntries(
        Object.entries(ssh.env).filter(([k]) => k.startsWith('HSMCTL_')),
      ) as Record<string, string>
      const s = new TmuxSession(`trap : INT; ${process.execPath} ${RUN_JS} --host ${url(0)}`, {
        ...env,
        NO_COLOR: '1',
      })
      sessions.push(s)
      const prompt = (n: number) =>
        new RegExp(`hsmctl\\(${label(0).replace(/\./g, '\\.')}, sim, ${n} VMs?\\)>$`, 'm')
      // the prompt never starts hsmd there (run alone, this test finds none yet)
      const first = await s.waitFor(
        /hsmctl\(127\.0\.0\.1:\d+, sim, (\d+ VMs?|no daemon)\)>$/m,
        120_000,
      )
      const before = Number(/, sim, (\d+) VMs?\)>$/m.exec(first)?.[1] ?? 0)
      s.type('vm create t1 --memory 1M')
      s.keys('Enter')
      await s.waitFor(prompt(before + 1), 120_000)
      // the full-screen watch view, remote; q brings the prompt back
      s.type('ioreq watch t1 --interval 0.3')
      s.keys('Enter')
      await s.waitFor(/hsmctl ioreq watch {2}t1 \(vmid \d+\)/, 120_000)
      s.keys('q')
      await s.waitFor(prompt(before + 1), 120_000)
      // it shows one host: a fleet is refused (samples of several: --once, --interval)
      s.type(`ioreq watch --host ${url(0)},${url(1)}`)
      s.keys('Enter')
      await s.waitFor(/--host: the full-screen view shows one host/, 120_000)
      s.type('vm show t1')
      s.keys('Enter')
      expect(await s.waitFor(/t1\s+vmid \d+\s+created/, 120_000)).not.toMatch(
        /Error: (?!--host: the full-screen)/,
      )
      s.type('exit')
      s.keys('Enter')
      expect(await s.waitFor(/\[exit \d+\]/, 60_000)).toMatch(/\[exit 0\]/)
      expect(namesOn(0)).toContain('t1')
    })
  })
})
