// The daemon's VM methods: each checks its params (a socket message is user input like
// any other) and makes one VmManager call. 64-bit values arrive as hex strings.

import { MAX_VCPUS_PER_VM } from '../abi/constants.js'
import { UsageError } from '../errors.js'
import type { Handler } from '../daemon/server.js'
import { parseInteger } from '../parse/number.js'
import type { GsiOpName, ReadPayload, VmManager } from './manager.js'
import { NameLock } from './name-lock.js'
import {
  REGS_PRESETS,
  specFromObject,
  specToObject,
  type MemsegSpec,
  type RegsSpec,
} from './spec.js'

/**
 * How a user typed a param: NAME for `name`, else the flag of the same name in kebab
 * case (`cpuAffinity` is --cpu-affinity), unless `names` says otherwise (`--msi` for
 * irq.msi's addr and data).
 */
export function cliName(key: string, names: Readonly<Record<string, string>> = {}): string {
  return (
    names[key] ??
    (key === 'name' ? 'NAME' : `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`)
  )
}

/**
 * Reads typed values out of a request's params. Every error names what the user typed
 * (NAME, --flag), never the RPC param behind it: the CLI shows it as it is.
 */
export class Params {
  private readonly raw: Record<string, unknown>

  constructor(
    params: unknown,
    private readonly names: Readonly<Record<string, string>> = {},
  ) {
    if (typeof params !== 'object' || params === null || Array.isArray(params)) {
      throw new UsageError('params must be an object')
    }
    this.raw = params as Record<string, unknown>
  }

  private fail(key: string, message: string): never {
    throw new UsageError(message, { flag: cliName(key, this.names) })
  }

  /** The flag `key` is, for errors raised outside these readers. */
  flagOf(key: string): string {
    return cliName(key, this.names)
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null
  }

  str(key: string): string {
    const v = this.raw[key]
    if (typeof v !== 'string' || v === '') this.fail(key, 'expected a non-empty string')
    return v
  }

  /** A string, empty or not: for a value whose own check says what is wrong with it. */
  anyStr(key: string): string {
    const v = this.raw[key]
    if (typeof v !== 'string') this.fail(key, 'expected a string')
    return v
  }

  optStr(key: string): string | undefined {
    return this.has(key) ? this.str(key) : undefined
  }

  /** An integer given as a JSON number or a string (hex for 64-bit values). */
  big(key: string, min = 0n, max = (1n << 64n) - 1n, decimal = false): bigint {
    const v = this.raw[key]
    if (typeof v !== 'string' && !(typeof v === 'number' && Number.isSafeInteger(v)))
      this.fail(key, 'expected an integer or a hex string')
    try {
      return parseInteger(String(v), { name: this.flagOf(key), min, max, decimal })
    } catch (e) {
      if (e instanceof UsageError) throw e
      this.fail(key, (e as Error).message)
    }
  }

  optBig(key: string, min?: bigint, max?: bigint): bigint | undefined {
    return this.has(key) ? this.big(key, min, max) : undefined
  }

  /** A count or a small number: its range is said in decimal. */
  int(key: string, min = 0, max = 0xffff_ffff): number {
    return Number(this.big(key, BigInt(min), BigInt(max), true))
  }

  optInt(key: string, min?: number, max?: number): number | undefined {
    return this.has(key) ? this.int(key, min, max) : undefined
  }

  bool(key: string): boolean {
    const v = this.raw[key]
    if (v === undefined || v === null) return false
    if (typeof v !== 'boolean') this.fail(key, 'expected true or false')
    return v
  }

  oneOf<T extends string>(key: string, values: readonly T[], fallback?: T): T {
    const v = this.raw[key] ?? fallback
    if (typeof v !== 'string' || !values.includes(v as T))
      this.fail(key, `expected one of ${values.join(', ')}`)
    return v as T
  }

  value(key: string): unknown {
    return this.raw[key]
  }

  bytes(key: string): Uint8Array | undefined {
    if (!this.has(key)) return undefined
    const v = this.raw[key]
    if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v))
      this.fail(key, 'expected base64 data')
    return new Uint8Array(Buffer.from(v, 'base64'))
  }
}

const name = (p: Params) => p.str('name')

function memseg(p: Params): MemsegSpec {
  const type = p.oneOf('type', ['ram', 'mmio'] as const, 'ram')
  return {
    gpa: p.big('gpa'),
    size: p.big('size'),
    type,
    access: p.optInt('access', 0, 7) ?? 7,
    ...(p.has('hpa') ? { hpa: p.big('hpa') } : {}),
    ...(p.has('file') ? { file: p.str('file') } : {}),
  }
}

function regs(p: Params): RegsSpec {
  const out: RegsSpec = {
    vcpu: p.int('vcpu', 0, 15),
    preset: p.oneOf('preset', REGS_PRESETS, 'real-mode'),
  }
  for (const reg of ['rip', 'rsp', 'cr0', 'cr3', 'cr4'] as const) {
    const v = p.optBig(reg)
    if (v !== undefined) out[reg] = v
  }
  return out
}

