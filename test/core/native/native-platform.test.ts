// The native backend as hsmd uses it: the host's PCI devices from sysfs, preflight errors
// that say what to do, and the VM manager driving VMs through hsm-helper. No ACRN here,
// so the helper runs under the device shim against a simulated platform.

import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startVmmDaemon } from '../../../src/core/daemon/vmm-daemon.js'
import { DaemonUnreachableError, UsageError } from '../../../src/core/errors.js'
import { shimPath } from '../../../src/core/native/preflight.js'
import { SimServer } from '../../../src/core/native/sim-server.js'
import { TraceHub } from '../../../src/core/trace/hub.js'
import { Journal } from '../../../src/core/vmm/journal.js'
import { VmManager } from '../../../src/core/vmm/manager.js'
import {
  cpuListMask,
  nativeVmmPlatform,
  parseBdf,
  parseResource,
  readHostInventory,
} from '../../../src/core/vmm/native-platform.js'
import { createSimPlatform } from '../../../src/index.js'
import { hsmctl } from '../../support/cli.js'
import { buildHelper, HELPER, helperUnavailable } from './support.js'

const dir = mkdtempSync(join(tmpdir(), 'hsmctl-nativeplat-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A sysfs tree with three PCI functions: a root port, a NIC (32-bit BAR), an NVMe (64-bit). */
function fixture(): string {
  const root = join(dir, 'sys')
  mkdirSync(join(root, 'devices', 'system', 'cpu'), { recursive: true })
  writeFileSync(join(root, 'devices', 'system', 'cpu', 'possible'), '0-3\n')
  const dev = (name: string, files: Record<string, string | Buffer>) => {
    const d = join(root, 'bus', 'pci', 'devices', name)
    mkdirSync(d, { recursive: true })
    for (const [f, content] of Object.entries(files)) writeFileSync(join(d, f), content)
  }
  const config = (pin: number) => {
    const b = Buffer.alloc(64)
    b[0x3d] = pin
    return b
  }
  const zero = '0x0000000000000000 0x0000000000000000 0x0000000000000000\n'
  dev('0000:00:1f.6', {
    vendor: '0x8086\n',
    device: '0x15be\n',
    class: '0x020000\n',
    irq: '18\n',
    config: config(1),
    resource: '0x00000000a1140000 0x00000000a115ffff 0x0000000000040200\n' + zero.repeat(12),
  })
  dev('0000:01:00.0', {
    vendor: '0x144d\n',
    device: '0xa808\n',
    class: '0x010802\n',
    irq: '16\n',
    config: config(1),
    resource:
      '0x00000000a1200000 0x00000000a1203fff 0x0000000000140204\n' +
      zero +
      '0x000000000000e000 0x000000000000e07f 0x0000000000040101\n' +
      zero.repeat(10),
  })
  dev('0000:00:1c.0', {
    vendor: '0x8086\n',
    device: '0x9dbc\n',
    class: '0x060400\n',
    irq: '0\n',
    config: config(0),
    resource: zero.repeat(13),
  })
  dev('not-a-device', { vendor: '0x1\n' })
  return root
}

describe('the host from sysfs', () => {
  it('parses CPU lists, BDFs and resource lines', () => {
    expect(cpuListMask('0-3,6')).toBe(0b100_1111n)
    expect(cpuListMask('0')).toBe(1n)
    expect(parseBdf('0000:00:1f.6')).toBe((0x1f << 3) | 6)
    expect(parseBdf('0000:3a:00.1')).toBe((0x3a << 8) | 1)
    expect(parseBdf('garbage')).toBeUndefined()
    expect(parseResource('0x1000 0x1fff 0x40200\n0x0 0x0 0x0\n0xe000 0xe07f 0x40101\n')).toEqual([
      { index: 0, kind: 'mem32', base: 0x1000n, size: 0x1000n },
      { index: 2, kind: 'io', base: 0xe000n, size: 0x80n },
    ])
  })

  it('lists the PCI functions with IDs, class names, BARs and INTx, bridges marked', async () => {
    const inv = await readHostInventory(fixture())
    expect(inv.pcpus).toBe(4)
    expect(inv.userVmAffinity).toBe(0b1110n)
    expect(inv.mmio).toEqual([])
    expect(inv.pci).toEqual([
      {
        bdf: 0x1c << 3,
        vendor: 0x8086,
        device: 0x9dbc,
        classCode: 0x060400,
        name: 'PCI bridge',
        bars: [],
        intxPin: 0,
        intxGsi: 0,
        bridge: true,
      },
      {
        bdf: (0x1f << 3) | 6,
        vendor: 0x8086,
        device: 0x15be,
        classCode: 0x020000,
        name: 'Ethernet controller',
        bars: [{ index: 0, kind: 'mem32', base: 0xa114_0000n, size: 0x2_0000n }],
        intxPin: 1,
        intxGsi: 18,
        bridge: false,
      },
      {
        bdf: 0x100,
        vendor: 0x144d,
        device: 0xa808,
        classCode: 0x010802,
        name: 'Non-Volatile memory controller',
        bars: [
          { index: 0, kind: 'mem64', base: 0xa120_0000n, size: 0x4000n },
          { index: 2, kind: 'io', base: 0xe000n, size: 0x80n },
        ],
        intxPin: 1,
        intxGsi: 16,
        bridge: false,
      },
    ])
  })

  it("reads this machine's /sys", async () => {
    const inv = await readHostInventory()
    expect(inv.pcpus).toBeGreaterThanOrEqual(1)
    let expected = 0
    try {
      expected = readdirSync('/sys/bus/pci/devices').length
    } catch {
      // no PCI here
    }
    expect(inv.pci).toHaveLength(expected)
  })
})

describe('preflight, as hsmd reports it', () => {
  it('a device that is not there: what it means and what to do', async () => {
    const err = await nativeVmmPlatform({ device: join(dir, 'acrn_hsm') }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DaemonUnreachableError)
    expect(String((err as Error).message)).toMatch(/acrn_hsm does not exist/)
    expect((err as DaemonUnreachableError).hint).toMatch(
      /ACRN Service VM.*HSM module loaded.*--backend sim/,
    )
  })

  it('a helper that is not built: how to build it', async () => {
    const err = await nativeVmmPlatform({
      device: '/dev/null',
      helper: join(dir, 'no-helper'),
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DaemonUnreachableError)
    expect((err as Error).message).toMatch(/hsm-helper is not built/)
    expect((err as DaemonUnreachableError).hint).toMatch(/npm run build/)
  })

  it('startVmmDaemon: --device needs native, --serve-sim needs sim, native preflight runs first', async () => {
    await expect(startVmmDaemon({ backend: 'sim', device: '/dev/null' })).rejects.toBeInstanceOf(
      UsageError,
    )
    await expect(
      startVmmDaemon({ backend: 'native', serveSim: join(dir, 'x.sock') }),
    ).rejects.toBeInstanceOf(UsageError)
    await expect(startVmmDaemon({ backend: 'native', device: join(dir, 'none') })).rejects.toThrow(
      /does not exist/,
    )
  })

  it('hsmctl daemon run --backend native --device PATH says what is missing and exits', () => {
    const env = { HSMCTL_RUNTIME_DIR: join(dir, 'run'), HSMCTL_STATE_DIR: join(dir, 'state') }
    const r = hsmctl(
      ['daemon', 'run', '--backend', 'native', '--device', join(dir, 'missing_hsm')],
      env,
    )
    expect(r.code).toBe(5)
    expect(r.stderr).toMatch(/missing_hsm does not exist/)
    expect(r.stderr).toMatch(/Hint: .*ACRN Service VM/)
  })
})

describe.skipIf(helperUnavailable)(
  'the VM manager on the native backend (helper under the shim)',
  () => {
    beforeAll(() => buildHelper(), 120_000)

    it('creates, maps, starts and destroys VMs through hsm-helper; its client serves the guest', async () => {
      const sim = createSimPlatform()
      const server = await SimServer.listen(join(dir, 'native.sock'), { platform: sim })
      const platform = await nativeVmmPlatform({
        helper: HELPER,
        checkDevice: false,
        sysfs: fixture(),
        env: { LD_PRELOAD: shimPath(), HSM_SHIM_SOCKET: server.path },
      })
      const state = join(dir, 'mgr-state')
      mkdirSync(state, { recursive: true })
      const manager = new VmManager({
        platform,
        journal: new Journal(state),
        trace: new TraceHub(),
        stateDir: state,
      })
      try {
        expect((await manager.platform.inventory()).pci).toHaveLength(3)
        await manager.create({ name: 'n1', vcpus: 2 })
        await manager.memsegSet(
          'n1',
          { type: 'ram', gpa: 0n, size: 0x10_0000n, access: 7 },
          Uint8Array.of(0xf4),
        )
        await manager.start('n1')
        const [vm] = manager.list()
        expect(vm).toMatchObject({
          name: 'n1',
          state: 'running',
          vcpus: 2,
          memory: 0x10_0000n,
          owner: 'hsmd',
        })
        // The hypervisor behind the helper has it, with its name and its RAM.
        expect(sim.inspect.vm(vm!.vmid!)).toMatchObject({
          name: 'n1',
          state: 'running',
          vcpuNum: 2,
        })
        expect(sim.inspect.ept(vm!.vmid!).reduce((n, r) => n + r.size, 0n)).toBe(0x10_0000n)
        await expect(
          manager.guestAccess('n1', {
            vcpu: 0,
            type: 'pio',
            dir: 'read',
            addr: 0x60n,
            size: 1,
            value: 0n,
          }),
        ).rejects.toThrow(/guest access needs the simulation/)
        // The hypervisor behind the shim can still make a vCPU trap: the daemon's default
        // client serves it through the helper (ATTACH, read the slot, NOTIFY), as on hardware.
        const vmid = vm!.vmid!
        const out = (value: number) =>
          sim.guestAccess({ vmid, vcpu: 1, type: 'pio', dir: 'write', addr: 0x3f8, size: 1, value })
        for (const c of 'hi\n') await out(c.charCodeAt(0))
        expect((await manager.console('n1')).data).toBe('hi\n')
        const read = { vmid, vcpu: 0, type: 'pio', dir: 'read', addr: 0x60, size: 1 } as const
        expect(await sim.guestAccess(read)).toBe(0xffn)
        await manager.destroy('n1')
        expect(sim.inspect.vms()).toEqual([])
      } finally {
        await manager.shutdown()
        expect(await platform.process.exit()).toBe(0)
        await server.close()
      }
    }, 60_000)
  },
)
