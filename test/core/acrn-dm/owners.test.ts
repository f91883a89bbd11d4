// The owners behind `vm` verbs (src/core/acrn-dm/owners): which verbs each owner has and
// which it refuses, refused before anything is asked of hsmd, the user or acrn-dm. The
// verbs themselves run against the real acrn-dm and hsmd in test/commands/acrn-dm-vms,
// acrn-dm-scripts, vm and lifecycle-hints.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MonitorError } from '../../../src/core/acrn-dm/monitor.js'
import { ownerOfLocated } from '../../../src/core/acrn-dm/owners/locate.js'
import { NotFoundError } from '../../../src/core/errors.js'
import type { Verb, VerbContext, VmOwner } from '../../../src/core/acrn-dm/owners/owner.js'
import type { LocatedVm } from '../../../src/core/acrn-dm/vms.js'

let dir: string
const saved = process.env.HSMCTL_STATE_DIR
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hsmctl-owners-'))
  process.env.HSMCTL_STATE_DIR = dir
})
afterAll(() => {
  if (saved === undefined) delete process.env.HSMCTL_STATE_DIR
  else process.env.HSMCTL_STATE_DIR = saved
  rmSync(dir, { recursive: true, force: true })
})

/** A context that records what was asked and answers nothing: a verb tried gets an error. */
function strictContext() {
  const asked: string[] = []
  const ctx: VerbContext = {
    backend: 'sim',
    call: async (method) => {
      asked.push(method)
      throw new Error(`asked hsmd ${method}`)
    },
    confirm: async (question) => {
      asked.push('confirm')
      throw new Error(`asked: ${question}`)
    },
    note: () => {},
  }
  return { ctx, asked }
}

const summary = (over: object) => ({
  name: 'vm1',
  vmid: 3,
  state: 'running',
  vcpus: 1,
  memory: '0x100000',
  owner: 'hsmd',
  uptimeSeconds: null,
  ...over,
})

// a socket path with nothing behind it: a verb that reaches acrn-dm fails to connect
const instance = () => ({
  name: 'vm1',
  pid: 0x3fffffff,
  path: join(dir, 'vm1.monitor.1073741823.socket'),
  process: { pid: 0x3fffffff, argv: ['acrn-dm', 'vm1'], session: 1, uptimeSeconds: 1 },
  query: { mode: 0 },
})
const entry = () => ({ name: 'vm1', script: join(dir, 'vm1.sh'), args: [] })

const located: Record<string, () => LocatedVm> = {
  hsmd: () => ({ kind: 'hsmd', vm: summary({}) as never }),
  journal: () => ({ kind: 'hsmd', vm: summary({ owner: 'journal', vmid: null }) as never }),
  'acrn-dm': () => ({ kind: 'acrn-dm', instance: instance(), script: entry() }),
  script: () => ({ kind: 'script', entry: entry() }),
  outside: () => ({
    kind: 'outside',
    vm: summary({ owner: 'outside process', holder: 'pid 42 (vm-sample)' }) as never,
  }),
  gone: () => ({
    kind: 'gone',
    instance: {
      ...instance(),
      process: undefined,
      query: {
        error: new MonitorError('x', { kind: 'connect', code: 'ESRCH', message: 'gone' }),
      },
    },
  }),
}

const VERBS = [
  'start',
  'stop',
  'suspend',
  'resume',
  'blkrescan',
  'pause',
  'reset',
  'destroy',
  'del',
] as const satisfies readonly Verb[]

function run(owner: VmOwner, verb: (typeof VERBS)[number], ctx: VerbContext): Promise<unknown> {
  switch (verb) {
    case 'start':
      return owner.start(ctx, { timeoutSeconds: 1 })
    case 'stop':
      return owner.stop(ctx, { force: false, timeoutMs: 1000 })
    case 'suspend':
      return owner.suspend()
    case 'resume':
      return owner.resume(0)
    case 'blkrescan':
      return owner.blkrescan({ slot: 3, path: '/dev/null' })
    case 'pause':
      return owner.pause(ctx)
    case 'reset':
      return owner.reset(ctx, { force: false, timeoutSeconds: 1 })
    case 'destroy':
      return owner.destroy(ctx)
    case 'del':
      return owner.del(ctx)
  }
}

