// The watch view's input: raw terminal bytes as keys, and the filter line the user types
// after `f` (fields, lists, bare values, errors fit for the status line).
import { describe, expect, it } from 'vitest'
import { decodeKeys } from '../../../src/ui/watch/keys.js'
import {
  filterLineText,
  parseFilterLine,
  resolveFilter,
  specFromFlags,
} from '../../../src/ui/watch/filter-line.js'

describe('decodeKeys', () => {
  it.each([
    ['q', [{ char: 'q' }]],
    ['\r', [{ name: 'enter' }]],
    ['\r\n', [{ name: 'enter' }]],
    ['\x1b', [{ name: 'escape' }]],
    ['\x03', [{ name: 'ctrl-c' }]],
    ['\x7f', [{ name: 'backspace' }]],
    ['\x1b[D\x1b[C', [{ name: 'left' }, { name: 'right' }]],
    ['\x1bOH\x1b[4~', [{ name: 'home' }, { name: 'end' }]],
    ['\x1b[3~', [{ name: 'delete' }]],
    ['\x1b[1;5C', [{ name: 'right' }]],
    ['ab c', [{ char: 'a' }, { char: 'b' }, { char: ' ' }, { char: 'c' }]],
    ['é😀', [{ char: 'é' }, { char: '😀' }]],
    ['\x1bq', [{ name: 'escape' }, { char: 'q' }]],
  ])('%j', (input, keys) => {
    expect(decodeKeys(input)).toEqual(keys)
  })
})

describe('parseFilterLine', () => {
  it('takes every field of the filter', () => {
    expect(
      parseFilterLine('type pio dir write vm demo addr 0x3f0-0x3ff client default vcpu 0'),
    ).toEqual({
      types: ['pio'],
      dirs: ['write'],
      vms: ['demo'],
      addr: { from: 0x3f0n, to: 0x3ffn },
      clients: ['default'],
      vcpus: [0],
    })
  })

  it('lists, repeats, field=value and bare values', () => {
    expect(parseFilterLine('type=pio,mmio type pcicfg  vm a,b vcpu 1,2')).toEqual({
      types: ['pio', 'mmio', 'pcicfg'],
      vms: ['a', 'b'],
      vcpus: [1, 2],
    })
    expect(parseFilterLine('mmio write kernel')).toEqual({
      types: ['mmio'],
      dirs: ['write'],
      clients: ['kernel'],
    })
  })

  it.each(['', '   ', 'all', 'none', 'clear'])('%j clears the filter', (text) => {
    expect(parseFilterLine(text)).toEqual({})
  })

  it.each([
    ['bogus', /'bogus' is not a filter field/],
    ['type', /type: needs a value/],
    ['type dma', /^type: 'dma' is not one of pio, mmio, pcicfg/],
    ['dir sideways', /^dir: /],
    ['vcpu 300', /^vcpu: 300 is out of range/],
    ['addr 0x10-0x1', /^addr: '0x10-0x1' ends before it starts/],
    ['client acrndm', /^client: /],
  ])('%j is refused: %s', (text, message) => {
    expect(() => parseFilterLine(text)).toThrow(message)
  })

  it('a spec prints as a line that parses back to it', () => {
    const spec = parseFilterLine('vm demo,7 vcpu 0 type pio dir read client kernel addr 0x70+2')
    expect(filterLineText(spec)).toBe(
      'vm demo,7 vcpu 0 type pio dir read client kernel addr 0x70-0x71',
    )
    expect(parseFilterLine(filterLineText(spec))).toEqual(spec)
    expect(filterLineText({})).toBe('')
  })

  it('the flags give the same spec (lists with commas too)', () => {
    expect(
      specFromFlags({ vm: ['b'], vcpu: ['0,1'], type: ['pio', 'mmio'], addr: '0x70' }, ['a']),
    ).toEqual({
      vms: ['a', 'b'],
      vcpus: [0, 1],
      types: ['pio', 'mmio'],
      addr: { from: 0x70n, to: 0x70n },
    })
  })
})

describe('resolveFilter: VM names bound to vmids at every sample', () => {
  const vms = [
    { vmid: 1, name: 'demo' },
    { vmid: 2, name: '7' },
    { vmid: 7, name: 'web' },
  ]
  it('by name first, then as a vmid', () => {
    const r = resolveFilter({ vms: ['demo', '7', '1'], types: ['pio'] }, vms)
    expect(r.filter).toEqual({ vmids: [1, 2], types: ['pio'] })
    expect(r.gone).toEqual([])
  })

  it('a missing VM is gone; when all are, nothing passes', () => {
    const r = resolveFilter({ vms: ['demo', 'old'] }, vms)
    expect(r.filter.vmids).toEqual([1])
    expect(r.gone).toEqual(['old'])
    expect(resolveFilter({ vms: ['old'] }, vms).filter.vmids).toEqual([-1])
  })

  it('no VMs named: every VM', () => {
    expect(resolveFilter({ dirs: ['read'] }, vms)).toEqual({
      filter: { dirs: ['read'] },
      bound: [],
      gone: [],
    })
  })
})
