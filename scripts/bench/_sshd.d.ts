// Types of _sshd.js, for the tests that start SSH hosts (test/commands/ssh.test.ts).
export const SSHD: string
export function sshdMissing(): string | undefined
export interface SshTestHost {
  port: number
  url: string
  /** What a local command needs to reach this host's hsmd directly (its directories). */
  env: Record<string, string>
}
export interface SshTestHosts {
  dir: string
  /** The client side's environment (HSMCTL_SSH_COMMAND, its own runtime and state dirs). */
  env: NodeJS.ProcessEnv
  hosts: SshTestHost[]
  stop(): Promise<void>
}
export function startSshHosts(
  count: number,
  options?: {
    wrongKey?: number[]
    noHsmctl?: number[]
    noisy?: number[]
    env?: Record<string, string>
  },
): Promise<SshTestHosts>
