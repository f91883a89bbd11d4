import type { IoctlDescription } from '../core/abi/describe.js'
import type { Layout } from '../core/abi/layout.js'
import { renderTable } from './table.js'

const DIR_TEXT: Readonly<Record<string, string>> = { none: '-', w: 'W', r: 'R', rw: 'RW' }

export function renderIoctlTable(ioctls: IoctlDescription[]): string {
  return renderTable(
    [
      { header: 'IOCTL' },
      { header: 'NR', align: 'right' },
      { header: 'DIR' },
      { header: 'SIZE', align: 'right' },
      { header: 'ARGUMENT' },
      { header: 'REQUEST' },
    ],
    ioctls.map((i) => [
      i.name,
      `0x${i.nr.toString(16).padStart(2, '0')}`,
      DIR_TEXT[i.dir] ?? i.dir,
      i.size,
      i.arg === null
        ? '(none)'
        : i.arg.endsWith('*') || i.arg.startsWith('acrn_')
          ? i.arg
          : `${i.arg} (value)`,
      i.request,
    ]),
  )
}

export function renderStructTable(layouts: readonly Layout[]): string {
  return renderTable(
    [
      { header: 'STRUCT' },
      { header: 'SIZE', align: 'right' },
      { header: 'ALIGN', align: 'right' },
      { header: 'ORIGIN' },
    ],
    layouts.map((l) => [l.name, l.size, l.align, l.origin + (l.packed ? ', packed' : '')]),
  )
}
