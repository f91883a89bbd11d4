import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import type { IoeventfdInfo, MemsegInfo } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { PciText } from '../../ui/pci.js'

interface PtdevBar {
  phys: number
  virt: number
  index: number
  kind: string
  gpa: string
  hpa: string
  size: string
}

interface MemsegMap<Bar = PtdevBar> {
  memsegs: Wire<MemsegInfo>[]
  ptdevBars: Bar[]
  ioeventfds: Wire<IoeventfdInfo>[]
}

export default class MemsegList extends DaemonCommand {
  static override summary =
    'Show a VM’s guest address map, like QEMU’s `info mtree`: RAM, MMIO, pass-through BARs, ioeventfds.'

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo',
    '<%= config.bin %> <%= command.id %> demo --json',
  ]

  static override args = { name: vmNameArg }

  async run(): Promise<MemsegMap<PciText<PtdevBar>>> {
    const { args } = await this.parse(MemsegList)
    const map = await this.call<MemsegMap>('memseg.list', { name: args.name })
    const { bdf, big, hex, size } = await import('../../ui/format.js')
    const rows = [
      ...map.memsegs.map((m) => ({
        start: big(m.gpa),
        end: big(m.gpa) + big(m.size) - 1n,
        text: `${m.type === 'ram' ? 'ram ' : 'mmio'} (${size(m.size)}, ${['-', 'r', 'w', 'rw', 'x', 'rx', 'wx', 'rwx'][m.access]})${m.hpa !== undefined ? ` -> hpa ${hex(m.hpa)}` : ''}`,
      })),
      ...map.ptdevBars
        .filter((b) => b.kind !== 'io')
        .map((b) => ({
          start: big(b.gpa),
          end: big(b.gpa) + big(b.size) - 1n,
          text: `pass-through ${bdf(b.phys)} (guest ${bdf(b.virt)}) BAR${b.index} (${size(b.size)}) -> hpa ${hex(b.hpa)}`,
        })),
      ...map.ioeventfds
        .filter((e) => !e.pio)
        .map((e) => ({
          start: big(e.addr),
          end: big(e.addr) + BigInt(e.len) - 1n,
          text: `ioeventfd #${e.id}${e.datamatch !== undefined ? ` data ${hex(e.datamatch)}` : ''}`,
        })),
    ].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))
    const io = map.ioeventfds.filter((e) => e.pio)
    const lines = [`address-space: ${args.name} memory`]
    for (const r of rows)
      lines.push(`  ${hex(r.start).padStart(18, ' ')}-${hex(r.end).padEnd(18)} ${r.text}`)
    if (rows.length === 0) lines.push('  (nothing mapped)')
    lines.push(`address-space: ${args.name} I/O`)
    lines.push(`  ${'0x3f8'.padStart(18)}-${'0x3ff'.padEnd(18)} uart 16550 (hsmd)`)
    for (const b of map.ptdevBars.filter((x) => x.kind === 'io')) {
      lines.push(
        `  ${hex(b.gpa).padStart(18)}-${hex(big(b.gpa) + big(b.size) - 1n).padEnd(18)} pass-through ${bdf(b.phys)} BAR${b.index}`,
      )
    }
    for (const e of io)
      lines.push(
        `  ${hex(e.addr).padStart(18)}-${hex(big(e.addr) + BigInt(e.len) - 1n).padEnd(18)} ioeventfd #${e.id}`,
      )
    this.log(lines.join('\n'))
    const { pciText } = await import('../../ui/pci.js')
    return { ...map, ptdevBars: map.ptdevBars.map(pciText) }
  }
}
