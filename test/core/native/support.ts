// Shared by the helper tests: build hsm-helper with the project's own build script, and
// drive it with raw frames (bad ones included) below the NativeProcess client.

import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'
import { errnoByCode } from '../../../src/core/abi/errno.js'
import { helperPath } from '../../../src/core/native/preflight.js'
import {
  decodeMessage,
  encodeFrame,
  FLAG_REFUSED,
  type Frame,
  FrameDecoder,
  type FrameInit,
} from '../../../src/core/native/protocol.js'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
export const BUILD_SCRIPT = join(ROOT, 'scripts', 'build-helper.js')
export const HELPER = helperPath()
export const HELPER_TESTING = helperPath({ testing: true })

/** A frame refused by the helper or the server itself: -1, the errno, a message saying why. */
export function expectRefused(frame: Frame, errno: string, message: RegExp): void {
  expect(frame.flags & FLAG_REFUSED, decodeMessage(frame.payload)).toBe(FLAG_REFUSED)
  expect(frame.result).toBe(-1n)
  expect(frame.errno).toBe(errnoByCode(errno)!.errno)
  expect(decodeMessage(frame.payload)).toMatch(message)
}

/** A character device any user may open and whose ioctls all fail with ENOTTY. */
export const FAKE_DEVICE = '/dev/null'

/** Whether a program runs here (`prog --version` exits 0). */
export function available(prog: string): boolean {
  return spawnSync(prog, ['--version'], { stdio: 'ignore' }).status === 0
}

function findCompiler(): string | undefined {
  for (const cc of [process.env.CC, 'cc', 'gcc', 'clang']) {
    if (cc && spawnSync(cc, ['--version'], { stdio: 'ignore' }).status === 0) return cc
  }
  return undefined
}

/** Why the helper tests cannot run here (only: no C compiler), or undefined. */
export const helperUnavailable: string | undefined = findCompiler()
  ? undefined
  : 'no C compiler (cc, gcc or clang) on PATH, so hsm-helper cannot be built; ' +
    'install one (Debian: apt-get install gcc libc6-dev) to run these tests'

if (helperUnavailable) {
  // CI installs a compiler (setup.sh); there a skip would hide a broken helper
  if (process.env.HSMCTL_CI === '1')
    throw new Error(`hsm-helper tests cannot run: ${helperUnavailable}`)
  console.warn(`skipping hsm-helper tests: ${helperUnavailable}`)
}

/** Build (or bring up to date) both helper binaries through scripts/build-helper.js. */
export function buildHelper(): void {
  const r = spawnSync(process.execPath, [BUILD_SCRIPT, '--strict'], { encoding: 'utf8' })
  if (r.status !== 0) {
    throw new Error(`scripts/build-helper.js --strict failed:\n${r.stdout}\n${r.stderr}`)
  }
}

/** hsm-helper under a test's direct control: raw bytes in, decoded frames out. */
export class RawHelper {
  readonly child: ChildProcessWithoutNullStreams
  readonly frames: Frame[] = []
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  private waiters: Array<() => void> = []
  stderr = ''

  /** `wrapper` runs the helper under another program (strace). */
  constructor(binary = HELPER, device = FAKE_DEVICE, wrapper: string[] = []) {
    const argv = [...wrapper, binary, '--device', device]
    this.child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] })
    const decoder = new FrameDecoder({
      frame: (f) => {
        this.frames.push(f)
        for (const w of this.waiters.splice(0)) w()
      },
      garbage: () => {
        throw new Error('the helper wrote bytes that are not a frame')
      },
    })
    this.child.stdout.on('data', (c: Buffer) => decoder.push(c))
    this.child.stderr.on('data', (c: Buffer) => (this.stderr += c.toString()))
    this.child.stdin.on('error', () => {})
    this.exit = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => {
        resolve({ code, signal })
        for (const w of this.waiters.splice(0)) w()
      }),
    )
  }

  send(bytes: Uint8Array): void {
    this.child.stdin.write(bytes)
  }

  frame(init: FrameInit): void {
    this.send(encodeFrame(init))
  }

  /** The reply with this id (and op, when given), waiting for it if need be. */
  async reply(id: number, timeoutMs = 30_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const i = this.frames.findIndex((f) => f.id === id)
      if (i >= 0) return this.frames.splice(i, 1)[0]!
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`helper exited before replying to id ${id}; stderr: ${this.stderr}`)
      }
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no reply to id ${id} within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
  }

  /** Send a request frame and wait for its reply. */
  async call(op: number, id: number, payload?: Uint8Array): Promise<Frame> {
    this.frame({ op, id, ...(payload ? { payload } : {}) })
    return this.reply(id)
  }

  /** EOF on stdin; resolves with how it exited. */
  async end(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.child.stdin.end()
    return this.exit
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
  }
}

/**
 * A C program of a test (under the shim) that prints a line per step and reads lines on
 * stdin: waitFor a line of its output, say a line to it.
 */
export class Probe {
  out = ''
  done = false
  readonly exited: Promise<number | null>
  constructor(readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.on('data', (d: Buffer) => (this.out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (this.out += d.toString()))
    this.exited = new Promise((resolve) =>
      child.on('exit', (code) => {
        this.done = true
        resolve(code)
      }),
    )
  }

  /** The first match of `line` in the output, once there; throws if the program ends first. */
  async waitFor(line: RegExp, ms = 15_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms
    for (;;) {
      const m = this.out.match(line)
      if (m) return m
      if (Date.now() > deadline || this.done) throw new Error(`no ${line}; output:\n${this.out}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  say(line: string): void {
    this.child.stdin.write(`${line}\n`)
  }

  go(): void {
    this.say('go')
  }
}