// The verbs each owner has: they are tried (reaching hsmd, the prompt or acrn-dm's socket,
// each of which fails here); every other verb is refused with the owner's own refusal.
const HAS: Record<string, readonly Verb[]> = {
  hsmd: ['start', 'pause', 'reset', 'destroy'],
  journal: ['start', 'pause', 'reset', 'destroy'],
  'acrn-dm': ['stop', 'suspend', 'resume', 'blkrescan', 'reset', 'destroy'],
  script: ['start', 'del'],
  outside: [],
  gone: [],
}

describe('each owner has its verbs and refuses the others (issue 12 item 4)', () => {
  for (const [kind, has] of Object.entries(HAS)) {
    for (const verb of VERBS) {
      const tried = has.includes(verb)
      it(`${kind} ${verb}: ${tried ? 'tried' : 'refused, nothing asked'}`, async () => {
        const owner = ownerOfLocated('vm1', located[kind]!(), {
          mngrDir: join(dir, 'mngr'),
          confDir: join(dir, 'conf'),
        })
        const { ctx, asked } = strictContext()
        const error = await run(owner, verb, ctx).then(
          () => undefined,
          (e: unknown) => e as Error,
        )
        expect(error, 'every verb fails against this context').toBeInstanceOf(Error)
        const refusal = owner.refusal(verb)
        if (tried) {
          expect(error!.message).not.toBe(refusal.message)
        } else {
          expect(error!.message).toBe(refusal.message)
          expect((error as { exitCode?: number }).exitCode).toBe(refusal.exitCode)
          expect(asked).toEqual([])
        }
      })
    }
  }
})

describe('refusals keep the documented exit codes and say what to do instead', () => {
  const paths = { mngrDir: '/run/acrn/mngr', confDir: '/usr/share/acrn/conf/add' }
  const owner = (kind: string) => ownerOfLocated('vm1', located[kind]!(), paths)

  it('a VM another process holds is a conflict (4) naming its holder and how to end it', () => {
    const e = owner('outside').refusal('stop')
    expect(e.exitCode).toBe(4)
    expect(e.message).toMatch(/held by pid 42 \(vm-sample\).*only that process can stop it/)
    expect(e.hint).toMatch(/kill -INT 42/)
  })

  it('a crashed acrn-dm’s socket is not found (3) for every verb, naming the socket', () => {
    for (const verb of [...VERBS, 'log'] as const) {
      const e = owner('gone').refusal(verb)
      expect(e).toBeInstanceOf(NotFoundError)
      expect(e.hint).toMatch(/rm .*vm1\.monitor\.1073741823\.socket/)
    }
  })

  it('vm log: a script not started here is not found (3); hsmd points at vm console', () => {
    expect(owner('script').refusal('log').exitCode).toBe(3)
    expect(owner('hsmd').refusal('log').hint).toBe(
      "hsmd keeps its VMs' serial output: hsmctl vm console vm1",
    )
    expect(owner('acrn-dm').refusal('log').exitCode).toBe(4)
  })

  it('vm add: what holds a name (a script or a crashed socket does not)', () => {
    expect(owner('hsmd').takenBy).toBe("hsmd's VM")
    expect(owner('journal').takenBy).toBe("hsmd's journaled VM")
    expect(owner('acrn-dm').takenBy).toBe(`acrn-dm pid ${0x3fffffff} runs it`)
    expect(owner('outside').takenBy).toBe("the HSM's VM 3 held by pid 42 (vm-sample)")
    expect(owner('script').takenBy).toBeUndefined()
    expect(owner('gone').takenBy).toBeUndefined()
  })
})
