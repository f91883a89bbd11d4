import { configDefaults, defineConfig } from 'vitest/config'

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
    // `vm list` shows the host's acrn-dm VMs and launch scripts (/run/acrn/mngr,
    // /usr/share/acrn/conf/add): other tests' or a real ACRN system's. Every hsmctl a test
    // starts looks in directories that do not exist instead; the acrn-dm tests give theirs.
    env: {
      HSMCTL_ACRN_MNGR_DIR: '/nonexistent/hsmctl-tests/acrn/mngr',
      HSMCTL_ACRN_CONF_DIR: '/nonexistent/hsmctl-tests/acrn/conf/add',
    },
    projects: [
      {
        extends: true,
        test: {
          name: 'hsmctl',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/boot/**'],
        },
      },
      // acrn-dm boots Debian's Linux kernel (`npm run test:boot`); QEMU+KVM first decides
      // whether this machine can (test/boot/linux-boot.test.ts)
      {
        extends: true,
        test: { name: 'boot', include: ['test/boot/**/*.test.ts'], testTimeout: 1_200_000 },
      },
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
