#!/usr/bin/env node
// Read-only queries against a running daemon skip oclif's start-up (src/cli/fast.ts).
import { fastPath } from '../dist/cli/fast.js'
import { endWhenStdoutCloses } from '../dist/cli/stdout.js'

// `hsmctl ... | head`: end at the next write once the reader is gone (src/cli/stdout.ts)
endWhenStdoutCloses()

// No arguments on a terminal: the interactive shell; off a terminal, help as before.
const argv = process.argv.slice(2)
const args = argv.length === 0 && process.stdin.isTTY && process.stdout.isTTY ? ['shell'] : argv

if (!(await fastPath(args))) {
  const { execute } = await import('@oclif/core')
  await execute({ dir: import.meta.url, args })
}
