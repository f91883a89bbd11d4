// Colour on a terminal only, off with NO_COLOR (https://no-color.org) or --no-color.

import { Chalk, type ChalkInstance } from 'chalk'

export function colorEnabled(
  stream: NodeJS.WriteStream,
  argv: readonly string[] = process.argv,
): boolean {
  if (argv.includes('--no-color')) return false
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') return false
  if (process.env.FORCE_COLOR !== undefined && process.env.FORCE_COLOR !== '0') return true
  return stream.isTTY === true && process.env.TERM !== 'dumb'
}

let stdoutChalk: ChalkInstance | undefined
let stderrChalk: ChalkInstance | undefined

/** A chalk for stdout, with colour only when stdout may have it. */
export function out(): ChalkInstance {
  stdoutChalk ??= new Chalk({ level: colorEnabled(process.stdout) ? 1 : 0 })
  return stdoutChalk
}

/** A chalk for stderr (errors, warnings, progress). */
export function err(): ChalkInstance {
  stderrChalk ??= new Chalk({ level: colorEnabled(process.stderr) ? 1 : 0 })
  return stderrChalk
}
