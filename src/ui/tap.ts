// `trace list`: the traced processes as a table.
import type { TapListReply } from '../core/daemon/tap-service.js'
import { renderTable } from './table.js'

export function traceListText(reply: TapListReply): string {
  if (reply.sessions.length === 0) {
    return `No traced processes. Run one with \`hsmctl trace exec -- PROGRAM\` (taps connect to ${reply.socket}).\n`
  }
  const rows = reply.sessions.map((s) => [
    s.pid,
    s.program,
    s.connected ? 'running' : 'exited',
    s.ioctls,
    s.ioreqs,
    s.dropped,
    s.vms.map((v) => `${v.name || '(unnamed)'} (vmid ${v.vmid})`).join(', ') || '-',
  ])
  return (
    renderTable(
      [
        { header: 'PID', align: 'right' },
        { header: 'PROGRAM' },
        { header: 'STATE' },
        { header: 'IOCTLS', align: 'right' },
        { header: 'IOREQS', align: 'right' },
        { header: 'DROPPED', align: 'right' },
        { header: 'VMS' },
      ],
      rows,
    ) + '\n'
  )
}
