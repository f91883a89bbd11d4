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

/** Runs the query and returns true, or returns false to let oclif handle the command. */
export async function fastPath(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<boolean> {
  const query = QUERIES[`${argv[0]} ${argv[1]}`]
  if (!query) return false
  let json = false
  let backend = env.HSMCTL_BACKEND ?? 'sim'
  const positional: string[] = []
  for (let i = 2; i < argv.length; i++) {
    const token = argv[i]!
    if (token === '--json') json = true
    else if (token === '--no-color') continue
    else if (token === '--backend' && i + 1 < argv.length) backend = argv[++i]!
    else if (token.startsWith('--backend=')) backend = token.slice('--backend='.length)
    else if (token.startsWith('-')) return false
    else positional.push(token)
  }
  if (positional.length !== query.args.length || (backend !== 'sim' && backend !== 'native'))
    return false
  let client
  try {
    // never a socket in a directory that is not safely ours: oclif's path says why
    checkDaemonDirs(env, false)
    client = await connect(socketPath(backend as Backend, env))
  } catch {
    return false // no daemon yet: oclif's path starts it and says so
  }
  try {
    const params = Object.fromEntries(query.args.map((name, i) => [name, positional[i]]))
    const beside = query.beside?.(env)
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
