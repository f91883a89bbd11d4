// Tab completion over a fake command table and fake live values: command words, flags of
// the command on the line, and VM names, vmids, BDFs, eventfd ids and files where they go.

import { describe, expect, it } from 'vitest'
import { Completer, type ValueSource } from '../../../src/cli/shell/complete.js'
import { CommandTable, resolveCommand } from '../../../src/cli/shell/table.js'

const table = new CommandTable([
  { id: 'abi', args: ['name'], flags: [{ name: 'structs', takesValue: false }] },
  { id: 'vm:list', args: [], flags: [{ name: 'json', takesValue: false }] },
  { id: 'vm:show', args: ['name'], flags: [{ name: 'json', takesValue: false }] },
  { id: 'vm:start', args: ['name'], flags: [] },
  {
    id: 'vm:create',
    args: ['name'],
    flags: [
      { name: 'vcpus', takesValue: true },
      { name: 'flag', takesValue: true, multiple: true },
      { name: 'backend', takesValue: true, options: ['sim', 'native'] },
    ],
  },
  { id: 'vm:apply', args: [], flags: [{ name: 'file', char: 'f', takesValue: true }] },
  { id: 'vm:regs:set', args: ['name'], flags: [{ name: 'vcpu', takesValue: true }] },
  {
    id: 'ptdev:assign',
    args: ['name'],
    flags: [
      { name: 'phys', takesValue: true },
      { name: 'virt', takesValue: true },
      { name: 'quirk', takesValue: false },
    ],
  },
  { id: 'ioeventfd:remove', args: ['name'], flags: [{ name: 'id', takesValue: true }] },
  { id: 'irqfd:signal', args: ['name'], flags: [{ name: 'id', takesValue: true }] },
  {
    id: 'ioreq:watch',
    args: ['name'],
    variadic: true,
    flags: [{ name: 'vmid', takesValue: true }],
  },
  { id: 'ioreq:replay', args: ['file'], flags: [{ name: 'vm', takesValue: true }] },
  { id: 'help', args: ['command'], variadic: true, flags: [] },
])

const calls: string[] = []
const values: ValueSource = {
  vmNames: async () => (calls.push('vmNames'), ['demo', 'dev', 'rt']),
  vmids: async () => (calls.push('vmids'), ['1', '2', '12']),
  hostBdfs: async () => (calls.push('hostBdfs'), ['00:02.0', '00:14.0', '00:1f.3']),
  eventfdIds: async (vm, kind) => {
    calls.push(`eventfdIds ${vm} ${kind}`)
    return vm === 'demo' ? (kind === 'irqfd' ? ['7', '8'] : ['3']) : []
  },
  abiNames: async () => ['CREATE_VM', 'acrn_vm_creation'],
  files: async (partial) => {
    calls.push(`files ${partial}`)
    return ['demo.yaml', 'dir/', 'my spec.yaml'].filter((f) => f.startsWith(partial))
  },
}
const completer = new Completer(table, values)
const complete = async (line: string) => {
  calls.length = 0
  return completer.complete(line)
}

describe('command words', () => {
  it('offers topics, top-level commands and the builtins at the start', async () => {
    const [hits, replaced] = await complete('')
    expect(hits).toEqual([
      'abi',
      'exit',
      'help',
      'ioeventfd',
      'ioreq',
      'irqfd',
      'ptdev',
      'quit',
      'vm',
    ])
    expect(replaced).toBe('')
  })

  it('completes a unique word with a blank after it', async () => {
    expect(await complete('pt')).toEqual([['ptdev '], 'pt'])
    expect(await complete('vm cr')).toEqual([['create '], 'cr'])
  })

  it('offers the commands of a topic', async () => {
    expect((await complete('vm '))[0]).toEqual(['apply', 'create', 'list', 'regs', 'show', 'start'])
    expect((await complete('vm s'))[0]).toEqual(['show', 'start'])
    expect(await complete('vm regs ')).toEqual([['set '], ''])
  })

  it('only looks at the command after the last ;', async () => {
    expect(await complete('vm list; vm st')).toEqual([['start '], 'st'])
  })

  it('completes command words after help, and nothing else', async () => {
    expect((await complete('help v'))[0]).toEqual(['vm '])
    expect((await complete('help vm l'))[0]).toEqual(['list '])
    expect(calls).toEqual([])
  })

  it('nothing for an unknown command or inside a comment', async () => {
    expect((await complete('frob '))[0]).toEqual([])
    expect((await complete('vm list # vm s'))[0]).toEqual([])
  })
})

