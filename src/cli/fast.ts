// The start-up fast path for read-only queries (`vm list`, `vm show NAME`): with a daemon
// already running, they need one socket round trip, not the whole of oclif. Anything the
// fast path does not fully understand (another flag, --help, no daemon yet, an error)
// falls through to oclif, which runs the same query the normal way; queries change
// nothing, so running one twice is harmless.

import { connect } from '../core/daemon/client.js'
import { checkDaemonDirs, socketPath, type Backend } from '../core/daemon/paths.js'

interface Query {
  method: string
  /** Positional arguments, in order (sent as params of these names). */
  args: string[]
  render: (result: unknown) => Promise<string>
  /** What --json prints: the object the command's run() returns, so both paths agree. */
  json: (result: unknown) => Promise<unknown>
  /**
   * What the command reads beside the daemon's answer (started at once, in parallel with
   * the call), and how it combines the two, as the command does.
   */
  beside?: (env: NodeJS.ProcessEnv) => Promise<(result: unknown) => unknown>
}

const QUERIES: Readonly<Record<string, Query>> = {
  'vm list': {
    method: 'vm.list',
    args: [],
    render: async (r) => (await import('../ui/vm.js')).renderVmList(r as never),
    json: async (r) => r,
    // acrn-dm's VMs and registered scripts beside hsmd's (core/acrn-dm/vms.ts)
    beside: async (env) => {
      const [{ existsSync }, { acrnPaths }] = await Promise.all([
        import('node:fs'),
        import('../core/acrn-dm/paths.js'),
      ])
      const paths = acrnPaths(env)
      // no ACRN directories (not an ACRN system): nothing to merge, nothing more to load
      if (!existsSync(paths.mngrDir) && !existsSync(paths.confDir)) return (r) => r
      const { readAcrnViews, mergeVms } = await import('../core/acrn-dm/vms.js')
      const acrn = await readAcrnViews(paths)
      return (r) => mergeVms({ daemon: r as never, ...acrn })
    },
  },
  'vm show': {
    method: 'vm.show',
    args: ['name'],
    render: async (r) => (await import('../ui/vm.js')).renderVm(r as never),
    json: async (r) => (await import('../ui/vm.js')).vmJson(r as never),
  },
}

/** Global flags a user may give before the command, as `docker -H ssh://... ps` takes them. */
const LEADING = new Set(['--host', '--backend'])

/**
 * `hsmctl --host URL vm list`: global flags written before the command move after it
 * (before a `--`, which ends the flags of `sim exec`), where oclif parses them. What
 * remains in front is a command (or nothing: the shell, on a terminal).
 */
export function globalFlagsLast(argv: readonly string[]): string[] {
  const moved: string[] = []
  let i = 0
  while (i < argv.length) {
    const token = argv[i]!
    const name = token.split('=', 1)[0]!
    if (!LEADING.has(name)) break
    if (token.includes('=')) {
      moved.push(token)
      i++
    } else if (i + 1 < argv.length) {
      moved.push(token, argv[i + 1]!)
      i += 2
    } else break
  }
  if (moved.length === 0) return [...argv]
  const rest = argv.slice(i)
  // `sim exec PROGRAM ARGS` and `trace exec`: what follows the program is the program's
  if (rest[1] === 'exec' && (rest[0] === 'sim' || rest[0] === 'trace'))
    return [...rest.slice(0, 2), ...moved, ...rest.slice(2)]
  const dashes = rest.indexOf('--')
  return dashes < 0
    ? [...rest, ...moved]
    : [...rest.slice(0, dashes), ...moved, ...rest.slice(dashes)]
}

