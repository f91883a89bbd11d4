// ACRN's device model under the tap (issue 12 item 3): acrn-dm, unmodified, run by
// `hsmctl trace exec` on the simulation (the tap stacked on the shim), with an ELF guest of
// ours that KVM executes. What the tap reports equals what the simulation saw: the same
// decoded ioctls, and the same I/O requests acrn-dm's client completed, with the values it
// answered; requests the HSM completes itself (0xCF8, §4.6) the tap never sees. The VM
// shows under the name acrn-dm gave it, in `ioreq watch --source tap` and `ioctl log`.

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { connect } from '../../src/core/daemon/client.js'
import { socketPath } from '../../src/core/daemon/paths.js'
import type { Wire } from '../../src/core/daemon/protocol.js'
import type { ReadReply } from '../../src/core/trace/methods.js'
import { records } from '../../src/core/trace/record.js'
import {
  acrnDmMachineCannot,
  acrnDmSession,
  startAcrnDm,
  type RunningAcrnDm,
} from '../support/acrn-dm.js'
import { assembleElf32 } from '../support/assemble.js'
import { guestCodeUnavailable } from '../support/guests.js'
import { hsmctl } from '../support/cli.js'
import type { Json } from '../support/hsmd-session.js'

const why = acrnDmMachineCannot ?? guestCodeUnavailable("acrn-dm's ELF guest under the tap")
if (acrnDmMachineCannot) console.warn(`skipping acrn-dm under the tap: ${acrnDmMachineCannot}`)

const NAME = 'dmtap'

/**
 * Reads the hostbridge's IDs (0xCF8 is the HSM's, 0xCFC becomes a PCICFG request for
 * acrn-dm, §4.6), then writes "T\n" to acrn-dm's COM1, three times.
 */
const GUEST = `
_start:
	mov $0x10000, %esp
	mov $3, %ecx
1:	mov $0x80000000, %eax
	mov $0xcf8, %dx
	out %eax, (%dx)
	mov $0xcfc, %dx
	in (%dx), %eax
	mov $0x3f8, %dx
	mov $'T', %al
	out %al, (%dx)
	mov $'\\n', %al
	out %al, (%dx)
	loop 1b
2:	hlt
	jmp 2b
`

describe.skipIf(why !== undefined)(
  `acrn-dm under the tap${why ? ` (skipped: ${why})` : ''}`,
  () => {
    const session = acrnDmSession(
      'tap-acrn-dm',
      (dir) => writeFileSync(join(dir, 'guest.elf'), assembleElf32(GUEST)),
      { HSMCTL_BACKEND: 'sim' },
    )
    const { dir, env } = session
    const json = (...args: string[]): Json => {
      const r = hsmctl([...args, '--json'], env)
      expect(r.code, `hsmctl ${args.join(' ')}: ${r.stderr}`).toBe(0)
      return JSON.parse(r.stdout)
    }
    /** Every request of one source, decoded from the daemon's records. */
    async function requests(source: 'hsmd' | 'tap') {
      const client = await connect(socketPath('sim', env))
      try {
        const reply = await client.call<Wire<ReadReply>>('trace.read', { cursor: 0, source })
        return [...records(new Uint8Array(Buffer.from(reply.records, 'base64')))].map((e) => ({
          vmid: e.vmid,
          vcpu: e.vcpu,
          type: e.type,
          dir: e.dir,
          addr: e.addr,
          size: e.size,
          value: e.value,
          client: e.client,
        }))
      } finally {
        client.close()
      }
    }

    it("reports acrn-dm's ioctls and requests as the simulation saw them", async (ctx) => {
      if (session.unavailable()) ctx.skip(session.unavailable())
      const args = ['-m', '128M', '--cpu_affinity', '1', '-s', '0:0,hostbridge', '-s', '1:0,lpc']
      const dm: RunningAcrnDm = startAcrnDm(
        session.path(),
        [...args, '-l', 'com1,stdio', '-E', 'guest.elf', NAME],
        { cwd: dir, env, via: ['trace', 'exec'] },
      )
      try {
        await dm.until('three Ts from the guest', () => /T\r?\nT\r?\nT\r?\n/.test(dm.output()))
        const [vm] = json('vm', 'list')
        expect(vm).toMatchObject({ name: NAME, state: 'running' })
        const pid = Number(/^pid (\d+) \(acrn-dm\)$/.exec(vm.holder)![1])
        // the tap's batches: wait until it reported the nine requests acrn-dm completed
        let byTap: Json[] = []
        await dm.until('the tap to report nine requests', () => {
          byTap = json('ioreq', 'watch', NAME, '--source', 'tap', '--once', '--interval', '0.1')
            .samples[0].rows
          return byTap.reduce((n: number, r: Json) => n + r.count, 0) >= 9
        })
        const rows = (list: Json[]) =>
          list.map((r: Json) => `${r.key} ${r.client} ${r.count}`).sort()
        const bySim = json('ioreq', 'watch', NAME, '--once', '--interval', '0.1').samples[0].rows
        // the HSM completes 0xCF8 itself (§4.6): the simulation saw it, acrn-dm never did
        expect(rows(bySim)).toEqual([
          'PCICFG 00:00.0+0x0 R default 3',
          'PIO 0x3f8 OUT default 6',
          'PIO 0xcf8 OUT kernel 3',
        ])
        expect(rows(byTap)).toEqual(rows(bySim.filter((r: Json) => r.client === 'default')))
        // request by request: the same vCPU, address, size and the value acrn-dm answered
        const sim = (await requests('hsmd')).filter((r) => r.client === 'default')
        const tap = await requests('tap')
        expect(tap).toEqual(sim)
        expect(tap.find((r) => r.type === 'pcicfg')?.value).toBe(0x1275_1275n) // hostbridge.c
        // its ioctls, decoded, as the tap saw them and as the simulation was asked
        const byTapCalls: Json[] = json('ioctl', 'log', NAME)
        const bySimCalls: Json[] = json('ioctl', 'log', NAME, '--source', 'sim')
        const same = (calls: Json[]) =>
          calls
            .map((c: Json) =>
              JSON.stringify([c.name, c.arg, c.out, c.unreadable, c.result, c.errno]),
            )
            .sort()
        expect(byTapCalls.every((c: Json) => c.source === 'tap' && c.pid === pid)).toBe(true)
        expect(same(byTapCalls)).toEqual(same(bySimCalls))
        const create = byTapCalls.find((c: Json) => c.name === 'CREATE_VM')
        expect(create).toMatchObject({ arg: { uuid: `"${NAME}"` }, out: { vmid: vm.vmid } })
        expect(byTapCalls.map((c: Json) => c.name)).toEqual(
          expect.arrayContaining(['SET_MEMSEG', 'PM_GET_CPU_STATE', 'START_VM']),
        )
        expect(json('trace', 'list').sessions).toEqual([
          expect.objectContaining({
            pid,
            program: 'acrn-dm',
            dropped: 0,
            vms: [{ vmid: vm.vmid, name: NAME }],
          }),
        ])
        dm.child.kill('SIGINT')
        expect(await dm.exited, dm.output()).toBe(0)
      } finally {
        if (dm.child.exitCode === null) {
          // acrn-dm itself too: hsmctl passes SIGKILL's effect on to nobody
          const held = (json('vm', 'list') as Json[]).find((v) => v.name === NAME)?.holder
          const pid = /^pid (\d+)/.exec(held ?? '')?.[1]
          if (pid) process.kill(Number(pid), 'SIGKILL')
          dm.child.kill('SIGKILL')
        }
      }
    }, 300_000)
  },
)
