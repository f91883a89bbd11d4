// Tab completion for the shell: command words, the flags of the command on the line, and
// live values (VM names, vmids, host BDFs, eventfd ids, files) from a ValueSource, so
// that tests give it fakes and the shell gives it the daemon.

import { CommandTable, type CommandInfo, type FlagInfo } from './table.js'
import { quoteWord, scan } from './tokenize.js'

export type EventfdKind = 'ioeventfd' | 'irqfd'

export interface ValueSource {
  vmNames(): Promise<string[]>
  vmids(): Promise<string[]>
  /** Host PCI functions as bb:dd.f. */
  hostBdfs(): Promise<string[]>
  /** Ids of a VM's ioeventfds or irqfds (both when kind is undefined). */
  eventfdIds(vm: string, kind: EventfdKind | undefined): Promise<string[]>
  /** Struct and ioctl names for `abi`. */
  abiNames(): Promise<string[]>
  /** Paths starting with `partial` (directories end in '/'). */
  files(partial: string): Promise<string[]>
}

type ValueKind = 'vm' | 'vmid' | 'bdf' | 'eventfd' | 'file' | 'abi'

/** Words the shell itself understands, offered with the commands. */
export const BUILTINS = ['exit', 'help', 'quit'] as const

/** Which live values an argument takes, by command and argument name. */
function argKind(cmd: CommandInfo, arg: string | undefined): ValueKind | undefined {
  if (cmd.id === 'abi') return 'abi'
  if (arg === 'name' || arg === 'names' || arg === 'vm') return 'vm'
  if (arg === 'file' || arg === 'path') return 'file'
  return undefined
}

/** Which live values a flag takes, by flag name (the same names across commands). */
function flagKind(flag: string): ValueKind | undefined {
  switch (flag) {
    case 'vm':
    case 'name':
      return 'vm'
    case 'vmid':
      return 'vmid'
    case 'phys':
    case 'virt':
      return 'bdf'
    case 'id':
      return 'eventfd'
    case 'file':
    case 'output':
    case 'input':
      return 'file'
    default:
      return undefined
  }
}

/** What the words after the command id say so far. */
interface LineState {
  positionals: string[]
  flagValues: Map<string, string>
  used: Set<string>
  /** The last word is a flag waiting for its value. */
  awaiting: FlagInfo | undefined
}

function readFlags(cmd: CommandInfo, words: readonly string[]): LineState {
  const state: LineState = {
    positionals: [],
    flagValues: new Map(),
    used: new Set(),
    awaiting: undefined,
  }
  let flagsDone = false
  for (const word of words) {
    if (state.awaiting) {
      state.flagValues.set(state.awaiting.name, word)
      state.awaiting = undefined
      continue
    }
    if (flagsDone || word === '-' || !word.startsWith('-') || /^-\d/.test(word)) {
      state.positionals.push(word)
      continue
    }
    if (word === '--') {
      flagsDone = true
      continue
    }
    let flag: FlagInfo | undefined
    let inlineValue: string | undefined
    if (word.startsWith('--')) {
      const eq = word.indexOf('=')
      const name = eq < 0 ? word.slice(2) : word.slice(2, eq)
      if (eq >= 0) inlineValue = word.slice(eq + 1)
      flag = cmd.flags.find((f) => f.name === name)
    } else {
      flag = cmd.flags.find((f) => f.char === word[1])
      if (word.length > 2) inlineValue = word.slice(2)
    }
    if (!flag) continue
    state.used.add(flag.name)
    if (!flag.takesValue) continue
    if (inlineValue !== undefined) state.flagValues.set(flag.name, inlineValue)
    else state.awaiting = flag
  }
  return state
}

export class Completer {
  constructor(
    private readonly table: CommandTable,
    private readonly values: ValueSource,
  ) {}

  /** readline's completer contract: the candidates, and the text they replace. */
  async complete(line: string): Promise<[string[], string]> {
    const s = scan(line)
    if (s.inComment) return [[], '']
    const words = s.segments[s.segments.length - 1]!.words.map((w) => w.value)
    const current = s.current ?? { value: '', start: line.length, quote: undefined }
    const replaced = line.slice(current.start)
    const found = await this.candidates(words, current.value)
    const hits = [...new Set(found.filter((c) => c.startsWith(current.value)))]
    return [hits.map((h) => this.format(h, current.quote, hits.length === 1)), replaced]
  }