/** Runs the query and returns true, or returns false to let oclif handle the command. */
export async function fastPath(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<boolean> {
  if (argv[0] === 'daemon' && argv[1] === 'dial-stdio') return dialFast(argv, env)
  const query = QUERIES[`${argv[0]} ${argv[1]}`]
  if (!query) return false
  let json = false
  let backend = env.HSMCTL_BACKEND ?? 'sim'
  let host = env.HSMCTL_HOST ?? ''
  const positional: string[] = []
  for (let i = 2; i < argv.length; i++) {
    const token = argv[i]!
    if (token === '--json') json = true
    else if (token === '--no-color') continue
    else if (token === '--backend' && i + 1 < argv.length) backend = argv[++i]!
    else if (token.startsWith('--backend=')) backend = token.slice('--backend='.length)
    else if (token === '--host' && i + 1 < argv.length) host = argv[++i]!
    else if (token.startsWith('--host=')) host = token.slice('--host='.length)
    else if (token.startsWith('-')) return false
    else positional.push(token)
  }
  if (positional.length !== query.args.length || (backend !== 'sim' && backend !== 'native'))
    return false
  if (host !== '' && (host.includes(',') || host.startsWith('@')))
    return query === QUERIES['vm list'] && fleetList(host, backend as Backend, json, env)
  let client
  try {
    if (host !== '') {
      const [{ parseHost }, { connectRemote }] = await Promise.all([
        import('../core/daemon/ssh/hosts.js'),
        import('../core/daemon/ssh/transport.js'),
      ])
      client = await connectRemote(parseHost(host), {
        backend: backend as Backend,
        env,
        onRemoteMessage: (text) => process.stderr.write(text + '\n'),
      })
    } else {
      // never a socket in a directory that is not safely ours: oclif's path says why
      checkDaemonDirs(env, false)
      client = await connect(socketPath(backend as Backend, env))
    }
  } catch {
    return false // no daemon yet: oclif's path starts it and says so
  }
  try {
    const params = Object.fromEntries(query.args.map((name, i) => [name, positional[i]]))
    // acrn-dm's VMs are this machine's: not merged into a remote host's list
    const beside = host === '' ? query.beside?.(env) : undefined
    let result = await client.call(query.method, params)
    if (beside) result = (await beside)(result)
    const text = json
      ? (await import('../ui/json.js')).toJson(await query.json(result))
      : await query.render(result)
    process.stdout.write(text + '\n')
    return true
  } catch {
    return false
  } finally {
    client.close()
  }
}

/** `daemon dial-stdio` (run by ssh for every remote command): no oclif in between. */
async function dialFast(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<boolean> {
  let backend = env.HSMCTL_BACKEND ?? 'sim'
  let start = true
  for (let i = 2; i < argv.length; i++) {
    const token = argv[i]!
    if (token === '--backend' && i + 1 < argv.length) backend = argv[++i]!
    else if (token.startsWith('--backend=')) backend = token.slice('--backend='.length)
    else if (token === '--no-start') start = false
    else return false
  }
  if (backend !== 'sim' && backend !== 'native') return false
  const { dialStdio } = await import('../core/daemon/ssh/dial-stdio.js')
  process.exitCode = await dialStdio({
    backend,
    start,
    env,
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
  })
  return true
}

/** `vm list` over a fleet (several --host): the command's rows, without oclif. */
async function fleetList(
  value: string,
  backend: Backend,
  json: boolean,
  env: NodeJS.ProcessEnv,
): Promise<boolean> {
  const [{ parseHosts }, { connectRemote }, { listFleetVms }] = await Promise.all([
    import('../core/daemon/ssh/hosts.js'),
    import('../core/daemon/ssh/transport.js'),
    import('../core/daemon/ssh/fleet.js'),
  ])
  let hosts
  try {
    hosts = parseHosts(value)
  } catch {
    return false // oclif's path says what is wrong with --host
  }
  const members = await Promise.all(
    hosts.map(async (host) => ({
      host,
      client: await connectRemote(host, {
        backend,
        env,
        onRemoteMessage: (text) => process.stderr.write(text + '\n'),
      }),
    })),
  )
  try {
    const { rows, failed } = await listFleetVms(members)
    const text = json
      ? (await import('../ui/json.js')).toJson(rows)
      : (await import('../ui/vm.js')).renderVmList(rows)
    process.stdout.write(text + '\n')
    if (failed) process.exitCode = 8
    return true
  } finally {
    for (const m of members) m.client.close()
  }
}
