#!/usr/bin/env node
// Builds hsm-helper (helper/, see helper/PROTOCOL.md) when this machine can: Linux, a C
// compiler, make and <linux/acrn.h>. Otherwise it says what is missing and exits 0: the
// simulation never needs the helper, only the native backend does.
//
//   node scripts/build-helper.js            part of `npm run build`
//   node scripts/build-helper.js --strict   exit 1 when the helper cannot be built (tests)
//
// HSMCTL_SKIP_HELPER=1 skips the build; CC picks the compiler, as for make.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const helperDir = join(root, 'helper')
const strict = process.argv.includes('--strict')

function say(message) {
  process.stderr.write(`build-helper: ${message}\n`)
}

/** Nothing to build with: explain, and succeed unless --strict. */
function skip(reason, remedy) {
  say(`hsm-helper not built: ${reason}.`)
  if (remedy) say(remedy)
  say('The simulation (the default backend) works without it; only --backend native needs it.')
  process.exit(strict ? 1 : 0)
}

function works(command, args) {
  const r = spawnSync(command, args, { stdio: 'ignore' })
  return r.status === 0
}

function findCompiler() {
  for (const cc of [process.env.CC, 'cc', 'gcc', 'clang']) {
    if (cc && works(cc, ['--version'])) return cc
  }
  return undefined
}

if (process.env.HSMCTL_SKIP_HELPER === '1' && !strict) {
  say('HSMCTL_SKIP_HELPER=1: not building hsm-helper.')
  process.exit(0)
}
if (process.platform !== 'linux') {
  skip(`it drives the Linux ACRN HSM driver and this is ${process.platform}`)
}
const cc = findCompiler()
if (!cc) {
  skip(
    'no C compiler (cc, gcc or clang) on PATH',
    'Install one (Debian/Ubuntu: sudo apt-get install gcc libc6-dev), then run `npm run build` again.',
  )
}
if (!works('make', ['--version'])) {
  skip(
    'make is not installed',
    'Install it (Debian/Ubuntu: sudo apt-get install make), then run `npm run build` again.',
  )
}
// Does the compiler see the kernel UAPI header? (Preprocess a one-line file.)
const probe = spawnSync(cc, ['-E', '-x', 'c', '-', '-o', '/dev/null'], {
  input: '#include <linux/acrn.h>\n',
  stdio: ['pipe', 'ignore', 'ignore'],
})
if (probe.status !== 0) {
  skip(
    '<linux/acrn.h> (the ACRN UAPI header, Linux 5.12 and later) is not installed',
    'Install the kernel headers (Debian/Ubuntu: sudo apt-get install linux-libc-dev), then run `npm run build` again.',
  )
}

const make = spawnSync('make', ['-C', helperDir, '--no-print-directory', `CC=${cc}`], {
  stdio: ['ignore', 'inherit', 'inherit'],
})
const built = join(helperDir, 'build', 'hsm-helper')
const testing = join(helperDir, 'build', 'hsm-helper-testing')
if (make.status !== 0 || !existsSync(built) || !existsSync(testing)) {
  say(
    `hsm-helper failed to build (make -C ${helperDir} exited with ${make.status ?? make.signal}).`,
  )
  say('The output above says why. The simulation still works; --backend native does not.')
  process.exit(strict ? 1 : 0)
}
say(`built ${built}`)
if (!existsSync(join(helperDir, 'build', 'hsm_ring.node'))) {
  say(
    "the shim's ring (build/hsm_ring.node) was not built: Node.js's headers (node_api.h) are not " +
      'installed beside this node or in /usr/include/node. Shimmed programs then talk to the ' +
      'simulation over the socket alone (helper/SHIM.md, "The ring"), about 8 times slower.',
  )
}
