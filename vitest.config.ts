import { defineConfig } from 'vitest/config'

// The native conformance suite and the shim tests run twice: through the shim's
// shared-memory ring (the default) and through its socket alone (helper/SHIM.md).
const SHIM_FILES = ['test/core/sim/conformance/*.native.test.ts', 'test/core/native/shim.test.ts']

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Most CLI tests wait on child processes (node, the daemon, tmux), not on the CPU:
    // more files at once than cores keeps a 2-core CI machine busy.
    maxWorkers: 3,
    projects: [
      { extends: true, test: { name: 'hsmctl', include: ['test/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'shim-socket',
          include: SHIM_FILES,
          env: { HSMCTL_TEST_SHIM_TRANSPORT: 'socket' },
        },
      },
    ],
  },
})
