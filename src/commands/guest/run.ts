import { Flags } from '@oclif/core'
import { DaemonCommand, vmNameArg } from '../../cli/daemon-command.js'
import { currentAbortSignal } from '../../cli/shell/host.js'
import type { WorkloadStatus } from '../../core/vmm/workloads.js'

export default class GuestRun extends DaemonCommand {
  static override summary =
    'Run a guest workload on a VM’s vCPUs (simulation): realistic I/O until stopped.'

  static override description = `Workloads: uart (a serial driver printing), virtio-notify (doorbell writes that hit an
ioeventfd, handled in the kernel; one is registered at 0xfe003000 if missing), pci-scan
(0xCF8/0xCFC configuration reads), rtc (CMOS clock reads), mixed (all of them). The
workload runs in the daemon until \`guest stop\`, --count or --duration; --wait waits.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> demo --workload mixed',
    '<%= config.bin %> <%= command.id %> demo --workload virtio-notify --rate 100000 --vcpus 0,1',
    '<%= config.bin %> <%= command.id %> demo --workload pci-scan --count 1000 --wait',
  ]

  static override args = { name: vmNameArg }

  static override flags = {
    workload: Flags.string({
      description: 'The access pattern.',
      options: ['uart', 'virtio-notify', 'pci-scan', 'rtc', 'mixed'],
      required: true,
    }),
    rate: Flags.integer({
      description: 'Accesses per second over all vCPUs (0: as fast as possible).',
      default: 1000,
      min: 0,
    }),
    vcpus: Flags.string({ description: 'vCPUs to run on, e.g. 0,1 (default 0).' }),
    count: Flags.integer({ description: 'Stop after this many accesses.', min: 1 }),
    duration: Flags.string({ description: 'Stop after this many seconds.' }),
    wait: Flags.boolean({ description: 'Wait until the workload ends and print its totals.' }),
  }

  async run(): Promise<WorkloadStatus> {
    const { args, flags } = await this.parse(GuestRun)
    const { UsageError } = await import('../../core/errors.js')
    const vcpus = flags.vcpus?.split(',').map((v) => {
      if (!/^\d+$/.test(v.trim()))
        throw new UsageError(`'${flags.vcpus}' is not a list of vCPUs`, { flag: '--vcpus' })
      return Number(v)
    })
    const seconds = flags.duration === undefined ? undefined : Number(flags.duration)
    if (seconds !== undefined && !(seconds > 0))
      throw new UsageError(`'${flags.duration}' is not a number of seconds`, { flag: '--duration' })
    let status = await this.call<WorkloadStatus>('guest.run', {
      name: args.name,
      workload: flags.workload,
      rate: flags.rate,
      ...(vcpus ? { vcpus } : {}),
      ...(flags.count !== undefined ? { count: flags.count } : {}),
      ...(seconds !== undefined ? { durationMs: Math.round(seconds * 1000) } : {}),
    })
    if (flags.wait) {
      // Ctrl-C while waiting stops the workload too (it runs in the daemon, not here)
      const signal = currentAbortSignal()
      const stopped = new Promise<'aborted'>((resolve) => {
        if (signal.aborted) resolve('aborted')
        signal.addEventListener('abort', () => resolve('aborted'), { once: true })
      })
      const waited = await Promise.race([
        this.call<WorkloadStatus>('guest.wait', { name: args.name }),
        stopped,
      ])
      if (waited === 'aborted') {
        const last = await this.call<WorkloadStatus>('guest.stop', { name: args.name })
        const { InterruptedError } = await import('../../core/errors.js')
        throw new InterruptedError(
          `interrupted; stopped ${flags.workload} on ${args.name} after ${last.accesses} accesses`,
        )
      }
      status = waited
      this.log(
        `${flags.workload} on ${args.name}: ${status.accesses} accesses in ${(status.elapsedMs / 1000).toFixed(1)}s${status.errors ? ` (stopped: ${status.lastError})` : ''}`,
      )
    } else {
      this.log(
        `${flags.workload} running on ${args.name} (vCPUs ${status.vcpus.join(',')}); stop it with \`hsmctl guest stop ${args.name}\``,
      )
    }
    return status
  }
}
