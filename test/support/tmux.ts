// Drive a command in a real terminal: a detached tmux session, keys sent with send-keys,
// the screen read with capture-pane.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { rmSync } from 'node:fs'

export const haveTmux = spawnSync('tmux', ['-V'], { stdio: 'ignore' }).error === undefined

export class TmuxSession {
  private static next = 0
  readonly name = `hsmctl-test-${process.pid}-${TmuxSession.next++}`
  private socket = ''

  constructor(command: string, env: Record<string, string>, size = { width: 120, height: 40 }) {
    const exports = Object.entries(env)
      .map(([k, v]) => `export ${k}='${v}';`)
      .join(' ')
    // keep the pane after the command ends, so its last screen and exit code can be read
    // NODE_ENV=test (from vitest, via the tmux server) would put oclif in development mode
    const script = `unset NODE_ENV; ${exports} ${command}; echo "[exit $?]"; sleep 600`
    // Each session has its own tmux server (-L): with one shared server, a test file killing
    // the last session makes the server exit while another file's new-session is connecting
    // to it ("server exited unexpectedly", seen in CI). -f /dev/null: no user config.
    const r = this.tmux([
      'new-session',
      '-d',
      '-s',
      this.name,
      '-x',
      String(size.width),
      '-y',
      String(size.height),
      'sh',
      '-c',
      script,
    ])
    if (r.status !== 0) throw new Error(`tmux new-session failed: ${r.stderr}`)
    this.socket = this.tmux(['display-message', '-p', '#{socket_path}']).stdout.trim()
  }

  private tmux(args: string[]): SpawnSyncReturns<string> {
    return spawnSync('tmux', ['-L', this.name, '-f', '/dev/null', ...args], { encoding: 'utf8' })
  }

  screen(): string {
    return this.tmux(['capture-pane', '-p', '-t', this.name]).stdout
  }

  keys(...keys: string[]): void {
    this.tmux(['send-keys', '-t', this.name, ...keys])
  }

  /** Type literal text (no key names). */
  type(text: string): void {
    this.tmux(['send-keys', '-l', '-t', this.name, text])
  }

  /** `timeoutMs` is a hang guard, generous: the machines that run this are shared and busy. */
  async waitFor(pattern: RegExp, timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const screen = this.screen()
      if (pattern.test(screen)) return screen
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${pattern}; screen:\n${screen}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  kill(): void {
    this.tmux(['kill-server'])
    // the server leaves its socket behind
    if (this.socket) rmSync(this.socket, { force: true })
  }
}
