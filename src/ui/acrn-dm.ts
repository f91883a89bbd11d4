// How acrn-dm's VMs, registered scripts and other processes' VMs read in `vm show`, and
// the one-line results of acrnctl's verbs.

import type { VmDescription } from '../core/acrn-dm/vms.js'
import { out } from './color.js'
import { duration, size } from './format.js'
import { stateText } from './vm.js'

export function renderVmDescription(vm: VmDescription): string {
  const c = out()
  const head = [
    c.bold(vm.name),
    vm.vmid === null ? undefined : `vmid ${vm.vmid}`,
    stateText(vm.state),
    vm.vcpus === null ? undefined : `${vm.vcpus} vCPU${vm.vcpus === 1 ? '' : 's'}`,
    vm.memory === null ? undefined : `${size(vm.memory)} RAM`,
    vm.uptimeSeconds === null ? undefined : `up ${duration(vm.uptimeSeconds)}`,
  ].filter((x) => x !== undefined)
  const lines = [head.join('  '), `  owner        ${vm.holder ?? vm.owner}`]
  if (vm.acrnDm) {
    const dm = vm.acrnDm
    lines.push(
      `  monitor      ${dm.socket}`,
      `  DM_QUERY     ${dm.mode === null ? `no answer${dm.error ? ` (${dm.error})` : ''}` : `${dm.mode} ${dm.modeName}`}`,
      `  HSM state    ${dm.hsmState ?? '- (the daemon does not see this VM: hardware, or no hsmd)'}`,
    )
  }
  if (vm.commandLine) lines.push(`  command      ${vm.commandLine.join(' ')}`)
  if (vm.script) {
    lines.push(
      `  script       ${vm.script.path}${vm.script.args?.length ? ` ${vm.script.args.join(' ')}` : ''}`,
    )
  }
  if (vm.log) {
    lines.push(
      `  log          ${vm.log.path}${vm.log.lastExitStatus === null ? '' : `  (last run exited with status ${vm.log.lastExitStatus})`}`,
    )
  }
  return lines.join('\n')
}
