// The full-screen `ioreq watch` view (first version: the top table, refreshed every
// interval; q quits). The complete view (log, filters, sort, help) builds on this.
import type { DaemonClient } from '../../core/daemon/client.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { StatsReply } from '../../core/trace/methods.js'
import { TopModel, type SortKey } from '../../core/trace/view.js'
import { filterFromFlags, type TraceFilterFlagValues } from '../../cli/trace-flags.js'
import { renderTop } from '../trace.js'

export interface WatchTuiOptions {
  client: DaemonClient
  names: string[]
  flags: TraceFilterFlagValues & { sort?: string; 'by-vcpu'?: boolean; 'skip-zero'?: boolean }
  intervalMs: number
  signal?: AbortSignal
}

export async function runWatchTui(o: WatchTuiOptions): Promise<void> {
  const stats = () =>
    o.client.call<Wire<StatsReply>>('trace.stats', { byVcpu: o.flags['by-vcpu'] === true })
  const first = await stats()
  const model = new TopModel({
    filter: filterFromFlags(o.flags, o.names, first.vms),
    sort: (o.flags.sort ?? 'count') as SortKey,
  })
  const names = new Map(first.vms.map((v) => [v.vmid, v.name]))
  model.update(first.rows, first.t, (id) => names.get(id) ?? String(id))
  const out = process.stdout
  out.write('\x1b[?1049h\x1b[?25l')
  const stdin = process.stdin
  stdin.setRawMode?.(true)
  stdin.resume()
  let done = false
  const finish = new Promise<void>((resolve) => {
    stdin.on('data', (d: Buffer) => {
      const key = d.toString()
      if (key === 'q' || key === '\x03') {
        done = true
        resolve()
      }
    })
    o.signal?.addEventListener('abort', () => {
      done = true
      resolve()
    })
  })
  try {
    while (!done) {
      const reply = await stats()
      for (const v of reply.vms) names.set(v.vmid, v.name)
      model.update(reply.rows, reply.t, (id) => names.get(id) ?? String(id))
      const rows = model.rows()
      const header = `hsmctl ioreq watch  ${[...names.values()].join(' ')}  total ${model.totals.count}  (q quits)`
      out.write(
        '\x1b[H\x1b[2J' +
          header +
          '\n\n' +
          (rows.length ? renderTop(rows, model.totals, 'table', '') : 'Waiting for traffic...') +
          '\n',
      )
      await Promise.race([finish, new Promise((r) => setTimeout(r, o.intervalMs))])
    }
  } finally {
    stdin.setRawMode?.(false)
    stdin.pause()
    out.write('\x1b[?25h\x1b[?1049l')
  }
}
