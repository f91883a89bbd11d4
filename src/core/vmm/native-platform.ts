// Real hardware as a VM-manager platform: the daemon's HSM calls go through hsm-helper
// (core/native) to the real /dev/acrn_hsm, and the host's PCI devices come from sysfs.
// There is no guest to drive and no hypervisor to inspect: those need the simulation.

import { readdir, readFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { NativeProcess, type NativeProcessOptions } from '../native/helper-process.js'
import { DEFAULT_DEVICE } from '../native/preflight.js'
import type { HostBar, HostInventoryView, HostPciDevice, VmmPlatform } from './platform.js'

export interface NativeVmmPlatform extends VmmPlatform {
  readonly backend: 'native'
  readonly device: string
  readonly process: NativeProcess
}

export interface NativePlatformOptions extends NativeProcessOptions {
  /** Where sysfs is mounted (tests point it at a fixture tree). */
  readonly sysfs?: string
}

/**
 * Preflight and start hsm-helper (rejects with DaemonUnreachableError saying what to fix:
 * no device, no permission, helper not built), then serve the host from sysfs.
 */
export async function nativeVmmPlatform(
  options: NativePlatformOptions = {},
): Promise<NativeVmmPlatform> {
  const device = options.device ?? DEFAULT_DEVICE
  const helper = await NativeProcess.start({ ...options, device })
  const sysfs = options.sysfs ?? '/sys'
  return {
    backend: 'native',
    device,
    process: helper,
    inventory: () => readHostInventory(sysfs),
  }
}

// lspci's names for the classes a Service VM usually has; others show as "class 0xCCSS".
const CLASS_NAMES: Record<number, string> = {
  0x0100: 'SCSI storage controller',
  0x0101: 'IDE interface',
  0x0104: 'RAID bus controller',
  0x0106: 'SATA controller',
  0x0108: 'Non-Volatile memory controller',
  0x0200: 'Ethernet controller',
  0x0280: 'Network controller',
  0x0300: 'VGA compatible controller',
  0x0380: 'Display controller',
  0x0401: 'Audio device',
  0x0403: 'Audio device',
  0x0480: 'Multimedia controller',
  0x0500: 'RAM memory',
  0x0580: 'Memory controller',
  0x0600: 'Host bridge',
  0x0601: 'ISA bridge',
  0x0604: 'PCI bridge',
  0x0680: 'Bridge',
  0x0700: 'Serial controller',
  0x0780: 'Communication controller',
  0x0880: 'System peripheral',
  0x0c03: 'USB controller',
  0x0c05: 'SMBus',
  0x0c80: 'Serial bus controller',
  0x1180: 'Signal processing controller',
}

// include/linux/ioport.h resource flags, as /sys/bus/pci/devices/*/resource shows them.
const IORESOURCE_IO = 0x100n
const IORESOURCE_MEM = 0x200n
const IORESOURCE_MEM_64 = 0x100000n

async function text(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim()
  } catch {
    return undefined
  }
}

/** "0-3,6" (a sysfs CPU list) as a mask. */
export function cpuListMask(list: string): bigint {
  let mask = 0n
  for (const part of list.split(',')) {
    const [a, b] = part.trim().split('-').map(Number)
    if (a === undefined || !Number.isInteger(a)) continue
    for (let cpu = a; cpu <= (b ?? a) && cpu < 64; cpu++) mask |= 1n << BigInt(cpu)
  }
  return mask
}

/** The BARs of a device from the first six lines of its `resource` file. */
export function parseResource(content: string): HostBar[] {
  const bars: HostBar[] = []
  content
    .split('\n')
    .slice(0, 6)
    .forEach((line, index) => {
      const [start, end, flags] = line
        .trim()
        .split(/\s+/)
        .map((f) => BigInt(f))
      if (start === undefined || end === undefined || flags === undefined) return
      if (start === 0n && end === 0n) return // unused, or the upper half of a 64-bit BAR
      const kind =
        flags & IORESOURCE_IO
          ? 'io'
          : flags & IORESOURCE_MEM
            ? flags & IORESOURCE_MEM_64
              ? 'mem64'
              : 'mem32'
            : undefined
      if (kind) bars.push({ index, kind, base: start, size: end - start + 1n })
    })
  return bars
}

/** `0000:00:1f.6` -> bus << 8 | dev << 3 | func. */
export function parseBdf(name: string): number | undefined {
  const m = /^[0-9a-f]{4}:([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i.exec(name)
  if (!m) return undefined
  return (parseInt(m[1]!, 16) << 8) | (parseInt(m[2]!, 16) << 3) | parseInt(m[3]!, 16)
}

async function pciDevice(dir: string, name: string): Promise<HostPciDevice | undefined> {
  const bdf = parseBdf(name)
  const vendor = await text(join(dir, 'vendor'))
  const device = await text(join(dir, 'device'))
  const cls = await text(join(dir, 'class'))
  if (bdf === undefined || !vendor || !device || !cls) return undefined
  const classCode = parseInt(cls, 16)
  // The interrupt pin is byte 0x3d of config space, which any user may read.
  let intxPin = 0
  try {
    const config = await readFile(join(dir, 'config'))
    intxPin = config.byteLength > 0x3d ? config[0x3d]! : 0
  } catch {
    // not readable: no INTx shown
  }
  const irq = Number(await text(join(dir, 'irq')))
  return {
    bdf,
    vendor: parseInt(vendor, 16),
    device: parseInt(device, 16),
    classCode,
    name:
      CLASS_NAMES[classCode >> 8] ?? `class 0x${(classCode >> 8).toString(16).padStart(4, '0')}`,
    bars: parseResource((await text(join(dir, 'resource'))) ?? ''),
    intxPin: intxPin <= 4 ? intxPin : 0,
    intxGsi: Number.isInteger(irq) && intxPin ? irq : 0,
    bridge: classCode >> 16 === 0x06,
  }
}

/**
 * The host as the Service VM sees it: its CPUs and the PCI devices under
 * `sysfs`/bus/pci/devices. MMIO (platform) devices are not listed: their ranges need
 * root to read (/proc/iomem).
 */
export async function readHostInventory(sysfs = '/sys'): Promise<HostInventoryView> {
  const possible = await text(join(sysfs, 'devices', 'system', 'cpu', 'possible'))
  const mask = possible ? cpuListMask(possible) : (1n << BigInt(cpus().length)) - 1n
  let pcpus = 0
  for (let m = mask; m; m >>= 1n) if (m & 1n) pcpus++
  const root = join(sysfs, 'bus', 'pci', 'devices')
  let names: string[] = []
  try {
    names = (await readdir(root)).sort()
  } catch {
    // no PCI (or no sysfs): an empty list
  }
  const pci: HostPciDevice[] = []
  for (const name of names) {
    const d = await pciDevice(join(root, name), name)
    if (d) pci.push(d)
  }
  pci.sort((a, b) => a.bdf - b.bdf)
  // The scenario's affinity for User VMs is not visible from the Service VM (A.2). Guess
  // what the usual scenarios do, every pCPU but 0 (the Service VM's), and let CREATE_VM
  // refuse (EINVAL) what this one does not allow; --cpu-affinity picks exactly.
  const userVmAffinity = pcpus > 1 ? mask & ~1n : mask
  return { pcpus, userVmAffinity, pci, mmio: [] }
}
