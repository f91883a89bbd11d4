// How trace rows and records read: `PIO 0x3f8 OUT`, `MMIO 0xfed00000 W`,
// `PCICFG 00:03.0+0x10 R` (UX.md, "Live ioreq view").

import { formatBdf } from '../parse/bdf.js'
import { unpackPciAddr, type TraceEvent } from './record.js'
import type { RowKey } from './stats.js'

export function addrText(type: RowKey['type'], addr: bigint): string {
  if (type === 'pcicfg') {
    const p = pciConfigText(addr)
    return `${p.bdf}+${p.reg}`
  }
  return `0x${addr.toString(16)}`
}

/** A PCI config access's function (`00:03.0`, as --phys takes it) and register (`0x10`). */
export function pciConfigText(addr: bigint): { bdf: string; reg: string } {
  const p = unpackPciAddr(addr)
  return { bdf: formatBdf({ segment: 0, ...p }), reg: `0x${p.reg.toString(16)}` }
}

export function dirText(type: RowKey['type'], dir: RowKey['dir']): string {
  if (type === 'pio') return dir === 'write' ? 'OUT' : 'IN'
  return dir === 'write' ? 'W' : 'R'
}

export function rowKeyText(key: RowKey): string {
  return `${key.type.toUpperCase()} ${addrText(key.type, key.addr)} ${dirText(key.type, key.dir)}`
}

/** Nanoseconds for a table cell: 850ns, 12.3us, 4.1ms. */
export function latencyText(ns: number): string {
  if (ns < 1000) return `${Math.round(ns)}ns`
  if (ns < 1e6) return `${(ns / 1e3).toFixed(ns < 1e4 ? 1 : 0)}us`
  return `${(ns / 1e6).toFixed(ns < 1e7 ? 1 : 0)}ms`
}

/** One request of the log view: time, VM, vCPU, type, dir, address, size, value, client, latency. */
export function eventText(e: TraceEvent, vmName: (vmid: number) => string): string {
  const t = (e.t / 1000).toFixed(6).padStart(12)
  return [
    t,
    vmName(e.vmid).padEnd(10),
    `vcpu${e.vcpu}`.padEnd(6),
    e.type.toUpperCase().padEnd(6),
    dirText(e.type, e.dir).padEnd(3),
    addrText(e.type, e.addr).padEnd(18),
    `${e.size}B`.padEnd(3),
    `0x${e.value.toString(16)}`.padEnd(18),
    e.client.padEnd(9),
    latencyText(e.latencyNs),
  ].join(' ')
}
