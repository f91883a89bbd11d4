// Builds and runs a C program against the installed <linux/acrn.h> that reports what the
// compiler thinks: every ioctl request, constant, struct size/alignment, member offset and
// size, plus each struct filled member by member with distinct values (as bytes), and the
// errno table. The TypeScript tables are then compared with it, not with themselves.

import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Layout, Scalar } from '../../../src/core/abi/layout.js'
import { scalarSize } from '../../../src/core/abi/layout.js'

export const HEADER = process.env.HSMCTL_ACRN_HEADER ?? '/usr/include/linux/acrn.h'

export function findCompiler(): string | undefined {
  for (const cc of [process.env.CC, 'cc', 'gcc', 'clang']) {
    if (cc && spawnSync(cc, ['--version'], { stdio: 'ignore' }).status === 0) return cc
  }
  return undefined
}

/** Why the probe cannot run here, or undefined when it can. */
export function probeUnavailable(): string | undefined {
  if (!existsSync(HEADER)) return `${HEADER} is missing (Debian: apt-get install linux-libc-dev)`
  if (!findCompiler())
    return 'no C compiler (cc, gcc or clang) on PATH (Debian: apt-get install gcc)'
  return undefined
}

// --- What the header declares, read from its text -------------------------------------

export function headerText(): string {
  return readFileSync(HEADER, 'utf8')
}

