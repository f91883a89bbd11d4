// A floor of `npm run bench -- trace`: hsmd's own code (startVmmDaemon, the sim backend)
// in a process of its own, as `hsmctl daemon start` runs it, with the trace's publish
// replaced by a count: the dispatch of guest traffic alone. The environment names its
// runtime and state directories (HSMCTL_RUNTIME_DIR, HSMCTL_STATE_DIR).
//
//   node scripts/bench/_dispatch-floor.js
// Prints "ready" once it serves its socket (create and start VMs through it); then for
// each line on stdin, guest.run's parameters as JSON, runs that workload to its end and
// prints the requests it would have published per second of its CPU time and per second
// of wall-clock time. Stops at the end of stdin.
import { createInterface } from 'node:readline'
import { performance } from 'node:perf_hooks'
import { connect } from '../../dist/core/daemon/client.js'
import { socketPath } from '../../dist/core/daemon/paths.js'
import { startVmmDaemon } from '../../dist/core/daemon/vmm-daemon.js'

const daemon = await startVmmDaemon({ backend: 'sim', env: process.env })
let published = 0
daemon.trace.publish = () => void published++
const client = await connect(socketPath('sim', process.env))
process.stdout.write('ready\n')
for await (const line of createInterface({ input: process.stdin })) {
  const params = JSON.parse(line)
  published = 0
  const started = performance.now()
  const cpu0 = process.cpuUsage()
  await client.call('guest.run', params)
  await client.call('guest.wait', { name: params.name })
  const cpu = process.cpuUsage(cpu0)
  const perCpu = published / ((cpu.user + cpu.system) / 1e6)
  process.stdout.write(`${perCpu} ${published / ((performance.now() - started) / 1000)}\n`)
}
client.close()
await daemon.stop()
