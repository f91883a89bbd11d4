import { Args, Flags } from '@oclif/core'
import { DaemonCommand } from '../../cli/daemon-command.js'
import type { VmDetails, VmSummary } from '../../core/vmm/manager.js'
import type { Wire } from '../../core/daemon/protocol.js'
import type { VmJson } from '../../ui/vm.js'

/** One line of `vm apply --all`. */
interface Recreated {
  name: string
  ok: boolean
  state?: string
  error?: string
}

export default class VmApply extends DaemonCommand {
  static override summary =
    'Create a whole VM from a spec file (as `vm dump` prints it), or recreate a journaled one.'

  static override description = `The spec names the VM and lists its vCPUs, flags, memory segments (with payload
files, relative to the spec), registers, pass-through devices, ioeventfds, irqfds and the
state to leave it in. If any step fails, the VM is destroyed again: nothing is half-made.
\`-f -\` reads the spec on stdin (payload paths are then relative to the current directory).

With NAME instead of a file, the VM is recreated from its journal: a VM an earlier daemon
held, as \`vm list\` shows it (journaled, or incomplete when hsmd stopped while applying its
spec). \`--all\` recreates every journaled VM, one line each; it goes on past one that fails
and exits with the first failure's code.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> -f demo.yaml',
    '<%= config.bin %> vm dump demo | <%= config.bin %> <%= command.id %> -f -',
    '<%= config.bin %> <%= command.id %> demo',
    '<%= config.bin %> <%= command.id %> --all',
  ]

  static override args = {
    name: Args.string({
      name: 'NAME',
      description: 'A journaled VM to recreate from its journal.',
      required: false,
      // oclif would otherwise take piped stdin as NAME: stdin is `-f -`'s spec
      ignoreStdin: true,
    }),
  }

  static override flags = {
    file: Flags.string({
      char: 'f',
      description: 'The spec file; - reads it on stdin.',
      helpValue: 'FILE',
    }),
    all: Flags.boolean({ description: 'Recreate every journaled VM.' }),
  }

  async run(): Promise<VmJson | Recreated[]> {
    const { args, flags } = await this.parse(VmApply)
    const given = [args.name !== undefined, flags.file !== undefined, flags.all].filter(Boolean)
    if (given.length !== 1) {
      const { UsageError } = await import('../../core/errors.js')
      throw new UsageError(
        given.length === 0
          ? 'nothing to apply: give NAME, --file or --all'
          : 'give NAME, --file or --all, only one of them',
        {
          hint: '`vm apply -f demo.yaml` creates a VM from a spec, `vm apply demo` recreates a journaled one',
        },
      )
    }
    if (flags.all) return this.applyAll()
    const vm =
      args.name !== undefined
        ? await this.call<Wire<VmDetails>>('vm.apply', { name: args.name })
        : await this.applyFile(flags.file!)
    const { renderVm, vmJson } = await import('../../ui/vm.js')
    this.log(renderVm(vm))
    return vmJson(vm)
  }

  private async applyFile(file: string): Promise<Wire<VmDetails>> {
    const { dirname, resolve } = await import('node:path')
    const { parseSpec, specToObject } = await import('../../core/vmm/spec.js')
    const { readUserFile } = await import('../../core/user-file.js')
    const { MAX_LINE } = await import('../../core/daemon/protocol.js')
    const stdin = file === '-'
    const sizeHint =
      'hsmd takes requests of at most 1 MiB, and a VM’s spec is a few kilobytes (see `hsmctl vm dump NAME`)'
    // bounded before it is parsed: a spec larger than hsmd's request limit cannot be sent
    const text = stdin
      ? await readStdin(MAX_LINE, sizeHint)
      : readUserFile(file, {
          flag: '--file',
          what: 'spec file',
          maxBytes: MAX_LINE,
          sizeHint,
        }).toString('utf8')
    const source = stdin ? 'stdin' : file
    const spec = parseSpec(text, source)
    // payload paths are relative to the spec (to the current directory for stdin); the
    // daemon gets absolute ones
    const base = stdin ? process.cwd() : dirname(file)
    for (const m of spec.memory) {
      if (m.file === undefined) continue
      await this.localFileForDaemon('--file', m.file)
      m.file = resolve(base, m.file)
    }
    return this.call<Wire<VmDetails>>('vm.apply', { spec: specToObject(spec), source })
  }

  private async applyAll(): Promise<Recreated[]> {
    const list = await this.call<Wire<VmSummary>[]>('vm.list')
    const journaled = list.filter((v) => v.owner === 'journal')
    if (journaled.length === 0) {
      this.log('no journaled VMs to recreate')
      return []
    }
    const results: Recreated[] = []
    let first: (Error & { exitCode?: number }) | undefined
    for (const { name } of journaled) {
      try {
        const vm = await this.call<Wire<VmDetails>>('vm.apply', { name })
        results.push({ name, ok: true, state: vm.state })
        this.log(`recreated ${name} (${vm.state})`)
      } catch (e) {
        first ??= e as Error
        results.push({ name, ok: false, error: (e as Error).message })
        if (!this.jsonEnabled()) process.stderr.write(`hsmctl: ${name}: ${(e as Error).message}\n`)
      }
    }
    if (first) {
      if (this.jsonEnabled()) this.logJson(results)
      const failed = results.filter((r) => !r.ok).map((r) => r.name)
      const { PartialFailureError } = await import('../../core/errors.js')
      throw new PartialFailureError(
        first,
        `could not recreate ${failed.length} of ${results.length} journaled VMs: ${failed.join(', ')}`,
        'see why above; `hsmctl vm list` shows what is journaled',
      )
    }
    return results
  }
}

/** The spec on stdin (`-f -`), read no further than `max` bytes and one more. */
async function readStdin(max: number, hint: string): Promise<string> {
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    total += chunk.byteLength
    if (total > max) {
      const { UsageError } = await import('../../core/errors.js')
      throw new UsageError(
        `stdin holds more than ${max} bytes; a spec file is at most ${max} (${max >> 20} MiB)`,
        { flag: '--file', hint },
      )
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, total).toString('utf8')
}
