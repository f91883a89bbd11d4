// The floor of `npm run bench -- daemon`: hsmd's own socket server (newline-delimited
// JSON-RPC, dist/core/daemon/server.js) in a process of its own, answering each method
// with a reply the daemon gave, fixed: the same lines both ways, no VM manager behind.
//
//   node scripts/bench/_rpc-floor.js SOCKET '{"method": result, ...}'
// Prints "ready" once it listens; stops on SIGTERM.
import { listen } from '../../dist/core/daemon/server.js'

const [path, replies] = process.argv.slice(2)
const handlers = Object.fromEntries(
  Object.entries(JSON.parse(replies)).map(([method, result]) => [method, () => result]),
)
const server = await listen(path, handlers)
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)))
process.stdout.write('ready\n')