/** The VM name a request is about (`name`, or a spec's), to serialize on; none for others. */
function vmNameOf(params: unknown): string | undefined {
  if (typeof params !== 'object' || params === null) return undefined
  const { name, spec } = params as { name?: unknown; spec?: unknown }
  if (typeof name === 'string') return name
  const specName = (spec as { name?: unknown } | null | undefined)?.name
  return typeof spec === 'object' && typeof specName === 'string' ? specName : undefined
}

export function vmmMethods(m: VmManager, readPayload: ReadPayload): Record<string, Handler> {
  // one operation at a time per VM name, whichever client asks (issue 13 item 19)
  const lock = new NameLock()
  // `names`: the CLI's flags for params it spells otherwise (cliName)
  const with_ =
    (fn: (p: Params) => unknown, names?: Record<string, string>): Handler =>
    (params) => {
      const vmName = vmNameOf(params)
      return vmName === undefined
        ? fn(new Params(params, names))
        : lock.run(vmName, () => fn(new Params(params, names)))
    }
  // not serialized: it waits for the guest's request to complete, which may take as long
  // as the program serving it likes, and a destroy must still get through
  const unlocked =
    (fn: (p: Params) => unknown, names?: Record<string, string>): Handler =>
    (params) =>
      fn(new Params(params, names))
  return {
    'vm.create': with_(
      (p) =>
        m.create({
          // any string: checkVmName says what is wrong with it
          name: p.anyStr('name'),
          ...(p.has('vcpus') ? { vcpus: p.int('vcpus', 1, MAX_VCPUS_PER_VM) } : {}),
          ...(p.has('cpuAffinity') ? { cpuAffinity: p.big('cpuAffinity', 1n) } : {}),
          ...(p.has('flags') ? { flags: p.big('flags') } : {}),
          ...(p.has('memory') ? { memory: p.big('memory') } : {}),
          ...(p.has('memory') && p.has('file')
            ? {
                payload: readPayload(p.str('file'), {
                  flag: '--payload',
                  maxBytes: p.big('memory'),
                }),
              }
            : {}),
        }),
      { flags: '--flag', file: '--payload' },
    ),
    'vm.list': () => m.list(),
    'vm.show': with_((p) => m.show(name(p))),
    'vm.hypervisor': with_((p) => m.hypervisorView(name(p))),
    // a VM only journaled is recreated from its journal, then left running
    'vm.start': with_(async (p) =>
      m.journaledOnly(name(p))
        ? { ...(await m.recreate(name(p), readPayload, { state: 'running' })), recreated: true }
        : m.start(name(p)),
    ),
    'vm.pause': with_((p) => m.pause(name(p))),
    'vm.reset': with_((p) => m.reset(name(p))),
    'vm.destroy': with_((p) => m.destroy(name(p), { rollback: p.bool('rollback') })),
    'vm.forget': with_((p) => m.forget(name(p))),
    'vm.regs': with_((p) => m.setRegs(name(p), regs(p))),
    'vm.dump': with_((p) => specToObject(m.spec(name(p)))),
    // a spec, or the name of a journaled VM to recreate
    'vm.apply': with_((p) => {
      if (!p.has('spec')) return m.recreate(name(p), readPayload)
      const source = p.optStr('source') ?? 'spec'
      // a payload's errors name the spec file and the entry, as the spec's own do
      return m.apply(specFromObject(p.value('spec'), source), (file, options) =>
        readPayload(file, { ...options, flag: `${source}: ${options.flag}` }),
      )
    }),
    'vm.autostart': with_((p) => m.setAutostart(name(p), !p.bool('disable'))),
    'vm.console': with_((p) => m.console(name(p), p.optInt('offset') ?? 0)),
    'memseg.set': with_((p) => {
      const seg = memseg(p)
      return m.memsegSet(
        name(p),
        seg,
        seg.file !== undefined
          ? readPayload(seg.file, { flag: '--file', maxBytes: seg.size })
          : undefined,
        p.has('flag') ? { flag: p.str('flag') } : {},
      )
    }),
    'memseg.unset': with_((p) =>
      m.memsegUnset(name(p), {
        gpa: p.big('gpa'),
        size: p.big('size'),
        type: p.oneOf('type', ['ram', 'mmio'] as const, 'mmio'),
      }),
    ),
    'memseg.list': with_((p) => m.memsegList(name(p))),
    'ptdev.assign': with_((p) => {
      const phys = p.int('phys', 0, 0xffff)
      return m.ptdevAssign(name(p), {
        phys,
        virt: p.optInt('virt', 0, 0xffff) ?? phys,
        quirk: p.bool('quirk'),
      })
    }),
    'ptdev.deassign': with_((p) => m.ptdevDeassign(name(p), p.int('phys', 0, 0xffff))),
    'ptdev.intr': with_(
      (p) =>
        m.ptdevIntr(name(p), p.oneOf('op', ['set', 'reset'] as const) === 'set', {
          type: p.oneOf('type', ['intx', 'msi', 'msix'] as const),
          phys: p.int('phys', 0, 0xffff),
          ...(p.has('virt') ? { virt: p.int('virt', 0, 0xffff) } : {}),
          ...(p.has('virtPin') ? { virtPin: p.int('virtPin') } : {}),
          ...(p.has('physPin') ? { physPin: p.int('physPin') } : {}),
          picPin: p.bool('picPin'),
        }),
      { picPin: '--pic' },
    ),
    'ptdev.list': with_((p) => m.ptdevList(p.optStr('name'))),
    'mmiodev.assign': with_((p) => m.mmiodev(name(p), true, mmiodev(p))),
    'mmiodev.deassign': with_((p) => m.mmiodev(name(p), false, mmiodev(p))),
    'vdev.create': with_((p) => m.vdev(name(p), true, vdev(p)), VDEV_NAMES),
    'vdev.destroy': with_((p) => m.vdev(name(p), false, vdev(p)), VDEV_NAMES),
    'host.devices': () => m.platform.inventory(),
    'ioeventfd.add': with_((p) =>
      m.ioeventfdAdd(name(p), {
        addr: p.big('addr'),
        len: p.int('len', 0, 0xffff_ffff),
        pio: p.bool('pio'),
        ...(p.has('datamatch') ? { datamatch: p.big('datamatch') } : {}),
      }),
    ),
    'ioeventfd.remove': with_((p) => m.ioeventfdRemove(name(p), p.int('id'))),
    'ioeventfd.list': with_((p) => m.ioeventfdList(name(p))),
    'irqfd.add': with_((p) =>
      m.irqfdAdd(name(p), {
        msiAddr: p.big('msiAddr'),
        msiData: p.big('msiData', 0n, 0xffff_ffffn),
      }),
    ),
    'irqfd.remove': with_((p) => m.irqfdRemove(name(p), p.int('id'))),
    'irqfd.signal': with_((p) =>
      m.irqfdSignal(name(p), p.int('id'), p.optInt('count', 1, 1_000_000) ?? 1),
    ),
    'irqfd.list': with_((p) => m.irqfdList(name(p))),
    'irq.msi': with_(
      (p) => m.injectMsi(name(p), { addr: p.big('addr'), data: p.big('data', 0n, 0xffff_ffffn) }),
      { addr: '--msi', data: '--msi' },
    ),
    'irq.gsi': with_((p) =>
      m.setIrqline(
        name(p),
        p.int('gsi'),
        p.oneOf('op', ['assert', 'deassert', 'pulse-high', 'pulse-low'] as const) as GsiOpName,
      ),
    ),
    'irq.monitor': with_((p) => m.intrMonitor(name(p), p.optInt('delayMs')), {
      delayMs: '--delay',
    }),
    'ioreq.clear': with_((p) => m.ioreqClear(name(p))),
    'ioreq.clients': with_((p) => m.ioreqClients(name(p))),
    'pm.get': with_((p) =>
      m.pm(
        name(p),
        p.oneOf('kind', ['px', 'cx'] as const),
        p.int('vcpu', 0, 255),
        p.optInt('index', 0, 255),
      ),
    ),
    'guest.access': unlocked(
      (p) =>
        m.guestAccess(name(p), {
          vcpu: p.int('vcpu', 0, 15),
          type: p.oneOf('type', ['pio', 'mmio'] as const),
          dir: p.oneOf('dir', ['read', 'write'] as const),
          addr: p.big('addr'),
          size: p.int('size', 1, 8),
          value: p.optBig('value') ?? 0n,
        }),
      { addr: '--pio/--mmio', value: '--write', type: '--pio/--mmio', dir: '--read/--write' },
    ),
  }
}