  /** A candidate as it goes on the line: quoted if needed, a blank after a unique word. */
  private format(hit: string, quote: "'" | '"' | undefined, unique: boolean): string {
    const open = hit.endsWith('/') || hit.endsWith('=')
    let text: string
    if (quote === '"') text = `"${hit.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}`
    else if (quote === "'") text = `'${hit.replaceAll("'", `'\\''`)}`
    else text = open ? hit.replaceAll(/([\s'"\\;#])/g, '\\$1') : quoteWord(hit)
    if (quote && !open && unique) text += quote
    return unique && !open ? `${text} ` : text
  }

  private async candidates(words: string[], partial: string): Promise<string[]> {
    if (words[0] === 'help') return this.table.nextWords(this.commandWords(words.slice(1)))
    const idWords = this.commandWords(words)
    const rest = words.slice(idWords.length)
    const out: string[] = []
    if (rest.length === 0) {
      out.push(...this.table.nextWords(idWords))
      if (idWords.length === 0) out.push(...BUILTINS)
      out.sort()
    }
    const cmd = this.table.find(idWords.join(':'))
    if (cmd) out.push(...(await this.argumentCandidates(cmd, rest, partial)))
    return out
  }

  /** The leading words that form (a prefix of) a command id. */
  private commandWords(words: readonly string[]): string[] {
    const id: string[] = []
    for (const w of words) {
      if (!this.table.isPrefix([...id, w].join(':'))) break
      id.push(w)
    }
    return id
  }

  private async argumentCandidates(
    cmd: CommandInfo,
    rest: readonly string[],
    partial: string,
  ): Promise<string[]> {
    const state = readFlags(cmd, rest)
    if (state.awaiting) return this.flagValues(cmd, state.awaiting, state, '', partial)
    if (partial.startsWith('--') && partial.includes('=')) {
      const name = partial.slice(2, partial.indexOf('='))
      const flag = cmd.flags.find((f) => f.name === name && f.takesValue)
      return flag
        ? this.flagValues(cmd, flag, state, `--${name}=`, partial.slice(name.length + 3))
        : []
    }
    if (partial.startsWith('-')) {
      const flags = cmd.flags
        .filter((f) => f.multiple || !state.used.has(f.name))
        .map((f) => `--${f.name}`)
      return [...flags, '--help'].sort()
    }
    const index = state.positionals.length
    const arg = cmd.args[index] ?? (cmd.variadic ? cmd.args[cmd.args.length - 1] : undefined)
    if (arg === undefined) return []
    return this.live(argKind(cmd, arg), cmd, state, partial)
  }

  private async flagValues(
    cmd: CommandInfo,
    flag: FlagInfo,
    state: LineState,
    prefix: string,
    partial: string,
  ): Promise<string[]> {
    const values = flag.options
      ? [...flag.options]
      : await this.live(flagKind(flag.name), cmd, state, partial)
    return values.map((v) => prefix + v)
  }

  /** Live values never fail a completion: a daemon that is down just offers nothing. */
  private async live(
    kind: ValueKind | undefined,
    cmd: CommandInfo,
    state: LineState,
    partial: string,
  ): Promise<string[]> {
    try {
      switch (kind) {
        case 'vm':
          return await this.values.vmNames()
        case 'vmid':
          return await this.values.vmids()
        case 'bdf':
          return await this.values.hostBdfs()
        case 'abi':
          return await this.values.abiNames()
        case 'file':
          return await this.values.files(partial)
        case 'eventfd': {
          const vm = state.flagValues.get('vm') ?? state.positionals[0]
          if (vm === undefined) return []
          const topic = cmd.id.split(':')[0]
          const eventfd = topic === 'ioeventfd' || topic === 'irqfd' ? topic : undefined
          return await this.values.eventfdIds(vm, eventfd)
        }
        default:
          return []
      }
    } catch {
      return []
    }
  }
}
