import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Most CLI tests wait on child processes (node, the daemon, tmux), not on the CPU:
    // more files at once than cores keeps a 2-core CI machine busy.
    maxWorkers: 3,
  },
})
