// A mistyped command (`hsmctl vm lst`, `clear` in the shell) is never guessed and run: it
// is a usage error, exit 2, naming the closest commands. oclif runs this hook for an id
// it does not know, on the command line and for the shell (which runs commands through
// oclif); it replaces @oclif/plugin-not-found, whose Yes-by-default prompt ran the guess
// and, in the shell, took the next typed line as its answer.

import { Errors, type Hook, type Interfaces } from '@oclif/core'
import { UsageError } from '../core/errors.js'
import { renderError } from '../ui/error.js'

/** Edits (insert, delete, substitute) between two strings. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(
        previous[j]! + 1,
        row[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      )
    previous = row
  }
  return previous[b.length]!
}

/**
 * The commands and topics (words joined by spaces) closest to what was typed: the best
 * few within a couple of edits, matching the whole or, for a word typed without its topic
 * (`clear`), the last word. None when nothing is close.
 */
export function closestCommands(typed: string, known: readonly string[], most = 3): string[] {
  const room = Math.max(1, Math.floor(typed.length / 3))
  const scored = known
    .map((name) => {
      const last = name.slice(name.lastIndexOf(' ') + 1)
      const byLast = typed.includes(' ') || last === name ? Infinity : distance(typed, last) + 0.5
      return { name, score: Math.min(distance(typed, name), byLast) }
    })
    .filter((c) => c.score <= room + 0.5)
    .sort((a, b) => a.score - b.score || a.name.localeCompare(b.name))
  const best = scored[0]?.score
  return scored
    .filter((c) => c.score === best)
    .map((c) => c.name)
    .slice(0, most)
}

const quoted = (names: string[]) =>
  names.length === 1
    ? `'${names[0]}'`
    : `${names
        .slice(0, -1)
        .map((n) => `'${n}'`)
        .join(', ')} or '${names.at(-1)}'`

/**
 * The error for an unknown command id (words joined by ':'): it names the words up to the
 * first one that is not a topic (`vm lst`, not `vm lst demo`).
 */
export function unknownCommand(
  id: string,
  commands: readonly string[],
  topics: readonly string[],
  bin = 'hsmctl',
): UsageError {
  const words = id.split(':')
  const topicSet = new Set(topics)
  let known = 0
  while (known < words.length - 1 && topicSet.has(words.slice(0, known + 1).join(':'))) known++
  const typed = words.slice(0, known + 1).join(' ')
  const topic = words.slice(0, known).join(' ')
  const close = closestCommands(typed, [
    ...new Set([...commands, ...topics].map((name) => name.replaceAll(':', ' '))),
  ])
  return new UsageError(
    `unknown command '${typed}'${close.length ? `; did you mean ${quoted(close)}?` : ''}`,
    {
      hint: topic
        ? `see \`${bin} ${topic} --help\` for its commands`
        : `see \`${bin} --help\` for the commands`,
    },
  )
}

/** Print the error for an unknown command id and end the command with its exit code. */
export function failUnknownCommand(id: string, config: Interfaces.Config): never {
  const error = unknownCommand(
    id,
    config.commands.filter((c) => !c.hidden).map((c) => c.id),
    config.topics.filter((t) => !t.hidden).map((t) => t.name),
    config.bin,
  )
  process.stderr.write(renderError(error).text)
  // printed; oclif's handler (and the shell's) exit with the code, quietly
  throw new Errors.ExitError(error.exitCode)
}

const hook: Hook<'command_not_found'> = async function ({ id, config }) {
  failUnknownCommand(id, config)
}

export default hook
