import { renderTable } from './table.js'

// u64 fields arrive as hex strings; quantities (MHz, mW, us) read in decimal, registers
// and addresses in hex
const HEX_FIELDS = new Set(['control', 'status', 'cx_reg.address'])

function cell(key: string, value: unknown): string {
  const text = String(value)
  return /^0x[0-9a-f]+$/i.test(text) && !HEX_FIELDS.has(key) ? String(BigInt(text)) : text
}

export function renderPmTable(result: {
  name: string
  vcpu: number
  kind: string
  count: number
  states: Record<string, unknown>[]
}): string {
  const head = `${result.name} vCPU ${result.vcpu}: ${result.count} ${result.kind === 'px' ? 'P' : 'C'}-state${result.count === 1 ? '' : 's'}`
  if (result.states.length === 0) return head
  const flat = result.states.map((s) => {
    const row: Record<string, string> = {}
    for (const [k, v] of Object.entries(s)) {
      if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
        for (const [k2, v2] of Object.entries(v)) row[`${k}.${k2}`] = cell(`${k}.${k2}`, v2)
      } else row[k] = cell(k, v)
    }
    return row
  })
  const keys = Object.keys(flat[0]!)
  return `${head}\n${renderTable(
    keys.map((k) => ({ header: k.toUpperCase(), align: 'right' as const })),
    flat.map((r) => keys.map((k) => r[k] ?? '')),
  )}`
}
