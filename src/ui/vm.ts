import type { Wire } from '../core/daemon/protocol.js'
import type { HypervisorView, VmDetails, VmSummary } from '../core/vmm/manager.js'
import { out } from './color.js'
import { bdf, big, duration, hex, size } from './format.js'
import { pciText, type PciText } from './pci.js'
import { renderTable } from './table.js'

const STATE_COLOUR = {
  running: 'green',
  paused: 'yellow',
  created: 'cyan',
  journaled: 'gray',
  incomplete: 'yellow',
  corrupt: 'red',
} as const

/** acrn-dm's and registered scripts' states (`vm list` merges them, core/acrn-dm/vms.ts). */
const OTHER_STATE_COLOUR: Readonly<Record<string, 'gray' | 'yellow' | 'red'>> = {
  stopped: 'gray',
  suspended: 'yellow',
  resetting: 'yellow',
  'powering-off': 'yellow',
  halted: 'red',
  'triple-fault': 'red',
  'not-answering': 'red',
  unknown: 'red',
  gone: 'red',
}

export function stateText(state: string): string {
  const colour = STATE_COLOUR[state as keyof typeof STATE_COLOUR] ?? OTHER_STATE_COLOUR[state]
  return colour ? out()[colour](state) : state
}

/** A row of `vm list`: hsmd's VmSummary, or an acrn-dm VM, a script, another process's VM. */
type VmListRow = Omit<Wire<VmSummary>, 'state' | 'owner' | 'memory'> & {
  state: string
  owner: string
  memory: string | null
  /** The host it is on, over a fleet (`--host a,b`). */
  host?: string
}

/** A host of a fleet that did not answer: one row of its own (core/daemon/ssh/fleet.ts). */
export interface FailedHostRow {
  host: string
  error: { message: string; hint?: string }
}

const failed = (row: VmListRow | FailedHostRow): row is FailedHostRow => 'error' in row

/** `vm list`'s table; over a fleet, a HOST column and a row for each host that failed. */
export function renderVmList(rows: (VmListRow | FailedHostRow)[]): string {
  if (rows.length === 0) return 'No VMs. Create one with `hsmctl vm create NAME`.'
  const c = out()
  const vms = rows.filter((r): r is VmListRow => !failed(r))
  const down = rows.filter(failed)
  const fleet = rows.some((r) => r.host !== undefined)
  const table = renderTable(
    [
      ...(fleet ? [{ header: 'HOST' }] : []),
      { header: 'NAME' },
      { header: 'VMID', align: 'right' },
      { header: 'STATE' },
      { header: 'VCPUS', align: 'right' },
      { header: 'MEMORY', align: 'right' },
      { header: 'OWNER' },
      { header: 'UPTIME', align: 'right' },
    ],
    rows.map((vm) =>
      failed(vm)
        ? [vm.host, '-', '-', c.red('no answer'), '-', '-', '-', '-']
        : [
            ...(fleet ? [vm.host ?? ''] : []),
            vm.name,
            vm.vmid ?? '-',
            stateText(vm.state),
            vm.vcpus ?? '-',
            vm.memory === null ? '-' : size(vm.memory),
            // an outside VM's holder when the daemon knows it (a program under `sim exec`)
            vm.holder ?? vm.owner,
            duration(vm.uptimeSeconds),
          ],
    ),
  )
  const marked = vms.filter((vm) => vm.autostart).map((vm) => vm.name)
  const autostart = marked.length
    ? [`Autostart (recreated when hsmd starts): ${marked.join(', ')}`]
    : []
  // what is wrong with a journal entry does not fit a column: one line each, under the table
  const problems = vms.filter((vm) => vm.problem !== undefined)
  const errors = down.flatMap((r) => [
    `  ${r.error.message.includes(r.host) ? '' : `${r.host}: `}${r.error.message}`,
    ...(r.error.hint ? [c.dim(`    ${r.error.hint}`)] : []),
  ])
  if (problems.length === 0 && errors.length === 0) return [table, ...autostart].join('\n')
  const lines = [
    ...errors,
    ...problems.map((vm) => `  ${fleet ? `${vm.host}: ` : ''}${vm.name}: ${vm.problem}`),
  ]
  const fixes = problems.some((vm) => vm.state === 'corrupt')
    ? ['Fix or remove a corrupt file, or forget it: hsmctl vm forget NAME']
    : []
  if (problems.some((vm) => vm.state === 'incomplete'))
    fixes.push('Recreate an incomplete VM from the spec as asked: hsmctl vm apply NAME')
  return [table, ...autostart, '', ...lines, ...fixes.map((f) => c.dim(f))].join('\n')
}