export function headerIoctlNames(text: string): string[] {
  return [...text.matchAll(/#define\s+ACRN_IOCTL_(\w+)\s*\\?\s*_IO/g)].map((m) => m[1]!)
}

export function headerStructNames(text: string): string[] {
  return [...text.matchAll(/^struct\s+(\w+)\s*\{/gm)].map((m) => m[1]!)
}

/** Object-like macros with a value (not the include guard, not ioctl requests) and enumerators. */
export function headerConstantNames(text: string): string[] {
  const macros = [...text.matchAll(/^#define\s+(\w+)[ \t]+(?!\\|_IO)\S/gm)].map((m) => m[1]!)
  const enumerators = [...text.matchAll(/enum\s+\w+\s*\{([^}]*)\}/g)].flatMap((m) =>
    m[1]!
      .split(',')
      .map((s) => s.replace(/\/\*.*?\*\//g, '').trim())
      .filter(Boolean)
      .map((s) => s.split('=')[0]!.trim()),
  )
  return [...macros, ...enumerators]
}

// --- Distinct fill values ------------------------------------------------------------------

export interface Leaf {
  /** C lvalue path below the struct variable: `vmid`, `res[2].size`, `uuid[3]`. */
  path: string
  /** How C assigns it (u8 arrays go through a byte pointer, so guid_t and __u8[16] both work). */
  lvalue: (v: string) => string
  scalar: Scalar
}

/** Every scalar leaf reached through the first member of each union, all array elements. */
export function leaves(layout: Layout, prefix = '', out: Leaf[] = []): Leaf[] {
  const fields = layout.kind === 'union' ? layout.fields.slice(0, 1) : layout.fields
  for (const f of fields) {
    if (f.anonymous) {
      leaves(f.type as Layout, prefix, out)
      continue
    }
    const base = prefix + f.name
    const indices = f.isArray ? [...Array(f.count).keys()] : [undefined]
    for (const i of indices) {
      const path = i === undefined ? base : `${base}[${i}]`
      if (typeof f.type !== 'string') {
        leaves(f.type, `${path}.`, out)
      } else if (f.type === 'u8' && i !== undefined) {
        out.push({
          path,
          scalar: 'u8',
          lvalue: (v) => `((unsigned char *)&s.${base})[${i}] = ${v}`,
        })
      } else {
        const type = f.type
        out.push({ path, scalar: type, lvalue: (v) => `s.${path} = ${v}` })
      }
    }
  }
  return out
}

/** A distinct, non-zero value for leaf number k of the given type. */
export function fillValue(k: number, scalar: Scalar): bigint {
  const bits = BigInt(scalarSize(scalar) * 8)
  const mask = (1n << bits) - 1n
  let v = (BigInt(k + 1) * 0x9e37_79b9_7f4a_7c15n + 0x1234_5678n) & mask
  if (v === 0n) v = 1n
  if (scalar === 's32' && v >= 1n << 31n) v -= 1n << 32n
  return v
}

function cLiteral(v: bigint, scalar: Scalar): string {
  if (scalar === 's32') return `(__s32)${v}`
  return `(${scalarSize(scalar) === 8 ? '__u64' : '__u32'})0x${v.toString(16)}ull`
}

// --- The program -----------------------------------------------------------------------

export interface ProbeInput {
  ioctls: string[]
  constants: string[]
  structs: Layout[]
  /** Member paths per struct (as listed by `members`). */
  members: Map<string, string[]>
  errnos: string[]
}

export function probeSource(input: ProbeInput): string {
  const lines = [
    '#include <errno.h>',
    '#include <stddef.h>',
    '#include <stdio.h>',
    '#include <string.h>',
    '#include <sys/ioctl.h>',
    `#include "${HEADER}"`,
    'static void dump(const char *key, const void *p, size_t n) {',
    '  const unsigned char *b = p;',
    '  printf("\\"%s\\": \\"", key);',
    '  for (size_t i = 0; i < n; i++) printf("%02x", b[i]);',
    '  printf("\\",\\n");',
    '}',
    'int main(void) {',
    '  printf("{\\n");',
  ]
  for (const name of input.ioctls) {
    lines.push(`  printf("\\"ioctl:${name}\\": %llu,\\n", (unsigned long long)ACRN_IOCTL_${name});`)
  }
  for (const name of input.constants) {
    lines.push(`  printf("\\"const:${name}\\": %llu,\\n", (unsigned long long)(${name}));`)
  }
  for (const layout of input.structs) {
    const t = `struct ${layout.name}`
    lines.push(`  printf("\\"size:${layout.name}\\": %zu,\\n", sizeof(${t}));`)
    lines.push(`  printf("\\"align:${layout.name}\\": %zu,\\n", _Alignof(${t}));`)
    for (const path of input.members.get(layout.name) ?? []) {
      lines.push(
        `  printf("\\"offset:${layout.name}:${path}\\": %zu,\\n", offsetof(${t}, ${path}));`,
      )
      lines.push(
        `  printf("\\"msize:${layout.name}:${path}\\": %zu,\\n", sizeof(((${t} *)0)->${path}));`,
      )
    }
    lines.push('  {', `    ${t} s;`, '    memset(&s, 0, sizeof s);')
    leaves(layout).forEach((leaf, k) => {
      lines.push(`    ${leaf.lvalue(cLiteral(fillValue(k, leaf.scalar), leaf.scalar))};`)
    })
    lines.push(`    dump("fill:${layout.name}", &s, sizeof s);`, '  }')
  }
  for (const code of input.errnos) {
    lines.push(`  printf("\\"errno:${code}\\": [%d, \\"%s\\"],\\n", ${code}, strerror(${code}));`)
  }
  lines.push('  printf("\\"end\\": 0\\n}\\n");', '  return 0;', '}')
  return lines.join('\n') + '\n'
}

export type ProbeResult = Record<string, number | string | [number, string]>

export function runProbe(input: ProbeInput): ProbeResult {
  const cc = findCompiler()!
  const dir = mkdtempSync(join(tmpdir(), 'hsmctl-abi-probe-'))
  try {
    const src = join(dir, 'probe.c')
    const exe = join(dir, 'probe')
    writeFileSync(src, probeSource(input))
    execFileSync(cc, ['-std=gnu11', '-Wall', '-Werror', '-o', exe, src], { stdio: 'pipe' })
    return JSON.parse(execFileSync(exe, { encoding: 'utf8', maxBuffer: 64 << 20 })) as ProbeResult
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
