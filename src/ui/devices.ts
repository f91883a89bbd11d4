// `ioreq report --by device` as a table: one line per region of a device (a PCI function's
// config space and each BAR; a standard device's ports), a device's lines together.

import { latencyText } from '../core/trace/format.js'
import type { DeviceReport, RequestTotals } from '../core/trace/devices.js'
import { renderTable } from './table.js'

/** `default`, or `default:20,ioeventfd:1` when several clients completed them. */
export function clientsText(clients: RequestTotals['clients']): string {
  const used = Object.entries(clients).filter(([, n]) => n > 0)
  if (used.length === 1) return used[0]![0]
  return used.map(([c, n]) => `${c}:${n}`).join(',')
}

export function renderDevices(report: DeviceReport): string {
  const rows: (string | number)[][] = []
  for (const d of report.devices)
    for (const r of d.regions)
      rows.push([
        d.vm,
        d.device,
        r.where,
        r.count,
        report.total ? ((r.count / report.total) * 100).toFixed(1) : '0.0',
        r.reads,
        r.writes,
        latencyText(r.latAvgNs),
        latencyText(r.latMaxNs),
        clientsText(r.clients),
      ])
  rows.push(['', 'Total', '', report.total, report.total ? '100.0' : '0.0', '', '', '', '', ''])
  return renderTable(
    [
      { header: 'VM' },
      { header: 'DEVICE' },
      { header: 'REGION' },
      { header: 'COUNT', align: 'right' },
      { header: '%', align: 'right' },
      { header: 'READS', align: 'right' },
      { header: 'WRITES', align: 'right' },
      { header: 'AVG', align: 'right' },
      { header: 'MAX', align: 'right' },
      { header: 'CLIENT' },
    ],
    rows,
  )
}
