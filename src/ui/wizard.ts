// The `vm create` wizard (on a terminal only); every answer has a flag that replaces it.
import { input } from './prompt.js'
import { parseInteger } from '../core/parse/number.js'
import { parseSize } from '../core/parse/size.js'
import { checkVmName } from '../core/vmm/spec.js'

const valid = (check: (v: string) => unknown) => (value: string) => {
  try {
    check(value)
    return true
  } catch (e) {
    return (e as Error).message
  }
}

/**
 * The defaults are those of `vm create NAME` without flags (`vcpus`: every pCPU a User VM
 * may use here, no RAM), or the flags given: Enter at every prompt makes the same VM.
 */
export async function createVmWizard(defaults: { vcpus: number; memory?: bigint }) {
  const name = await input({ message: 'VM name', validate: valid((v) => checkVmName(v)) })
  const vcpus = Number(
    await input({
      message: 'vCPUs',
      default: String(defaults.vcpus),
      validate: valid((v) => parseInteger(v, { min: 1n, max: 16n, decimal: true })),
    }),
  )
  const memoryText = await input({
    message: 'RAM at guest address 0 (empty for none)',
    default: defaults.memory ? String(defaults.memory) : '',
    validate: (v) =>
      v === '' ? true : valid((x) => parseSize(x, { min: 4096n, align: 4096n }))(v),
  })
  return { name, vcpus, memory: memoryText === '' ? undefined : parseSize(memoryText) }
}