/** A VM in one line: what `vm start`, `pause` and `reset` print (virsh says one line too). */
export function renderVmLine(vm: Wire<VmDetails>): string {
  const c = out()
  return `${c.bold(vm.name)}  vmid ${vm.vmid}  ${c[STATE_COLOUR[vm.state]](vm.state)}  ${vm.vcpus} vCPU${vm.vcpus === 1 ? '' : 's'}  ${size(vm.memory)} RAM  up ${duration(vm.uptimeSeconds)}`
}

export function renderVm(vm: Wire<VmDetails>): string {
  const lines = [
    renderVmLine(vm),
    `  cpu affinity ${hex(vm.cpuAffinity)}   flags ${vm.flags.length ? vm.flags.join(',') : '-'}   ioreq page ${hex(vm.ioreqBuf)}`,
    `  console      ${vm.console}`,
  ]
  const section = (title: string, rows: string[]) => pushSection(lines, title, rows)
  section(
    'Memory segments',
    vm.memsegs.map(
      (m) =>
        `${m.type.toUpperCase().padEnd(4)} gpa ${hex(m.gpa)}-${hex(big(m.gpa) + big(m.size) - 1n)} (${size(m.size)})${m.hpa !== undefined ? ` -> hpa ${hex(m.hpa)}` : ''}`,
    ),
  )
  section(
    'Pass-through devices',
    vm.ptdevs.map(
      (p) =>
        `${bdf(p.phys)} as ${bdf(p.virt)}${p.intr ? `  ${p.intr.type} virt pin ${p.intr.virtPin} phys pin ${p.intr.physPin}` : ''}`,
    ),
  )
  if (vm.mmiodevs.length)
    section(
      'MMIO devices',
      vm.mmiodevs.map(
        (m) => `${m.devName} ${m.res.map((r) => `${hex(r.gpa)}+${size(r.size)}`).join(' ')}`,
      ),
    )
  if (vm.vdevs.length)
    section(
      'Virtual devices',
      vm.vdevs.map((v) => `${hex(v.vendor)}:${hex(v.device)} slot ${hex(v.slot)}`),
    )
  section(
    'ioeventfds',
    vm.ioeventfds.map(
      (e) =>
        `#${e.id} ${e.pio ? 'PIO ' : 'MMIO'} ${hex(e.addr)} len ${e.len}${e.datamatch !== undefined ? ` data ${hex(e.datamatch)}` : ''}  signals ${big(e.signals)}`,
    ),
  )
  section(
    'irqfds',
    vm.irqfds.map((q) => `#${q.id} MSI ${hex(q.msiAddr)}:${hex(q.msiData)}  signals ${q.signals}`),
  )
  section(
    'ioreq clients',
    vm.clients.map(
      (k) =>
        `${k.name.padEnd(14)} ${k.kind.padEnd(8)} ${k.owner}${k.handled !== undefined ? `  handled ${k.handled}` : ''}${k.ranges !== undefined ? `  ranges ${k.ranges}` : ''}`,
    ),
  )
  hypervisorSections(vm, lines)
  return lines.join('\n')
}

/** A titled section of `vm show`: its rows indented, or (none). */
function pushSection(lines: string[], title: string, rows: string[]): void {
  lines.push('', out().bold(title), ...(rows.length ? rows.map((r) => `  ${r}`) : ['  (none)']))
}

interface LineView {
  pin: number
  level: number
  assertions: number
}

/**
 * What the simulated hypervisor knows of a VM: its vCPUs, interrupt lines and MSIs (of
 * `vm show`, hsmd's VMs and acrn-dm's alike).
 */
