import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { intFlag } from '../../cli/flags.js'

interface MonitorResult {
  name: string
  delayMs?: number
  interrupts: { pirq: bigint; count: bigint }[]
}

export default class IrqMonitor extends DaemonCommand {
  static override summary =
    'Interrupt counts of a VM’s pass-through devices (VM_INTR_MONITOR), or set an injection delay.'

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo',
    '<%= config.bin %> <%= command.id %> demo --delay 5',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    delay: intFlag('delay')({
      description: 'Delay interrupt injection by MS milliseconds (0 cancels).',
      helpValue: 'MS',
    }),
  }

  async run(): Promise<MonitorResult> {
    const { args, flags } = await this.parse(IrqMonitor)
    const result = await this.call<MonitorResult>('irq.monitor', {
      name: args.name,
      ...(flags.delay !== undefined ? { delayMs: flags.delay } : {}),
    })
    if (flags.delay !== undefined)
      this.log(`interrupt injection delay of ${args.name}: ${flags.delay} ms`)
    else if (result.interrupts.length === 0) this.log(`No pass-through interrupts in ${args.name}.`)
    else
      this.log(
        result.interrupts
          // 64-bit values arrive as hex strings; IRQ numbers and counts read best in decimal
          .map((i) => `pirq ${String(BigInt(i.pirq)).padStart(4)}  ${BigInt(i.count)}`)
          .join('\n'),
      )
    return result
  }
}
