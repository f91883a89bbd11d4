#!/usr/bin/env node
// Read-only queries against a running daemon skip oclif's start-up (src/cli/fast.ts).
import { fastPath, globalFlagsLast } from '../dist/cli/fast.js'
import { endWhenStdoutCloses } from '../dist/cli/stdout.js'

// `hsmctl ... | head`: end at the next write once the reader is gone (src/cli/stdout.ts)
endWhenStdoutCloses()

// No arguments on a terminal: the interactive shell; off a terminal, help as before.
// Global flags may come first (`hsmctl --host ssh://edge1 vm list`): they go after the
// command, and alone they start the shell with them.
const argv = globalFlagsLast(process.argv.slice(2))
const terminal = process.stdin.isTTY && process.stdout.isTTY
const onlyGlobal = argv.length === 0 || /^--(host|backend)(=|$)/.test(argv[0])
const args = terminal && onlyGlobal ? ['shell', ...argv] : argv

if (!(await fastPath(args))) {
  const { execute } = await import('@oclif/core')
  await execute({ dir: import.meta.url, args })
}