function mmiodev(p: Params) {
  const res = p.value('res')
  if (!Array.isArray(res))
    throw new UsageError('expected a list of {gpa, hpa, size}', { flag: p.flagOf('res') })
  return {
    devName: p.str('devName'),
    res: res.map((r) => {
      const q = new Params(r, { gpa: '--res', hpa: '--res', size: '--res', memType: '--res' })
      return {
        gpa: q.big('gpa'),
        hpa: q.big('hpa'),
        size: q.big('size'),
        memType: q.optBig('memType') ?? 0n,
      }
    }),
  }
}

/** vdev.create's params the CLI spells otherwise: the io ranges are one --io flag. */
const VDEV_NAMES = { ioAddr: '--io', ioSize: '--io' }

function vdev(p: Params) {
  const list = (key: string) => {
    const v = p.value(key)
    if (v === undefined) return [] as number[]
    if (!Array.isArray(v) || v.length > 6)
      throw new UsageError('expected up to 6 numbers', { flag: p.flagOf(key) })
    return v.map((x) => new Params({ x }, { x: p.flagOf(key) }).int('x', 0, 0xffff_ffff))
  }
  const args = p.bytes('args')
  return {
    vendor: p.optInt('vendor', 0, 0xffff) ?? 0,
    device: p.optInt('device', 0, 0xffff) ?? 0,
    legacyId: p.optInt('legacyId') ?? 0,
    slot: p.optBig('slot') ?? 0n,
    ioAddr: list('ioAddr'),
    ioSize: list('ioSize'),
    ...(args ? { args } : {}),
  }
}
