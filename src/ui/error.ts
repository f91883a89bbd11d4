// How a failed command reads on stderr: what failed, why, and what to do next.

import { HsmctlError, HsmError, UsageError } from '../core/errors.js'
import { err } from './color.js'

export interface RenderedError {
  exitCode: number
  text: string
  json: {
    error: {
      message: string
      exitCode: number
      code?: string
      errno?: number
      request?: string
      hint?: string
    }
  }
}

interface OclifParseError extends Error {
  oclif?: { exit?: number }
  parse?: unknown
}

/**
 * oclif rewrites the message of an error thrown by a flag's parser in place, to
 * "Parsing --flag \n\t<message>\nSee more help with --help"; take the message back out,
 * naming the flag once. Undefined when the message is not wrapped.
 */
function unwrapFlagParseError(message: string): string | undefined {
  const m = /^Parsing (--[\w-]+) \n\t([\s\S]*?)\nSee more help with --help$/.exec(message)
  if (!m) return undefined
  const flag = m[1]!
  const inner = m[2]!
  return inner.startsWith(`${flag}:`) ? inner : `${flag}: ${inner}`
}

export function renderError(error: unknown, bin = 'hsmctl', commandId?: string): RenderedError {
  const c = err()
  let exitCode = 1
  let message = error instanceof Error ? error.message : String(error)
  const unwrapped = unwrapFlagParseError(message)
  if (unwrapped !== undefined) message = unwrapped
  let hint: string | undefined
  const extra: { code?: string; errno?: number; request?: string } = {}
  if (error instanceof HsmctlError) {
    exitCode = error.exitCode
    hint = error.hint
    if (error instanceof HsmError) {
      extra.code = error.code
      extra.errno = error.errno
      extra.request = error.request
    }
  } else if (error instanceof Error && (error as OclifParseError).parse !== undefined) {
    // A flag or argument oclif could not parse: a usage error.
    exitCode = 2
    message = message.replace(/\n\s*See more help with --help$/, '')
    hint = `see ${bin}${commandId ? ` ${commandId.replaceAll(':', ' ')}` : ''} --help`
  } else if (error instanceof Error && typeof (error as OclifParseError).oclif?.exit === 'number') {
    exitCode = (error as OclifParseError).oclif!.exit!
  }
  if ((error instanceof UsageError || unwrapped !== undefined) && !hint && commandId) {
    hint = `see ${bin} ${commandId.replaceAll(':', ' ')} --help`
  }
  const lines = [`${c.red.bold('Error:')} ${message}`]
  if (hint) lines.push(`${c.dim('Hint:')} ${hint}`)
  return {
    exitCode,
    text: lines.join('\n') + '\n',
    json: { error: { message, exitCode, ...extra, ...(hint ? { hint } : {}) } },
  }
}
