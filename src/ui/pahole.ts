// A struct's layout the way pahole prints it: one line per member with offset and size,
// holes and tail padding called out, and a summary.

import { gaps, members, type Layout } from '../core/abi/layout.js'
import { out } from './color.js'

export function renderPahole(layout: Layout): string {
  const c = out()
  const lines: string[] = [`${layout.kind} ${layout.name} {`]
  const holesAfter = new Map<string, number[]>()
  const layoutGaps = gaps(layout)
  for (const gap of layoutGaps) {
    if (gap.kind === 'hole')
      holesAfter.set(gap.after, [...(holesAfter.get(gap.after) ?? []), gap.size])
  }
  // C puts an array's length after the name: `u32 bar[6];`
  const list = members(layout).map((m) => {
    const array = /^(.*)(\[\d+\])$/.exec(m.type)
    return array ? { ...m, type: array[1]!, name: m.name + array[2]! } : m
  })
  const typeWidth = Math.max(...list.map((m) => m.type.length + m.depth * 2), 8) + 2
  const nameWidth = Math.max(...list.map((m) => m.name.length + 1)) + 2
  let lastTop = ''
  const flushHoles = (after: string) => {
    for (const size of holesAfter.get(after) ?? []) {
      lines.push(c.yellow(`\n\t/* XXX ${size} byte${size === 1 ? '' : 's'} hole, try to pack */\n`))
    }
  }
  for (const m of list) {
    if (m.depth === 0) {
      if (lastTop) flushHoles(lastTop)
      lastTop = m.name
    }
    const indent = '  '.repeat(m.depth)
    const text = `\t${(indent + m.type).padEnd(typeWidth)}${(m.name + ';').padEnd(nameWidth)}/* ${String(m.offset).padStart(5)} ${String(m.size).padStart(5)} */`
    lines.push(m.depth === 0 ? text : c.dim(text))
  }
  if (lastTop) flushHoles(lastTop)
  const holes = layoutGaps.filter((g) => g.kind === 'hole')
  const padding = layoutGaps.find((g) => g.kind === 'padding')
  const topLevel = list.filter((m) => m.depth === 0)
  const sumMembers = layout.size - holes.reduce((n, g) => n + g.size, 0) - (padding?.size ?? 0)
  lines.push('')
  lines.push(
    c.dim(
      `\t/* size: ${layout.size}, cachelines: ${Math.ceil(layout.size / 64)}, members: ${topLevel.length}, align: ${layout.align}${layout.packed ? ', packed' : ''} */`,
    ),
  )
  lines.push(
    c.dim(
      `\t/* sum members: ${sumMembers}, holes: ${holes.length}, sum holes: ${holes.reduce((n, g) => n + g.size, 0)} */`,
    ),
  )
  if (padding) lines.push(c.dim(`\t/* padding: ${padding.size} */`))
  lines.push('};')
  return lines.join('\n')
}
