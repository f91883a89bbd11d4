// Clients racing on one VM name (issue 13 item 19): hsmd serializes the operations on a
// name, so each client gets the truthful answer: a create succeeds or finds the name
// taken, a destroy succeeds or finds no VM, never an HSM refusal (EBADF from an fd
// another call closed, EINVAL from a name the hypervisor still holds) and never "no VM
// named" from a create that succeeded.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, type DaemonClient } from '../../../src/core/daemon/client.js'
import { socketPath } from '../../../src/core/daemon/paths.js'
import { startVmmDaemon, type VmmDaemon } from '../../../src/core/daemon/vmm-daemon.js'
import { ConflictError, NotFoundError } from '../../../src/core/errors.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-races-'))
const env = { HSMCTL_RUNTIME_DIR: join(dir, 'run'), HSMCTL_STATE_DIR: join(dir, 'state') }
let daemon: VmmDaemon
let clients: DaemonClient[]

const CLIENTS = 10
const ROUNDS = 15

beforeAll(async () => {
  daemon = await startVmmDaemon({ backend: 'sim', env })
  clients = await Promise.all(
    Array.from({ length: CLIENTS }, () => connect(socketPath('sim', env))),
  )
})

afterAll(async () => {
  for (const c of clients) c.close()
  await daemon.stop()
  rmSync(dir, { recursive: true, force: true })
})

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown }

const attempt = (p: Promise<unknown>): Promise<Outcome> =>
  p.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error }),
  )

describe('ten clients on one VM name', () => {
  it('create, show, memory and destroy: every answer is one the VM’s state allows', async () => {
    const name = 'race'
    const creates: Outcome[] = []
    const destroys: Outcome[] = []
    const others: Outcome[] = []
    await Promise.all(
      clients.map(async (client, i) => {
        for (let round = 0; round < ROUNDS; round++) {
          // all at once from every client: a create with RAM, a show, a start or pause, a destroy
          const [created, shown, started, destroyed] = await Promise.all([
            attempt(client.call('vm.create', { name, vcpus: 1, memory: '0x100000' })),
            attempt(client.call('vm.show', { name })),
            attempt(client.call(i % 2 ? 'vm.start' : 'vm.pause', { name })),
            attempt(client.call('vm.destroy', { name })),
          ])
          creates.push(created!)
          others.push(shown!, started!)
          destroys.push(destroyed!)
        }
      }),
    )
    for (const c of creates) {
      if (c.ok)
        expect(c.value).toMatchObject({ name, state: 'created', owner: 'hsmd', memory: '0x100000' })
      else {
        expect(c.error).toBeInstanceOf(ConflictError)
        expect((c.error as Error).message).toBe(`a VM named '${name}' already exists`)
      }
    }
    for (const d of destroys) {
      if (d.ok) expect(d.value).toMatchObject({ name })
      else {
        expect(d.error).toBeInstanceOf(NotFoundError)
        expect((d.error as Error).message).toBe(`no VM named '${name}'`)
      }
    }
    for (const o of others) {
      // a VM that is there answers; one that is not is "not found"; a start of a VM that
      // was paused is the hypervisor's EPERM, a true refusal
      if (!o.ok && !(o.error instanceof NotFoundError))
        expect((o.error as Error).message).toMatch(/^(START|PAUSE)_VM failed: EPERM/)
    }
    const created = creates.filter((c) => c.ok).length
    const destroyed = destroys.filter((d) => d.ok).length
    const left = (await clients[0]!.call<{ name: string }[]>('vm.list')).filter(
      (v) => v.name === name,
    ).length
    expect(created).toBeGreaterThan(0)
    expect(created - destroyed).toBe(left)
  })
})