describe('flags', () => {
  it('offers the command’s flags and --help', async () => {
    expect(await complete('ptdev assign demo --')).toEqual([
      ['--help', '--phys', '--quirk', '--virt'],
      '--',
    ])
    expect(await complete('vm list --j')).toEqual([['--json '], '--j'])
  })

  it('leaves out flags already given, unless repeatable', async () => {
    expect((await complete('ptdev assign demo --quirk --'))[0]).toEqual([
      '--help',
      '--phys',
      '--virt',
    ])
    expect((await complete('vm create a --flag rt --vcpus 2 --'))[0]).toEqual([
      '--backend',
      '--flag',
      '--help',
    ])
  })

  it('completes the values a flag lists', async () => {
    expect(await complete('vm create a --backend ')).toEqual([['sim', 'native'], ''])
    expect(await complete('vm create a --backend n')).toEqual([['native '], 'n'])
    expect(await complete('vm create a --backend=s')).toEqual([['--backend=sim '], '--backend=s'])
  })
})

describe('live values', () => {
  it('VM names for NAME', async () => {
    expect(await complete('vm show ')).toEqual([['demo', 'dev', 'rt'], ''])
    expect(await complete('vm show d')).toEqual([['demo', 'dev'], 'd'])
    expect(await complete('vm start r')).toEqual([['rt '], 'r'])
    expect(await complete('vm regs set de')).toEqual([['demo', 'dev'], 'de'])
  })

  it('no more names once NAME is given (unless the command takes many)', async () => {
    expect((await complete('vm show demo '))[0]).toEqual([])
    expect(calls).toEqual([])
    expect((await complete('ioreq watch demo r'))[0]).toEqual(['rt '])
  })

  it('a flag value is not taken for NAME', async () => {
    expect(await complete('vm create --vcpus 2 d')).toEqual([['demo', 'dev'], 'd'])
  })

  it('host BDFs for --phys and --virt', async () => {
    expect(await complete('ptdev assign demo --phys ')).toEqual([
      ['00:02.0', '00:14.0', '00:1f.3'],
      '',
    ])
    expect(await complete('ptdev assign demo --virt 00:1')).toEqual([
      ['00:14.0', '00:1f.3'],
      '00:1',
    ])
    expect(await complete('ptdev assign demo --phys=00:0')).toEqual([
      ['--phys=00:02.0 '],
      '--phys=00:0',
    ])
  })

  it('eventfd ids of the VM on the line, of the right kind', async () => {
    expect(await complete('ioeventfd remove demo --id ')).toEqual([['3 '], ''])
    expect(calls).toEqual(['eventfdIds demo ioeventfd'])
    expect(await complete('irqfd signal demo --id ')).toEqual([['7', '8'], ''])
    expect(calls).toEqual(['eventfdIds demo irqfd'])
    expect((await complete('irqfd signal --id '))[0]).toEqual([]) // no VM yet
  })

  it('vmids for --vmid, VM names for --vm', async () => {
    expect(await complete('ioreq watch --vmid 1')).toEqual([['1', '12'], '1'])
    expect(await complete('ioreq replay rec.bin --vm r')).toEqual([['rt '], 'r'])
  })

  it('files for FILE, --file and -f, quoted when needed', async () => {
    expect(await complete('vm apply -f de')).toEqual([['demo.yaml '], 'de'])
    expect(calls).toEqual(['files de'])
    expect(await complete('vm apply --file m')).toEqual([[`'my spec.yaml' `], 'm'])
    expect(await complete(`vm apply --file 'my`)).toEqual([[`'my spec.yaml' `], `'my`])
    expect(await complete(`vm apply --file "my`)).toEqual([[`"my spec.yaml" `], `"my`])
    // a directory stays open for the next Tab
    expect(await complete('ioreq replay di')).toEqual([['dir/'], 'di'])
    expect(await complete('vm apply --file=de')).toEqual([['--file=demo.yaml '], '--file=de'])
    expect(calls).toEqual(['files de'])
  })

  it('struct and ioctl names for abi', async () => {
    expect(await complete('abi CR')).toEqual([['CREATE_VM '], 'CR'])
  })

  it('a daemon that fails offers nothing and does not throw', async () => {
    const broken = new Completer(table, {
      ...values,
      vmNames: () => Promise.reject(new Error('down')),
    })
    expect(await broken.complete('vm show ')).toEqual([[], ''])
  })
})

describe('which command the words name (as oclif reads them)', () => {
  it.each([
    [['vm', 'show', 'demo'], { kind: 'command', id: 'vm:show', argv: ['demo'] }],
    [['vm', 'list', '--json'], { kind: 'command', id: 'vm:list', argv: ['--json'] }],
    [['vm', 'regs', 'set', 'a'], { kind: 'command', id: 'vm:regs:set', argv: ['a'] }],
    [['vm'], { kind: 'topic', id: 'vm', argv: [] }],
    [['vm', 'regs', '--json'], { kind: 'topic', id: 'vm:regs', argv: ['--json'] }],
    [['vm', 'lst', 'a'], { kind: 'unknown', id: 'vm:lst:a', argv: [] }],
    // a command without arguments does not take a word: oclif reports `vm list extra`
    [['vm', 'list', 'extra'], { kind: 'unknown', id: 'vm:list:extra', argv: [] }],
    [['frob', '--x'], { kind: 'unknown', id: 'frob', argv: ['--x'] }],
  ])('%j', (words, expected) => {
    expect(resolveCommand(table, words)).toEqual(expected)
  })
})
