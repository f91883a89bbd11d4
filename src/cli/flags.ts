// Flags shared by several commands, and the custom flag types: each a one-line wrapper
// around a pure parser in core/parse (which has the property tests).
import { Flags } from '@oclif/core'
import { parseAccess } from '../core/parse/access.js'
import { parsePackedBdf } from '../core/parse/bdf.js'
import { parseMsi, parseMsiAddress, parseMsiData } from '../core/parse/msi.js'
import { parseInteger } from '../core/parse/number.js'
import { parseSize } from '../core/parse/size.js'
import { UsageError } from '../core/errors.js'

export const backendFlag = Flags.string({
  description:
    'Backend of the daemon: sim (built-in simulation) or native (/dev/acrn_hsm through hsm-helper).',
  options: ['sim', 'native'],
  default: 'sim',
  env: 'HSMCTL_BACKEND',
  helpGroup: 'GLOBAL',
})

export const hostFlag = Flags.string({
  description:
    'Talk to hsmd on another machine over ssh: ssh://[user@]host[:port]. Several (comma-separated, or @FILE with one a line) for `vm list` and `ioreq watch --once/--interval`.',
  helpValue: 'URL',
  env: 'HSMCTL_HOST',
  helpGroup: 'GLOBAL',
})

export const deviceFlag = Flags.string({
  description: 'The HSM device node the native backend opens (default /dev/acrn_hsm).',
  helpValue: 'PATH',
  env: 'HSMCTL_DEVICE',
})

export const serveSimFlag = Flags.string({
  description:
    'Also serve the simulated platform on this unix socket, for programs under the device shim (helper/SHIM.md); their VMs show in `vm list`. Sim backend only.',
  helpValue: 'PATH',
  env: 'HSMCTL_SERVE_SIM',
})

export const metricsFlag = Flags.string({
  description:
    'Serve Prometheus metrics (OpenMetrics) at http://ADDR:PORT/metrics: VMs by state and owner, I/O requests and their latency, trace drops, uptime, connections. A PORT alone means 127.0.0.1:PORT; 0 picks a free port (`daemon status` shows it). Only loopback addresses unless --metrics-public.',
  helpValue: '[ADDR:]PORT',
  env: 'HSMCTL_METRICS',
})

export const metricsPublicFlag = Flags.boolean({
  description:
    'Let --metrics listen on a non-loopback address (0.0.0.0:9410, a LAN address): the metrics name every VM, so firewall the port.',
  env: 'HSMCTL_METRICS_PUBLIC',
})

export const yesFlag = Flags.boolean({
  char: 'y',
  description: 'Do not ask for confirmation (required when not on a terminal).',
})

/** An address or number: decimal or hex, `_` allowed, unsigned 64-bit. */
export const hexFlag = (name: string, opts: { align?: bigint; max?: bigint } = {}) =>
  Flags.custom<bigint>({
    helpValue: 'ADDR',
    parse: async (input) => parseInteger(input, { name: `--${name}`, ...opts }),
  })

/** A bitmap of pCPUs: at least one (0 would be the hypervisor's "configured", A.2). */
export const affinityFlag = Flags.custom<bigint>({
  helpValue: 'MASK',
  parse: async (input) => {
    const mask = parseInteger(input, { name: '--cpu-affinity' })
    if (mask === 0n)
      throw new UsageError('0 names no pCPU', {
        flag: '--cpu-affinity',
        hint: 'give a bitmap of pCPUs (0x6 = pCPUs 1 and 2), or --vcpus N for the first N a User VM may use',
      })
    return mask
  },
})

/** A count or a small number (its range is said in decimal). */
export const intFlag = (name: string, min = 0n, max = 0xffff_ffffn) =>
  Flags.custom<number>({
    helpValue: 'N',
    parse: async (input) =>
      Number(parseInteger(input, { name: `--${name}`, min, max, decimal: true })),
  })

export const sizeFlag = (name: string, opts: { align?: bigint; min?: bigint } = {}) =>
  Flags.custom<bigint>({
    helpValue: 'SIZE',
    parse: async (input) => parseSize(input, { name: `--${name}`, ...opts }),
  })

export const bdfFlag = (name: string) =>
  Flags.custom<number>({
    helpValue: 'BDF',
    parse: async (input) => parsePackedBdf(input, `--${name}`),
  })

export const msiFlag = (name: string) =>
  Flags.custom<{ addr: bigint; data: bigint }>({
    helpValue: 'ADDR:DATA',
    parse: async (input) => parseMsi(input, `--${name}`),
  })

/**
 * An MSI the two ways a user may write it, in every command that takes one (irq inject,
 * irqfd add): `--msi ADDR:DATA`, or `--msi-addr ADDR --msi-data DATA`. `alternatives` are
 * the command's other flags of which exactly one is given with the MSI (irq inject's --gsi).
 */
export const msiFlags = (description: string, alternatives: string[] = []) => {
  const one = ['msi', 'msi-addr', ...alternatives]
  return {
    msi: msiFlag('msi')({
      description: `${description} as ADDR:DATA (or --msi-addr with --msi-data).`,
      exactlyOne: one,
    }),
    'msi-addr': Flags.custom<bigint>({
      helpValue: 'ADDR',
      parse: async (input) => parseMsiAddress(input, '--msi-addr'),
    })({
      description: 'MSI address (0xfee00000 | APIC ID << 12), with --msi-data.',
      exactlyOne: one,
      dependsOn: ['msi-data'],
    }),
    'msi-data': Flags.custom<bigint>({
      helpValue: 'DATA',
      parse: async (input) => parseMsiData(input, '--msi-data'),
    })({ description: 'MSI data (vector in bits 7:0), with --msi-addr.', dependsOn: ['msi-addr'] }),
  }
}

/** The MSI of msiFlags, whichever way it was given. */
export function msiOf(flags: {
  msi?: { addr: bigint; data: bigint }
  'msi-addr'?: bigint
  'msi-data'?: bigint
}): { addr: bigint; data: bigint } | undefined {
  if (flags.msi) return flags.msi
  if (flags['msi-addr'] === undefined || flags['msi-data'] === undefined) return undefined
  return { addr: flags['msi-addr'], data: flags['msi-data'] }
}

export const accessFlag = (name: string) =>
  Flags.custom<number>({
    helpValue: 'rwx',
    parse: async (input) => parseAccess(input, `--${name}`),
  })