export function hypervisorSections(
  vm: Pick<Wire<VmDetails> | Wire<HypervisorView>, 'execution' | 'hypervisor'>,
  lines: string[],
): void {
  const section = (title: string, rows: string[]) => pushSection(lines, title, rows)
  const hv = vm.hypervisor as
    | {
        gsi?: { gsiCount: number; ioapic: LineView[]; pic: LineView[]; enginePins?: number }
        msi?: { vcpu: number; vector: number; count: number }[]
        vcpus?: VcpuView[]
        executionError?: string
        lane?: boolean
        slots?: { vcpu: number; state: string; type: number; direction: number; address: string }[]
      }
    | undefined
  const execution = vm.execution as { engine?: string; reason?: string } | undefined
  if (execution?.reason) section('vCPUs', [`do not execute guest code: ${execution.reason}`])
  else if (execution?.engine && hv?.vcpus?.length)
    section(
      `vCPUs (${execution.engine}${hv.lane ? '; port I/O to its client through the lane' : ''})`,
      hv.vcpus.map((v) =>
        vcpuLine(
          v,
          hv.slots?.find((s) => s.vcpu === v.id),
        ),
      ),
    )
  const gsi = hv?.gsi
  if (gsi && gsi.ioapic.length + gsi.pic.length > 0) {
    // lines that are high or were ever asserted; a GSI drives its vIOAPIC pin, and below
    // 16 a vPIC pin too (GSI 2 -> PIC pin 0) (§7.1)
    const row = (chip: string, l: LineView) =>
      `${chip} pin ${String(l.pin).padEnd(2)}  ${l.level ? 'high' : 'low '}  asserted ${l.assertions}`
    const pins = gsi.enginePins
    section(`Interrupt lines (${gsi.gsiCount} GSIs)`, [
      ...gsi.ioapic.map(
        (l) =>
          row('IOAPIC', l) +
          (pins !== undefined && l.pin >= pins
            ? `  (not delivered: the CPU engine's IOAPIC has ${pins} pins)`
            : ''),
      ),
      ...gsi.pic.map((l) => row('PIC   ', l)),
    ])
  }
  if (hv?.msi?.length)
    section(
      'MSIs delivered',
      hv.msi.map((m) => `vCPU ${m.vcpu} vector ${hex(m.vector)}: ${m.count}`),
    )
}

interface VcpuView {
  id: number
  requestOutstanding: boolean
  execution?: {
    state: string
    exits: Record<string, number>
    fault?: string
    at?: { mode: string; rip: string }
  }
}

const REQUEST_TYPES = ['PIO', 'MMIO', 'PCICFG']

/** `vCPU 0  waiting for PIO 0x3fd read  exits pio 12, hlt 1` */
function vcpuLine(
  v: VcpuView,
  slot: { state: string; type: number; direction: number; address: string } | undefined,
): string {
  const e = v.execution
  if (!e) return `vCPU ${v.id}  not started`
  let state = e.state
  if (v.requestOutstanding && slot)
    state = `waiting for ${REQUEST_TYPES[slot.type] ?? 'request'} ${slot.address} ${slot.direction === 1 ? 'write' : 'read'} (${slot.state})`
  else if (e.state === 'waiting') state = 'waiting for its request'
  if (e.fault) state = `stopped: ${e.fault}`
  const exits = Object.entries(e.exits)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ')
  // where it is (the wire gives 64-bit values as hex strings)
  const at = e.at ? `  ${e.at.mode} mode, rip ${e.at.rip}` : ''
  return `vCPU ${v.id}  ${state}${at}${exits ? `  exits ${exits}` : ''}`
}

export type VmJson = Omit<Wire<VmDetails>, 'ptdevs' | 'vdevs'> & {
  ptdevs: PciText<Wire<VmDetails>['ptdevs'][number]>[]
  vdevs: PciText<Wire<VmDetails>['vdevs'][number]>[]
}

/** What `vm show --json` (and every verb that prints the VM after) gives scripts. */
export function vmJson(vm: Wire<VmDetails>): VmJson {
  return { ...vm, ptdevs: vm.ptdevs.map(pciText), vdevs: vm.vdevs.map(pciText) }
}
