// Guest payloads assembled at test time from source, with GNU as and objcopy (binutils;
// setup.sh installs them): the bytes a test runs are the source beside it, never a blob.

import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

function missing(tool: string): boolean {
  return spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0
}

/** Why payloads cannot be assembled here, or undefined. */
export const assemblerUnavailable: string | undefined = ['as', 'ld', 'objcopy'].some(missing)
  ? 'GNU as, ld or objcopy is missing (Debian: apt-get install binutils; setup.sh does it)'
  : undefined

/**
 * The flat binary of `source` (GNU as syntax, AT&T), linked so that its first byte is at
 * guest-physical `base`. Put `.code16`/`.code32` at the top for real or protected mode;
 * the default is 64-bit. Everything must be in .text.
 */
export function assemble(source: string, base = 0): Uint8Array {
  if (assemblerUnavailable) throw new Error(assemblerUnavailable)
  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-asm-'))
  try {
    const src = join(dir, 'guest.S')
    writeFileSync(src, `.text\n${source}\n`)
    run('as', ['--64', '-o', join(dir, 'guest.o'), src])
    run('ld', [
      '-m',
      'elf_x86_64',
      '-N',
      '-e',
      '0',
      `-Ttext=0x${base.toString(16)}`,
      '-o',
      join(dir, 'guest.elf'),
      join(dir, 'guest.o'),
    ])
    run('objcopy', ['-O', 'binary', '-j', '.text', join(dir, 'guest.elf'), join(dir, 'guest.bin')])
    return new Uint8Array(readFileSync(join(dir, 'guest.bin')))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function run(tool: string, args: string[]): void {
  const r = spawnSync(tool, args, { encoding: 'utf8' })
  if (r.status !== 0)
    throw new Error(
      `${tool} ${args.join(' ')} failed:\n${r.stderr || r.stdout || r.error?.message}`,
    )
}

/**
 * A 32-bit ELF executable of `source` (GNU as, `.code32` implied, entry `_start`), linked
 * at `base`: what acrn-dm's -E loader takes (PT_LOAD segments at their addresses, entered
 * in protected mode).
 */
export function assembleElf32(source: string, base = 0x100000): Uint8Array {
  if (assemblerUnavailable) throw new Error(assemblerUnavailable)
  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-asm-'))
  try {
    const src = join(dir, 'guest.S')
    writeFileSync(src, `.code32\n.text\n.globl _start\n${source}\n`)
    run('as', ['--32', '-o', join(dir, 'guest.o'), src])
    run('ld', [
      '-m',
      'elf_i386',
      '-N',
      '--no-warn-rwx-segments',
      '-e',
      '_start',
      `-Ttext=0x${base.toString(16)}`,
      '-o',
      join(dir, 'guest.elf'),
      join(dir, 'guest.o'),
    ])
    return new Uint8Array(readFileSync(join(dir, 'guest.elf')))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
