// Run the built CLI (bin/run.js) as a user would, in a child process.
import { spawn, spawnSync } from 'node:child_process'
import { join } from 'node:path'

export const ROOT = join(import.meta.dirname, '..', '..')
export const RUN_JS = join(ROOT, 'bin', 'run.js')

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** `input`: what the command reads on stdin (none: stdin is an empty pipe). */
export function hsmctl(args: string[], env: NodeJS.ProcessEnv = {}, input?: string): CliResult {
  const r = spawnSync(process.execPath, [RUN_JS, ...args], {
    encoding: 'utf8',
    ...(input !== undefined ? { input } : {}),
    // NODE_ENV=test (vitest sets it) would make oclif register tsx and load the commands
    // from src/ instead of the build, three times slower: a user's shell has no NODE_ENV
    env: { ...process.env, NODE_ENV: undefined, NO_COLOR: '1', ...env },
    timeout: 30_000,
  })
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

/** `hsmctl ARGS...` without waiting: for several commands at once. */
export function hsmctlAsync(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUN_JS, ...args], {
      env: { ...process.env, NODE_ENV: undefined, NO_COLOR: '1', ...env },
      timeout: 60_000,
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

/** `hsmctl ARGS...` left running in the background (a recorder, a follower), stopped later
 * with SIGINT (Ctrl-C) or awaited. */
export function hsmctlBackground(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [RUN_JS, ...args], {
    env: { ...process.env, NODE_ENV: undefined, NO_COLOR: '1', ...env },
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)))
  return {
    /** Once `pattern` shows on its stderr (30 s, a hang guard). */
    started: async (pattern: RegExp) => {
      const deadline = Date.now() + 30_000
      while (!pattern.test(stderr)) {
        if (Date.now() > deadline) throw new Error(`not started: ${stderr}`)
        await new Promise((r) => setTimeout(r, 20))
      }
    },
    stop: async (): Promise<CliResult> => {
      child.kill('SIGINT')
      const code = await exited
      return { code, stdout, stderr }
    },
    finished: async (): Promise<CliResult> => ({ code: await exited, stdout, stderr }),
  }
}
