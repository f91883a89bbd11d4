#!/usr/bin/env node
// Generates man/hsmctl.1 and one page per command from the oclif manifest (the same
// metadata as --help), at build time. Run after `oclif manifest`.
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const manifest = JSON.parse(readFileSync(join(root, 'oclif.manifest.json'), 'utf8'))
const { EXIT_CODES } = await import(join(root, 'dist/core/errors.js'))
const bin = pkg.oclif.bin
const date = new Date(Number(process.env.SOURCE_DATE_EPOCH ?? 0) * 1000 || Date.now())
  .toISOString()
  .slice(0, 10)

/** Escape text for roff: backslashes, and a leading dot or quote that would start a request. */
function esc(text) {
  return (
    String(text)
      .replaceAll('\\', '\\e')
      .replaceAll('-', '\\-')
      // non-ASCII as roff escapes, so that line lengths are what mandoc measures
      .replace(
        /[^\t\n -~]/gu,
        (c) => `\\[u${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}]`,
      )
      .split('\n')
      .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
      .join('\n')
  )
}

/** Break filled text into source lines of at most 72 bytes (mandoc's style check). */
function wrap(text) {
  return text
    .split('\n')
    .map((line) => {
      if (line.startsWith('.') || Buffer.byteLength(line) <= 72) return line
      const out = []
      let cur = ''
      for (const word of line.split(' ')) {
        if (cur && Buffer.byteLength(cur + ' ' + word) > 72) {
          out.push(cur)
          cur = word
        } else cur = cur ? `${cur} ${word}` : word
      }
      if (cur) out.push(cur)
      return out.map((l) => (/^[.']/.test(l) ? `\\&${l}` : l)).join('\n')
    })
    .join('\n')
}

/** The page's source: filled text wrapped, unfilled (.nf) blocks kept as they are. */
function finish(lines) {
  let filled = true
  const out = []
  for (const line of lines.join('\n').split('\n')) {
    if (line === '.nf') filled = false
    if (line === '.fi') filled = true
    out.push(filled ? wrap(line) : line)
  }
  return out.join('\n') + '\n'
}

function paragraphs(text) {
  return String(text ?? '')
    .trim()
    .split(/\n\s*\n/)
    .map((p) => esc(p.replace(/\s*\n\s*/g, ' ')))
    .join('\n.PP\n')
}

function example(text, id) {
  return String(text)
    .replaceAll('<%= config.bin %>', bin)
    .replaceAll('<%= command.id %>', id.replaceAll(':', ' '))
}

const pageName = (id) => `${bin}-${id.replaceAll(':', '-')}`

function exitStatus() {
  return ['.SH EXIT STATUS', ...EXIT_CODES.flatMap((e) => ['.TP', `.B ${e.code}`, esc(e.meaning)])]
}

const commands = Object.values(manifest.commands)
  .filter((c) => !c.hidden)
  .sort((a, b) => a.id.localeCompare(b.id))

const outDir = join(root, 'man')
mkdirSync(outDir, { recursive: true })
for (const file of readdirSync(outDir)) if (file.endsWith('.1')) rmSync(join(outDir, file))

for (const cmd of commands) {
  const id = cmd.id.replaceAll(':', ' ')
  const args = Object.values(cmd.args ?? {})
  const flags = Object.entries(cmd.flags ?? {}).filter(([, f]) => !f.hidden)
  const synopsis = [
    `.B ${bin} ${esc(id)}`,
    ...flags.map(
      ([name, f]) =>
        `[\\fB\\-\\-${esc(name)}\\fR${f.type === 'option' ? ` \\fI${esc(f.helpValue ?? 'VALUE')}\\fR` : ''}]`,
    ),
    ...args.map((a) =>
      a.required
        ? `\\fI${esc(a.name.toUpperCase())}\\fR`
        : `[\\fI${esc(a.name.toUpperCase())}\\fR]`,
    ),
  ]
  const lines = [
    `.TH ${pageName(cmd.id).toUpperCase()} 1 ${date} "${bin} ${pkg.version}" "User Commands"`,
    '.SH NAME',
    `${esc(pageName(cmd.id))} \\- ${esc((cmd.summary ?? cmd.description ?? '').split('\n')[0])}`,
    '.SH SYNOPSIS',
    synopsis.join('\n'),
    '.SH DESCRIPTION',
    paragraphs(cmd.description ?? cmd.summary),
  ]
  if (args.length > 0) {
    lines.push('.SH ARGUMENTS')
    for (const a of args)
      lines.push('.TP', `.I ${esc(a.name.toUpperCase())}`, esc(a.description ?? ''))
  }
  if (flags.length > 0) {
    lines.push('.SH OPTIONS')
    for (const [name, f] of flags) {
      const head = `${f.char ? `\\fB\\-${f.char}\\fR, ` : ''}\\fB\\-\\-${esc(name)}\\fR${f.type === 'option' ? ` \\fI${esc(f.helpValue ?? 'VALUE')}\\fR` : ''}`
      lines.push('.TP', head, esc(f.summary ?? f.description ?? ''))
    }
  }
  if ((cmd.examples ?? []).length > 0) {
    lines.push('.SH EXAMPLES')
    // one indented, unfilled block: a paragraph macro right after .SH is redundant
    lines.push('.nf', '.RS 4')
    for (const ex of cmd.examples)
      lines.push(esc(example(typeof ex === 'string' ? ex : ex.command, cmd.id)))
    lines.push('.RE', '.fi')
  }
  lines.push(...exitStatus(), '.SH SEE ALSO', `.BR ${bin} (1)`)
  writeFileSync(join(outDir, `${pageName(cmd.id)}.1`), finish(lines))
}

const top = [
  `.TH ${bin.toUpperCase()} 1 ${date} "${bin} ${pkg.version}" "User Commands"`,
  '.SH NAME',
  `${bin} \\- ${esc(pkg.description)}`,
  '.SH SYNOPSIS',
  `.B ${bin}`,
  '\\fICOMMAND\\fR [\\fIOPTIONS\\fR]',
  '.SH DESCRIPTION',
  esc(
    `${bin} drives the ACRN Hypervisor Service Module (/dev/acrn_hsm): VMs, memory segments, pass-through devices, ioeventfds, irqfds and interrupts, against a built-in simulation of the hypervisor or against real hardware. Every command takes --json: 64-bit values as hex strings, PCI functions as bb:dd.f (00:14.0, as --phys takes them), vendor and device IDs as four hex digits (0x8086), class codes as six (0x0c0330).`,
  ),
  '.SH COMMANDS',
  ...commands.flatMap((c) => [
    '.TP',
    `.B ${esc(c.id.replaceAll(':', ' '))}`,
    esc((c.summary ?? c.description ?? '').split('\n')[0]),
  ]),
  '.SH ENVIRONMENT',
  '.TP',
  '.B NO_COLOR',
  'When set and not empty, output is not coloured.',
  ...exitStatus(),
  '.SH SEE ALSO',
  commands
    .map((c, i) => `.BR ${esc(pageName(c.id))} (1)${i < commands.length - 1 ? ',' : ''}`)
    .join('\n'),
]
writeFileSync(join(outDir, `${bin}.1`), finish(top))
console.log(`wrote ${commands.length + 1} man pages to man/`)
