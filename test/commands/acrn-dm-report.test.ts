// A recording of acrn-dm's guest reported by device (issue 11 item 6): ACRN's device model,
// unmodified, under `hsmctl sim exec`, runs an ELF guest of ours that reads the hostbridge's
// and virtio-blk's IDs and BARs through 0xCF8/0xCFC, sizes virtio-blk's MSI-X BAR (BAR1,
// memory) and reads its table through MMIO, kicks the virtio queue in the I/O BAR (BAR0),
// and writes to COM1. `ioreq record` (by the name acrn-dm gave the VM) holds it all;
// `ioreq report --by device` shows COM1, the hostbridge's config space and virtio-blk (its
// config space, BAR0's ports, BAR1's MMIO) as devices, with totals equal to the recording's
// and to what the daemon counted.

import { spawn } from 'node:child_process'
import { truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { pendingRecords, readTraceFile } from '../../src/core/trace/file.js'
import { records } from '../../src/core/trace/record.js'
import {
  acrnDmMachineCannot,
  acrnDmSession,
  startAcrnDm,
  type RunningAcrnDm,
} from '../support/acrn-dm.js'
import { assembleElf32 } from '../support/assemble.js'
import { hsmctl, hsmctlAsync, RUN_JS } from '../support/cli.js'
import { guestCodeUnavailable, PRINT_HEX } from '../support/guests.js'
import type { Json } from '../support/hsmd-session.js'

const why = acrnDmMachineCannot ?? guestCodeUnavailable("acrn-dm's guest, reported by device")
if (acrnDmMachineCannot) console.warn(`skipping acrn-dm's recording: ${acrnDmMachineCannot}`)

/**
 * Prints, one a line in hex: virtio-blk's IDs, BAR0 (I/O), BAR1 (memory) and BAR1's size
 * mask; reads BAR1's first MSI-X table word; kicks queue 0; prints K.
 */
const GUEST = `
_start:
	mov $0x10000, %esp
	mov $0x80000000, %eax      # 00:00.0 register 0: vendor and device
	call cfg_read
	mov $0x80001800, %eax      # 00:03.0 register 0
	call cfg_read
	call print_hex
	mov $0x80001810, %eax      # BAR0 (I/O)
	call cfg_read
	and $0xfffffffc, %eax
	mov %eax, %ebx
	call print_hex
	mov $0x80001814, %eax      # BAR1 (memory: the MSI-X table)
	call cfg_read
	and $0xfffffff0, %eax
	mov %eax, %edi
	call print_hex
	mov $0x80001814, %eax      # size BAR1: all ones, read the mask back, restore
	mov $0xffffffff, %ecx
	call cfg_write
	mov $0x80001814, %eax
	call cfg_read
	call print_hex
	mov $0x80001814, %eax
	mov %edi, %ecx
	call cfg_write
	mov $0x80001804, %eax      # command: I/O, memory and bus master on
	call cfg_read
	or $7, %eax
	mov %eax, %ecx
	mov $0x80001804, %eax
	call cfg_write
	mov (%edi), %eax           # MSI-X table entry 0, message address
	lea 0x12(%ebx), %edx       # VIRTIO_PCI_STATUS: ACKNOWLEDGE | DRIVER | DRIVER_OK
	mov $7, %al
	out %al, (%dx)
	lea 0x10(%ebx), %edx       # VIRTIO_PCI_QUEUE_NOTIFY: queue 0
	xor %eax, %eax
	out %ax, (%dx)
	mov $0x3f8, %dx
	mov $'K', %al
	out %al, (%dx)
	mov $'\\n', %al
	out %al, (%dx)
1:	hlt
	jmp 1b

cfg_read:
	mov $0xcf8, %dx
	out %eax, (%dx)
	mov $0xcfc, %dx
	in (%dx), %eax
	ret

cfg_write:                     # register %eax := %ecx
	mov $0xcf8, %dx
	out %eax, (%dx)
	mov $0xcfc, %dx
	mov %ecx, %eax
	out %eax, (%dx)
	ret

${PRINT_HEX}
`

describe.skipIf(why !== undefined)(
  `acrn-dm's guest reported by device${why ? ` (skipped: ${why})` : ''}`,
  () => {
    const session = acrnDmSession('acrn-dm-report', (dir) => {
      writeFileSync(join(dir, 'guest.elf'), assembleElf32(GUEST))
      writeFileSync(join(dir, 'disk.img'), '')
      truncateSync(join(dir, 'disk.img'), 1 << 20)
    })
    const { dir, env } = session
    const run = (...args: string[]) => {
      const r = hsmctl(args, env)
      expect(r.code, r.stderr).toBe(0)
      return r
    }

    it('COM1, the hostbridge’s config space and virtio-blk’s BARs are devices; the totals are the recording’s and the daemon’s', async (ctx) => {
      if (session.unavailable()) ctx.skip(session.unavailable())
      const file = join(dir, 'dm.hsmtrace')
      // the daemon first (sim exec would start it), then the recorder, then acrn-dm
      run('daemon', 'start')
      const recorder = spawn(process.execPath, [RUN_JS, 'ioreq', 'record', file, '--json'], {
        env: { ...process.env, NODE_ENV: undefined, NO_COLOR: '1', ...env },
      })
      let recorded = ''
      let recorderErr = ''
      recorder.stdout.on('data', (d) => (recorded += d))
      recorder.stderr.on('data', (d) => (recorderErr += d))
      const recorderExited = new Promise<number | null>((r) => recorder.on('close', r))
      const dm: RunningAcrnDm = startAcrnDm(
        session.path(),
        [
          ...['-m', '128M', '--cpu_affinity', '1', '-s', '0:0,hostbridge', '-s', '1:0,lpc'],
          ...['-s', '3:0,virtio-blk,iothread,disk.img', '-l', 'com1,stdio', '-E', 'guest.elf'],
          'dmrec',
        ],
        { cwd: dir, env },
      )
      try {
        const deadline = Date.now() + 30_000
        while (!/recording to/.test(recorderErr)) {
          if (Date.now() > deadline) throw new Error(`the recorder did not start: ${recorderErr}`)
          await new Promise((r) => setTimeout(r, 20))
        }
        await dm.until('K from the guest', () => /\nK\r?\n/.test(dm.output()))
        const printed =
          /([0-9a-f]{8})\r?\n([0-9a-f]{8})\r?\n([0-9a-f]{8})\r?\n([0-9a-f]{8})\r?\nK/.exec(
            dm.output(),
          )
        expect(printed, dm.output()).not.toBeNull()
        const [ids, bar0, bar1, mask] = printed!.slice(1).map((h) => Number.parseInt(h, 16)) as [
          number,
          number,
          number,
          number,
        ]
        expect(ids).toBe(0x1001_1af4) // virtio-blk, legacy (acrn-dm's include/virtio.h)
        expect(bar0).toBeGreaterThan(0)
        expect(bar1).toBeGreaterThan(0)
        const bar1Size = (~(mask & 0xfffffff0) + 1) >>> 0

        // the daemon's counts for the VM acrn-dm named, while it still runs
        const watch = JSON.parse(run('ioreq', 'watch', 'dmrec', '--once', '--json').stdout)
        const daemonCount = (watch.samples[0].rows as Json[]).reduce((n, r) => n + r.count, 0)
        recorder.kill('SIGINT')
        expect(await recorderExited, recorderErr).toBe(0)
        expect(JSON.parse(recorded)).toMatchObject({ dropped: 0 })

        const report = JSON.parse(run('ioreq', 'report', file, '--by', 'device', '--json').stdout)
        const recording = readTraceFile(file)
        expect(recording.header.vms.map((v) => v.name)).toContain('dmrec')
        // every request in exactly one device and one region
        const sum = (list: Json[]) => list.reduce((n, d) => n + d.count, 0)
        expect(report.total).toBe(recording.count)
        expect(sum(report.devices)).toBe(recording.count)
        for (const d of report.devices) expect(sum(d.regions)).toBe(d.count)
        expect(report.total).toBe(daemonCount)
        const byAddress = JSON.parse(run('ioreq', 'report', file, '--json').stdout)
        expect(sum(byAddress.rows)).toBe(report.total)

        const device = (name: string) => report.devices.find((d: Json) => d.device === name)
        // COM1: 4 lines of 8 digits and K, each byte one OUT
        expect(device('COM1')).toMatchObject({
          kind: 'standard',
          count: 4 * 9 + 2,
          writes: 4 * 9 + 2,
          reads: 0,
          regions: [expect.objectContaining({ where: 'PIO 0x3f8-0x3ff' })],
        })
        // the hostbridge: its IDs read once, through 0xCF8/0xCFC as a PCICFG request
        expect(device('PCI 00:00.0 hostbridge')).toMatchObject({
          kind: 'pci',
          bdf: '00:00.0',
          ids: '1275:1275',
          count: 1,
          regions: [expect.objectContaining({ where: 'PCICFG 00:00.0', reads: 1 })],
        })
        // virtio-blk: config (IDs, BAR0, BAR1 read / sized / restored, command read and
        // written), BAR0's two port writes (status to acrn-dm, the kick to its ioeventfd),
        // BAR1's MMIO read, sized by the guest
        const blk = device('PCI 00:03.0 virtio-blk')
        expect(blk).toMatchObject({ kind: 'pci', bdf: '00:03.0', ids: '1af4:1001' })
        const region = (name: string) => blk.regions.find((r: Json) => r.region === name)
        expect(region('config')).toMatchObject({ count: 8, reads: 5, writes: 3 })
        expect(region('BAR0')).toMatchObject({
          type: 'pio',
          from: `0x${bar0.toString(16)}`,
          to: null,
          count: 2,
          writes: 2,
          clients: { default: 1, ioeventfd: 1, kernel: 0 },
        })
        expect(region('BAR1')).toMatchObject({
          type: 'mmio',
          where: `BAR1 MMIO 0x${bar1.toString(16)}-0x${(bar1 + bar1Size - 1).toString(16)}`,
          to: `0x${(bar1 + bar1Size - 1).toString(16)}`,
          count: 1,
          reads: 1,
        })
        expect(blk.count).toBe(8 + 2 + 1)
        // BAR0 was never sized: said
        expect(report.notes).toEqual(
          expect.arrayContaining([
            expect.stringMatching(
              /^BAR0 of 00:03\.0 \(PIO 0x[0-9a-f]+\): the guest never sized it/,
            ),
          ]),
        )

        // the table: the same devices, a Total line, and the notes on stderr
        const table = run('ioreq', 'report', file, '--by', 'device')
        expect(table.stdout).toMatch(/^dmrec +COM1 +PIO 0x3f8-0x3ff +38 /m)
        expect(table.stdout).toMatch(
          new RegExp(
            `^dmrec +PCI 00:03\\.0 virtio-blk +BAR0 PIO 0x${bar0.toString(16)}\\+ +2 .* default:1,ioeventfd:1$`,
            'm',
          ),
        )
        expect(table.stdout).toMatch(new RegExp(`^ +Total +${report.total} +100\\.0$`, 'm'))
        expect(table.stderr).toMatch(/^note: BAR0 of 00:03\.0/m)
      } finally {
        if (recorder.exitCode === null) recorder.kill('SIGKILL')
        dm.child.kill('SIGINT')
        await dm.exited
      }
    }, 300_000)

    it('a request acrn-dm never answered before the recorder stopped is noted as pending: a slice to the stop', async (ctx) => {
      if (session.unavailable()) ctx.skip(session.unavailable())
      const file = join(dir, 'pending.hsmtrace')
      run('daemon', 'start')
      const recorder = spawn(process.execPath, [RUN_JS, 'ioreq', 'record', file], {
        env: { ...process.env, NODE_ENV: undefined, NO_COLOR: '1', ...env },
      })
      let recorderErr = ''
      recorder.stderr.on('data', (d) => (recorderErr += d))
      const recorderExited = new Promise<number | null>((r) => recorder.on('close', r))
      const dm = startAcrnDm(
        session.path(),
        [
          ...['-m', '128M', '--cpu_affinity', '1', '-s', '0:0,hostbridge', '-s', '1:0,lpc'],
          ...['-s', '3:0,virtio-blk,iothread,disk.img', '-l', 'com1,stdio', '-E', 'guest.elf'],
          'dmpend',
        ],
        { cwd: dir, env },
      )
      let pid = 0
      try {
        await dm.until('K from the guest', () => /\nK\r?\n/.test(dm.output()))
        const holder = (JSON.parse(run('vm', 'list', '--json').stdout) as Json[]).find(
          (v) => v.name === 'dmpend',
        ).holder as string
        pid = Number(/pid (\d+)/.exec(holder)![1])
        // acrn-dm stopped: a port write to its COM1 stays PENDING (§4.1) until it runs again
        process.kill(pid, 'SIGSTOP')
        const access = hsmctlAsync(
          ['guest', 'access', 'dmpend', '--pio', '0x3f8', '--write', '0x21', '--size', '1'],
          env,
        )
        const deadline = Date.now() + 60_000
        while (
          !JSON.parse(run('vm', 'show', 'dmpend', '--json').stdout).hypervisor.vcpus[0]
            .requestOutstanding
        ) {
          if (Date.now() > deadline) throw new Error('the request never went pending')
          await new Promise((r) => setTimeout(r, 100))
        }
        recorder.kill('SIGINT')
        expect(await recorderExited, recorderErr).toBe(0)
        process.kill(pid, 'SIGCONT')
        expect((await access).code).toBe(0)

        const recording = readTraceFile(file)
        const pending = pendingRecords(recording)
        expect(pending.count).toBe(1)
        const [request] = [...records(pending.records)]
        expect(request).toMatchObject({
          type: 'pio',
          dir: 'write',
          addr: 0x3f8n,
          value: 0x21n,
          size: 1,
        })
        // not among the completed requests, not counted by the report, said on stderr
        expect(
          [...records(recording.records)].filter((r) => r.value === 0x21n && r.addr === 0x3f8n),
        ).toEqual([])
        const table = run('ioreq', 'report', file)
        expect(table.stderr).toContain('1 requests were still pending when the recorder stopped')
        // the chrome trace: a slice from PENDING to the recorder's stop, marked pending
        const doc = JSON.parse(run('ioreq', 'report', file, '--format', 'chrome-trace').stdout)
        const slices = doc.traceEvents.filter((e: Json) => e.ph === 'X')
        expect(slices.length).toBe(recording.count + 1)
        const marked = slices.filter((e: Json) => e.args.pending === true)
        expect(marked).toEqual([
          expect.objectContaining({
            name: 'PIO 0x3f8 OUT',
            ts: Math.round(request!.t * 1e6) / 1000,
            args: expect.objectContaining({ value: '0x21', direction: 'write', pending: true }),
          }),
        ])
        const end = (marked[0].ts + marked[0].dur) * 1000
        expect(Math.abs(end - recording.header.traceEnd! * 1e6)).toBeLessThan(2)
        expect(marked[0].dur).toBeGreaterThan(0)
      } finally {
        if (pid) process.kill(pid, 'SIGCONT')
        if (recorder.exitCode === null) recorder.kill('SIGKILL')
        dm.child.kill('SIGINT')
        await dm.exited
      }
    }, 300_000)
  },
)
