// Every command that streams to stdout ends when its reader goes away (`hsmctl ioreq tail
// | head -n 2`): EPIPE on stdout ends it quietly with status 141, as SIGPIPE ends `yes`
// in `yes | head`. The reader here is this test: it reads a few lines of the command's
// stdout, then closes its end of the pipe.

import { spawn } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RUN_JS } from '../support/cli.js'
import { hsmdSession } from '../support/hsmd-session.js'

const s = hsmdSession('closed-stdout')

beforeAll(() => {
  // a VM whose guest prints to its UART (0x3f8) until stopped: I/O requests and console
  for (const args of [
    ['vm', 'create', 'chatty', '--memory', '1M'],
    ['vm', 'start', 'chatty'],
    ['guest', 'run', 'chatty', '--workload', 'uart', '--rate', '200'],
  ]) {
    const r = s.run(...args)
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0)
  }
})

afterAll(() => {
  s.run('guest', 'stop', 'chatty')
})

interface Ended {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/**
 * Run hsmctl ARGS (with `input` on its stdin), read `lines` lines of its stdout, then
 * close the pipe as `head -n LINES` does; resolves when it exits. A command that keeps
 * running is killed after 30 s (a hang guard: it should end at its next write).
 */
async function readThenClose(args: string[], lines: number, input = ''): Promise<Ended> {
  const child = spawn(process.execPath, [RUN_JS, ...args], {
    env: { ...process.env, NODE_ENV: undefined, NO_COLOR: '1', ...s.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  child.stdin.end(input)
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d))
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on('exit', (code, signal) => resolve([code, signal])),
  )
  const enough = new Promise<boolean>((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d
      if (stdout.split('\n').length > lines) resolve(true)
    })
    void exited.then(() => resolve(false))
  })
  if (!(await enough)) throw new Error(`exited before ${lines} lines: ${stderr}`)
  child.stdout.destroy()
  const guard = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const [code, signal] = await exited
  clearTimeout(guard)
  return { code, signal, stdout, stderr }
}

function expectQuietEnd(r: Ended): void {
  expect([r.code, r.signal], `still running after its reader left; stderr: ${r.stderr}`).toEqual([
    141,
    null,
  ])
  expect(r.stderr).not.toMatch(/EPIPE|Error|at .*\.js:\d+/)
}

describe('a streaming command whose reader goes away ends quietly, status 141', () => {
  it('ioreq tail', async () => {
    const r = await readThenClose(['ioreq', 'tail', 'chatty'], 2)
    expect(r.stdout).toMatch(/chatty +vcpu0 +PIO +OUT +0x3f8/)
    expectQuietEnd(r)
  })

  it('ioreq tail --count (more than the reader takes)', async () => {
    expectQuietEnd(await readThenClose(['ioreq', 'tail', '--count', '100000'], 2))
  })

  it('ioreq watch --interval, as a table', async () => {
    const r = await readThenClose(['ioreq', 'watch', '--interval', '0.1'], 3)
    expect(r.stdout).toMatch(/^VM +REQUEST +COUNT/m)
    expectQuietEnd(r)
  })

  it('ioreq watch --interval --format jsonl', async () => {
    const r = await readThenClose(
      ['ioreq', 'watch', 'chatty', '--interval', '0.1', '--format', 'jsonl'],
      2,
    )
    expect(JSON.parse(r.stdout.split('\n')[0]!)).toMatchObject({ vm: 'chatty' })
    expectQuietEnd(r)
  })

  it('ioreq watch --interval --format csv --count (more than the reader takes)', async () => {
    const r = await readThenClose(
      ['ioreq', 'watch', '--interval', '0.1', '--format', 'csv', '--count', '100000'],
      2,
    )
    expectQuietEnd(r)
  })

  it('vm console --follow', async () => {
    const r = await readThenClose(['vm', 'console', 'chatty', '--follow'], 2)
    expect(r.stdout).toContain('hsmctl uart workload, vCPU 0')
    expectQuietEnd(r)
  })

  it('a shell script whose command streams (hsmctl shell < script)', async () => {
    const r = await readThenClose(['shell'], 2, 'ioreq tail chatty\nvm list\n')
    expect(r.stdout).toMatch(/chatty +vcpu0 +PIO +OUT +0x3f8/)
    expectQuietEnd(r)
  })
})
