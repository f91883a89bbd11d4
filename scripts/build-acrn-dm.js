#!/usr/bin/env node
// Builds ACRN's device model, acrn-dm, from the upstream source kept beside the project
// (../shared/acrn-dm, its README says how) into .cache/acrn-dm/acrn-dm, for the tests and
// the README's `hsmctl sim exec -- acrn-dm ...`, with upstream's acrnctl beside it
// (.cache/acrn-dm/acrnctl: the reference the `vm` verbs are tested against). The build is
// cached: it runs again only when the source or its build script changed.
//
//   node scripts/build-acrn-dm.js     prints the path of acrn-dm as its last stdout line
//
// It runs the source's own build.sh, which installs the Debian packages acrn-dm needs to
// build (and acpica-tools, whose iasl it needs to run) with apt-get, as root or with sudo.
// ACRN_DM_SOURCE names another copy of the source. Exit status: 0 built (or cached), 1 the
// build failed, 3 it cannot be built here (no source, no apt-get, not Debian): the reason
// is on stderr.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const source = resolve(process.env.ACRN_DM_SOURCE ?? join(root, '..', 'shared', 'acrn-dm'))
const out = join(root, '.cache', 'acrn-dm')
const binary = join(out, 'acrn-dm')
const acrnctl = join(out, 'acrnctl')
const stampFile = join(out, 'stamp')

function say(message) {
  process.stderr.write(`build-acrn-dm: ${message}\n`)
}

function cannot(reason) {
  say(`acrn-dm cannot be built here: ${reason}`)
  process.exit(3)
}

/** Every file under dir, relative to it (links as links). */
function files(dir, base = dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    return e.isDirectory() ? files(path, base) : [relative(base, path)]
  })
}

// Test files run in parallel and each asks for acrn-dm: one build at a time, the others
// wait for it (flock(1), util-linux) and then find it cached.
if (process.env.HSMCTL_ACRN_DM_LOCKED !== '1') {
  mkdirSync(join(root, '.cache'), { recursive: true })
  const locked = spawnSync(
    'flock',
    [join(root, '.cache', 'acrn-dm.lock'), process.execPath, fileURLToPath(import.meta.url)],
    { stdio: 'inherit', env: { ...process.env, HSMCTL_ACRN_DM_LOCKED: '1' } },
  )
  if (locked.error) {
    say(`flock: ${locked.error.message}`)
    process.exit(1)
  }
  process.exit(locked.status ?? 1)
}

if (!existsSync(join(source, 'build.sh'))) {
  cannot(`no ${join(source, 'build.sh')} (set ACRN_DM_SOURCE to the acrn-dm source kit)`)
}
// What the build depends on: every file's path, size and bytes' hash is too slow to need;
// path, size and modification time say when the kit changed.
const stamp = createHash('sha256')
for (const f of files(source).sort()) {
  const st = lstatSync(join(source, f))
  stamp.update(`${f} ${st.size} ${st.mtimeMs}\n`)
}
const wanted = stamp.digest('hex')
if (
  existsSync(binary) &&
  existsSync(acrnctl) &&
  existsSync(stampFile) &&
  readFileSync(stampFile, 'utf8') === wanted
) {
  process.stdout.write(`${binary}\n`)
  process.exit(0)
}
if (spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status !== 0) {
  cannot('apt-get is not available (build.sh installs its Debian 12 packages with it)')
}

// A copy, as build.sh builds from the directory it sits in: a link of the upstream tree
// that the kit stores as a text file naming its target is made a link again.
const kit = join(out, 'source')
rmSync(kit, { recursive: true, force: true })
mkdirSync(out, { recursive: true })
cpSync(source, kit, { recursive: true })
spawnSync('chmod', ['-R', 'u+w', kit])
for (const f of files(kit)) {
  const path = join(kit, f)
  const st = lstatSync(path)
  if (!st.isFile() || st.size > 256) continue
  const text = readFileSync(path, 'utf8').trim()
  if (!/^\.\.?\/[\w./-]+$/.test(text)) continue
  const target = resolve(dirname(path), text)
  if (target.startsWith(kit) && existsSync(target) && statSync(target).isFile()) {
    rmSync(path)
    symlinkSync(text, path)
  }
}

say(
  `building acrn-dm from ${source} into ${out} (a few minutes; the log is ${join(out, 'build.log')})`,
)
const r = spawnSync('bash', [join(kit, 'build.sh'), out], {
  env: { ...process.env, INSTALL_RUNTIME_DEPS: '1', WITH_ACRNCTL: '1' },
  encoding: 'utf8',
  maxBuffer: 64 << 20,
})
writeFileSync(join(out, 'build.log'), `${r.stdout ?? ''}${r.stderr ?? ''}`)
if (r.status !== 0 || !existsSync(binary) || !existsSync(acrnctl)) {
  say(`build.sh failed (status ${r.status}); the end of its output:`)
  process.stderr.write(`${(r.stderr ?? '').split('\n').slice(-25).join('\n')}\n`)
  process.exit(1)
}
writeFileSync(stampFile, wanted)
process.stdout.write(`${binary}\n`)
