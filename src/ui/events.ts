// One event as a line (`hsmctl events`): local time, type, action, VM, then what else
// identifies it (`vmid=1 owner=hsmd`), as docker events prints `time type action id (k=v)`.

import type { HsmEvent } from '../core/daemon/events.js'

const pad2 = (n: number) => String(n).padStart(2, '0')

/** `2026-12-07 14:05:09.123`, local time. */
export function eventTime(iso: string): string {
  const d = new Date(iso)
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`
}

export function eventLine(e: HsmEvent): string {
  const detail = [
    ...(e.vmid !== null ? [`vmid=${e.vmid}`] : []),
    ...Object.entries(e.attributes).map(([k, v]) => `${k}=${String(v)}`),
  ].join(' ')
  return [
    eventTime(e.time),
    e.type.padEnd(12),
    e.action.padEnd(10),
    (e.vm ?? '-').padEnd(15),
    detail,
  ]
    .join(' ')
    .trimEnd()
}
