#!/usr/bin/env node
// Read-only queries against a running daemon skip oclif's start-up (src/cli/fast.ts).
import { fastPath } from '../dist/cli/fast.js'

if (!(await fastPath(process.argv.slice(2)))) {
  const { execute } = await import('@oclif/core')
  await execute({ dir: import.meta.url })
}
