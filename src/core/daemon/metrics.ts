// hsmd's Prometheus endpoint (`daemon run --metrics`, issue 14 item 4): GET /metrics
// answers OpenMetrics text to scrapers that ask for it (Prometheus does) and the classic
// text format 0.0.4 to everyone else (curl, promtool), as client_golang's handler does.
//
// Nothing is counted here: every number is read at scrape time from where it already
// is, so the ioreq hot path pays nothing. I/O requests and their latencies come from the
// trace's live statistics (trace/stats.ts: one row per VM, vCPU, type, direction, client
// and address, with a latency histogram in ns), VMs from the listing `vm list` shows.
//
// Each scrape fills a fresh Registry: prom-client renames counters in place for
// OpenMetrics (it strips `_total` from the family name), so one registry cannot serve
// both formats; the families are a dozen small objects, cheap to build per scrape.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Counter, Gauge, Registry, type Metric, type RegistryContentType } from 'prom-client'
import { ConflictError, UsageError } from '../errors.js'
import type { TraceHub } from '../trace/hub.js'
import type { VmSummary } from '../vmm/manager.js'
import { formatAddress, type MetricsAddress } from './metrics-address.js'

/** A VM as `vm list` shows it (the merged listing). */
export interface MetricsVm {
  name: string
  vmid: number | null
  state: string
  /** `hsmd`, `journal`, `acrn-dm (pid N)`, `script` or `outside process`. */
  owner: string
}

export interface MetricsSources {
  backend: string
  version: string
  /** When the daemon started (ms since the epoch). */
  startedAtMs: number
  /** Clients connected to the daemon's socket now. */
  connections(): number
  /** The VMs, as `vm list` shows them. */
  vms(): Promise<MetricsVm[]>
  /** The daemon's trace: every I/O request it sees (the simulation's: all of them). */
  trace: TraceHub
}

export interface MetricsServer {
  /** Where it listens (the port chosen, for port 0). */
  address: MetricsAddress
  /** `http://127.0.0.1:9410/metrics` */
  url: string
  /** Start answering scrapes from these (until then they get 503). */
  serve(sources: MetricsSources): void
  close(): Promise<void>
}

export const METRICS_PATH = '/metrics'

/** `acrn-dm (pid 12)` -> `acrn-dm`, `outside process` -> `outside`: one series per kind. */
export function ownerKind(owner: string): string {
  if (owner.startsWith('acrn-dm')) return 'acrn-dm'
  if (owner === 'outside process') return 'outside'
  return owner
}

/**
 * The histogram's upper bounds: 2^k - 1 ns for even k, which are edges of the trace's own
 * buckets (4 per power of two, stats.ts), so each cumulative count is exact. The last,
 * 2^32 - 1 ns, is where the trace's latency saturates.
 */
const LE_POWERS = Array.from({ length: 13 }, (_, i) => 8 + 2 * i)
/** The last trace bucket under each bound: bucket 4k-1 ends at 2^k - 1 ns (stats.ts). */
const LE_LAST_BUCKET = LE_POWERS.map((k) => 4 * k - 1)
const LE_LABELS = LE_POWERS.map((k) => String((2 ** k - 1) / 1e9))
const TRACE_BUCKETS = 128

interface Traffic {
  vmid: number
  type: string
  dir: string
  client: string
  count: number
  latSumNs: number
  hist: Float64Array
}

/** The trace's rows summed per VM, type, direction and client (addresses and vCPUs merged). */
function trafficOf(trace: TraceHub): Traffic[] {
  const byKey = new Map<string, Traffic>()
  for (const row of trace.stats.rows(() => true, false, { histograms: true })) {
    const key = `${row.vmid}:${row.type}:${row.dir}:${row.client}`
    let t = byKey.get(key)
    if (!t) {
      t = {
        vmid: row.vmid,
        type: row.type,
        dir: row.dir,
        client: row.client,
        count: 0,
        latSumNs: 0,
        hist: new Float64Array(TRACE_BUCKETS),
      }
      byKey.set(key, t)
    }
    t.count += row.count
    t.latSumNs += row.latSum ?? 0
    const h = row.latHist ?? []
    for (let i = 0; i + 1 < h.length; i += 2) t.hist[h[i]!]! += h[i + 1]!
  }
  return [...byKey.values()]
}

type Labels = Record<string, string>

