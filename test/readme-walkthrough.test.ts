// The README's quick start and "A first VM, step by step" run as written, one after the
// other, as a new user runs them (issue 13 item 21: both created `demo`, so the
// walkthrough's first command failed). Each `$ hsmctl ...` line must succeed, unless the
// README shows it failing: then it must fail with exactly the Error and Hint shown.

import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { ROOT, RUN_JS } from './support/cli.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-readme-'))
const env = {
  ...process.env,
  NODE_ENV: undefined,
  NO_COLOR: '1',
  HSMCTL_RUNTIME_DIR: join(dir, 'run'),
  HSMCTL_STATE_DIR: join(dir, 'state'),
  HSMCTL_BACKEND: 'sim',
}

afterAll(() => {
  hsmctl(['daemon', 'stop'])
  rmSync(dir, { recursive: true, force: true })
})

function hsmctl(args: string[]) {
  const r = spawnSync(process.execPath, [RUN_JS, ...args], {
    cwd: dir,
    encoding: 'utf8',
    env,
    timeout: 30_000,
  })
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

/** The words of a command line as sh would split it (the README's have no quotes). */
function words(line: string): { args: string[]; output?: string } {
  const [command, output] = line.split(' > ')
  return { args: command!.trim().split(/ +/), ...(output ? { output: output.trim() } : {}) }
}

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')

it('the quick start, then the walkthrough: every command does what the README shows', () => {
  const quick = /## Quick start[\s\S]*?```sh\n(.*)\n```/.exec(readme)![1]!
  const steps = quick
    .split(' && ')
    .filter((c) => c.startsWith('./bin/run.js '))
    .map((c) => ({ line: c.slice('./bin/run.js '.length), shown: [] as string[] }))
  const walk = /## A first VM, step by step\n+```console\n([\s\S]*?)```/.exec(readme)![1]!
  for (const line of walk.split('\n')) {
    if (line.startsWith('$ hsmctl ')) {
      steps.push({ line: line.slice('$ hsmctl '.length).replace(/ +#.*$/, ''), shown: [] })
    } else if (line.trim() !== '') steps.at(-1)!.shown.push(line)
  }
  expect(steps.length).toBeGreaterThan(10)
  for (const { line, shown } of steps) {
    const { args, output } = words(line)
    const r = hsmctl(args)
    if (output) writeFileSync(join(dir, output), r.stdout)
    const error = shown.filter((l) => /^(Error|Hint): /.test(l))
    if (error.length) {
      expect(r.code, line).not.toBe(0)
      expect(r.stderr.trimEnd().split('\n'), line).toEqual(error)
    } else {
      expect(r.code, `hsmctl ${line}: ${r.stderr}`).toBe(0)
    }
  }
})
