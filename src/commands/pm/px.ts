import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { intFlag } from '../../cli/flags.js'

interface PmResult {
  name: string
  vcpu: number
  kind: string
  count: number
  states: Record<string, unknown>[]
}

export default class PmPx extends DaemonCommand {
  static override summary =
    'A vCPU’s P-states (frequency, power, latencies, control/status) via PM_GET_CPU_STATE.'

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo --vcpu 0',
    '<%= config.bin %> <%= command.id %> demo --vcpu 0 --index 1',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    vcpu: intFlag('vcpu', 0n, 255n)({ description: 'The vCPU.', default: 0 }),
    index: intFlag('index', 0n, 255n)({ description: 'Only this state (Px from 0).' }),
  }

  async run(): Promise<PmResult> {
    const { args, flags } = await this.parse(PmPx)
    const result = await this.call<PmResult>('pm.get', {
      name: args.name,
      kind: 'px',
      vcpu: flags.vcpu,
      ...(flags.index !== undefined ? { index: flags.index } : {}),
    })
    const { renderPmTable } = await import('../../ui/pm.js')
    this.log(renderPmTable(result))
    return result
  }
}