/** A family prom-client has no setter for (a histogram from counts kept elsewhere). */
function histogramFamily(
  name: string,
  help: string,
  series: { labels: Labels; buckets: number[]; sum: number; count: number }[],
): Metric {
  const values = series.flatMap(({ labels, buckets, sum, count }) => [
    ...buckets.map((value, i) => ({
      metricName: `${name}_bucket`,
      labels: { ...labels, le: LE_LABELS[i]! },
      value,
    })),
    { metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: count },
    { metricName: `${name}_sum`, labels, value: sum },
    { metricName: `${name}_count`, labels, value: count },
  ])
  const family = { name, help, type: 'histogram', aggregator: 'sum' }
  return { ...family, get: async () => ({ ...family, values }) } as unknown as Metric
}

/** The metrics text in `contentType` (Registry.OPENMETRICS_CONTENT_TYPE or PROMETHEUS_...). */
export async function renderMetrics(sources: MetricsSources, contentType: RegistryContentType) {
  const registry = new Registry<RegistryContentType>()
  registry.setContentType(contentType)
  const registers = [registry]
  const vms = await sources.vms()

  const info = new Gauge({
    name: 'hsmctl_daemon_info',
    help: 'hsmd: its backend and version (always 1).',
    labelNames: ['backend', 'version'],
    registers,
  })
  info.set({ backend: sources.backend, version: sources.version }, 1)
  new Gauge({
    name: 'hsmctl_daemon_start_time_seconds',
    help: 'When hsmd started, in seconds since the Unix epoch.',
    registers,
  }).set(sources.startedAtMs / 1000)
  new Gauge({
    name: 'hsmctl_daemon_uptime_seconds',
    help: 'Seconds since hsmd started.',
    registers,
  }).set((Date.now() - sources.startedAtMs) / 1000)
  new Gauge({
    name: 'hsmctl_daemon_connections',
    help: "Clients connected to hsmd's socket now (commands, shells, watch views).",
    registers,
  }).set(sources.connections())

  const byState = new Gauge({
    name: 'hsmctl_vms',
    help: 'VMs as `hsmctl vm list` shows them, by state and owner (hsmd, journal, acrn-dm, script, outside).',
    labelNames: ['state', 'owner'],
    registers,
  })
  const counts = new Map<string, { state: string; owner: string; n: number }>()
  for (const vm of vms) {
    const owner = ownerKind(vm.owner)
    const key = `${vm.state}\0${owner}`
    const c = counts.get(key) ?? { state: vm.state, owner, n: 0 }
    c.n++
    counts.set(key, c)
  }
  for (const c of counts.values()) byState.set({ state: c.state, owner: c.owner }, c.n)

  // the VM's name as `vm list` gives it (empty for a vmid no listed VM has)
  const names = new Map<number, string>()
  for (const vm of vms) if (vm.vmid !== null) names.set(vm.vmid, vm.name)
  const traffic = trafficOf(sources.trace)
  const labelsOf = (t: Traffic): Labels => ({
    vm: names.get(t.vmid) ?? '',
    vmid: String(t.vmid),
    type: t.type,
    dir: t.dir,
    client: t.client,
  })
  const ioreqs = new Counter({
    name: 'hsmctl_ioreqs_total',
    help: "I/O requests completed, by VM, type (pio, mmio, pcicfg), direction and the client that handled them (default, ioeventfd, kernel). A destroyed VM's series ends.",
    labelNames: ['vm', 'vmid', 'type', 'dir', 'client'],
    registers,
  })
  for (const t of traffic) ioreqs.inc(labelsOf(t), t.count)
  registry.registerMetric(
    histogramFamily(
      'hsmctl_ioreq_latency_seconds',
      'I/O request latency from PENDING to COMPLETE, by VM, type, direction and client.',
      traffic.map((t) => {
        let seen = 0
        let b = 0
        const buckets = LE_LAST_BUCKET.map((last) => {
          for (; b <= last && b < TRACE_BUCKETS; b++) seen += t.hist[b]!
          return seen
        })
        return { labels: labelsOf(t), buckets, sum: t.latSumNs / 1e9, count: t.count }
      }),
    ),
  )

  new Counter({
    name: 'hsmctl_trace_records_total',
    help: "I/O requests recorded in hsmd's trace since it started (destroyed VMs' included).",
    registers,
  }).inc(sources.trace.published)
  new Counter({
    name: 'hsmctl_trace_dropped_records_total',
    help: "Trace records readers (ioreq watch/tail/record) lost because hsmd's trace ring overran them.",
    registers,
  }).inc(sources.trace.dropped)
  new Gauge({
    name: 'hsmctl_trace_ring_records',
    help: "Records hsmd's trace ring holds at most (a reader further behind loses records).",
    registers,
  }).set(sources.trace.ring.capacity)

  return registry.metrics()
}

