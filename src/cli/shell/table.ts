// The commands as the shell sees them: ids, positional arguments and flags, taken from the
// oclif manifest (the same metadata as --help), so that the shell needs no list of its own.

import type { Command } from '@oclif/core'

export interface FlagInfo {
  name: string
  char?: string
  takesValue: boolean
  /** The values an option flag accepts, when it lists them (--backend sim|native). */
  options?: readonly string[]
  multiple?: boolean
}

export interface CommandInfo {
  /** oclif id, topics joined with ':' ('vm:regs:set'). */
  id: string
  /** Positional argument names, in order. */
  args: string[]
  /** Takes any number of positionals (oclif strict: false). */
  variadic?: boolean
  flags: FlagInfo[]
}

export class CommandTable {
  private readonly byId: Map<string, CommandInfo>
  /** Every id and every proper prefix of one ('vm', 'vm:regs', 'vm:regs:set'). */
  private readonly prefixes = new Set<string>()

  constructor(readonly commands: readonly CommandInfo[]) {
    this.byId = new Map(commands.map((c) => [c.id, c]))
    for (const c of commands) {
      const parts = c.id.split(':')
      for (let i = 1; i <= parts.length; i++) this.prefixes.add(parts.slice(0, i).join(':'))
    }
  }

  find(id: string): CommandInfo | undefined {
    return this.byId.get(id)
  }

  /** A topic: a prefix of some command id that is not itself a command. */
  isTopic(id: string): boolean {
    return this.prefixes.has(id) && !this.byId.has(id)
  }

  isPrefix(id: string): boolean {
    return this.prefixes.has(id)
  }

  /** The words that may follow `words` in a command id ('vm' -> apply, console, ...). */
  nextWords(words: readonly string[]): string[] {
    const depth = words.length
    const head = words.join(':')
    const next = new Set<string>()
    for (const p of this.prefixes) {
      const parts = p.split(':')
      if (parts.length === depth + 1 && parts.slice(0, depth).join(':') === head)
        next.add(parts[depth]!)
    }
    return [...next].sort()
  }
}

export function tableFromCommands(commands: readonly Command.Loadable[]): CommandTable {
  return new CommandTable(
    commands
      .filter((c) => !c.hidden)
      .map((c) => ({
        id: c.id,
        args: Object.keys(c.args ?? {}),
        variadic: c.strict === false,
        flags: Object.entries(c.flags ?? {})
          .filter(([, f]) => !f.hidden)
          .map(([name, f]) => ({
            name,
            ...(f.char ? { char: f.char } : {}),
            takesValue: f.type === 'option',
            ...(f.type === 'option' && f.options ? { options: f.options } : {}),
            ...(f.type === 'option' && f.multiple ? { multiple: true } : {}),
          })),
      })),
  )
}

export type Resolution =
  | { kind: 'command'; id: string; argv: string[] }
  | { kind: 'topic'; id: string; argv: string[] }
  | { kind: 'unknown'; id: string; argv: string[] }

/**
 * Which command the words name, the way oclif reads a spaced command line: words extend
 * the id while they match, and unknown words do too unless the id so far is a command
 * that takes arguments (so `vm show demo` is `vm:show` with NAME demo, and `vm lst` is
 * the unknown `vm:lst`, which oclif's not-found handler then reports).
 */
export function resolveCommand(table: CommandTable, words: readonly string[]): Resolution {
  const id: string[] = []
  for (const word of words) {
    const candidate = [...id, word].join(':')
    if (table.isPrefix(candidate)) {
      id.push(word)
      continue
    }
    const current = table.find(id.join(':'))
    const hasArgs = current !== undefined && (current.variadic || current.args.length > 0)
    if (word.startsWith('-') || word.includes('=') || hasArgs) break
    id.push(word)
  }
  const joined = id.join(':')
  const argv = words.slice(id.length)
  if (table.find(joined)) return { kind: 'command', id: joined, argv }
  if (table.isTopic(joined)) return { kind: 'topic', id: joined, argv }
  return { kind: 'unknown', id: joined, argv }
}