function wantsOpenMetrics(req: IncomingMessage): boolean {
  return /application\/openmetrics-text/i.test(req.headers.accept ?? '')
}

async function answer(
  req: IncomingMessage,
  res: ServerResponse,
  sources: MetricsSources | undefined,
  log?: (line: string) => void,
) {
  const path = (req.url ?? '/').split('?')[0]
  if (path !== METRICS_PATH) {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
    res.end(`not found: hsmd serves its metrics at ${METRICS_PATH}\n`)
    return
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' })
    res.end(`${req.method} is not allowed: use GET\n`)
    return
  }
  if (!sources) {
    res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '1' })
    res.end('hsmd is starting\n')
    return
  }
  const contentType: RegistryContentType = wantsOpenMetrics(req)
    ? Registry.OPENMETRICS_CONTENT_TYPE
    : Registry.PROMETHEUS_CONTENT_TYPE
  try {
    const body = await renderMetrics(sources, contentType)
    res.writeHead(200, { 'content-type': contentType })
    res.end(req.method === 'HEAD' ? undefined : body)
  } catch (e) {
    log?.(`metrics: scrape failed: ${(e as Error).message}`)
    res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
    res.end(`hsmd could not collect its metrics: ${(e as Error).message}\n`)
  }
}

/** Why the address cannot be listened on, as an error of the family (exit 4 or 2). */
function listenError(e: NodeJS.ErrnoException, at: string, port: number): Error {
  switch (e.code) {
    case 'EADDRINUSE':
      return new ConflictError(
        `--metrics: ${at} is in use`,
        `another program (or hsmd) listens there: see \`ss -ltnp 'sport = :${port}'\`; choose another port, or 0 for any free one`,
      )
    case 'EADDRNOTAVAIL':
      return new UsageError(`${at} is not an address of this machine`, {
        flag: '--metrics',
        hint: 'give one of its addresses (`ip -brief address`), or only a PORT for 127.0.0.1',
      })
    case 'EACCES':
      return new UsageError(`listening on ${at} is not permitted`, {
        flag: '--metrics',
        hint: 'ports below 1024 need privileges: use 9410 (or 0 for any free port)',
      })
    default:
      return new UsageError(`cannot listen on ${at}: ${e.message}`, { flag: '--metrics' })
  }
}

/**
 * Listen on `address`; scrapes are answered once `serve()` gives the sources. hsmd binds
 * the port before its socket: a command that started it connects as soon as the socket
 * exists, so a port in use must stop hsmd before then (the command then prints why).
 */
export async function listenMetrics(
  address: MetricsAddress,
  log?: (line: string) => void,
): Promise<MetricsServer> {
  let sources: MetricsSources | undefined
  const server: Server = createServer((req, res) => void answer(req, res, sources, log))
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(listenError(e, formatAddress(address), address.port)),
    )
    server.listen({ host: address.host, port: address.port, exclusive: true }, () => resolve())
  })
  server.on('error', (e) => log?.(`metrics: ${e.message}`))
  const bound = { host: address.host, port: (server.address() as AddressInfo).port }
  return {
    address: bound,
    url: `http://${formatAddress(bound)}${METRICS_PATH}`,
    serve: (s) => (sources = s),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** The daemon's `vm.list` merged with acrn-dm's side, as `vm list` merges them. */
export async function listedVms(
  daemonVms: VmSummary[],
  env: NodeJS.ProcessEnv,
): Promise<MetricsVm[]> {
  const [{ readAcrnViews, mergeVms }, { acrnPaths }] = await Promise.all([
    import('../acrn-dm/vms.js'),
    import('../acrn-dm/paths.js'),
  ])
  const daemon = daemonVms.map((v) => ({ ...v, memory: `0x${v.memory.toString(16)}` }))
  return mergeVms({ daemon, ...(await readAcrnViews(acrnPaths(env))) })
}
