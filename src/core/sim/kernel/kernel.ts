// The simulated Service-VM kernel: the device nodes processes can open. HSM registers
// /dev/acrn_hsm when its module initialises (§1.1); /dev/null is always there, as the
// obvious open file that is not an eventfd.

import { Errno } from '../../abi/errno.js'
import type { Hypervisor } from '../hypervisor/hypervisor.js'
import { NullFile, type OpenFile } from './file.js'
import type { SimProcess } from './process.js'

export interface DeviceNode {
  /** Owner uid and permission bits of the node (devtmpfs makes misc devices 0600 root:root, §1.3). */
  readonly uid: number
  readonly mode: number
  open(proc: SimProcess): OpenFile | number
}

export class SimKernel {
  private readonly nodes = new Map<string, DeviceNode>()
  private nextPid = 1000

  constructor(readonly hv: Hypervisor) {
    this.nodes.set('/dev/null', { uid: 0, mode: 0o666, open: () => new NullFile() })
  }

  registerDevice(path: string, node: DeviceNode): void {
    this.nodes.set(path, node)
  }

  deregisterDevice(path: string): void {
    this.nodes.delete(path)
  }

  allocatePid(): number {
    return this.nextPid++
  }

  /** open(2) of a device node, with the permission check of a plain file. */
  openNode(proc: SimProcess, path: string): OpenFile | number {
    const node = this.nodes.get(path)
    if (!node) return -Errno.ENOENT
    const bits =
      proc.uid === 0 ? 0o6 : proc.uid === node.uid ? (node.mode >> 6) & 0o6 : node.mode & 0o6
    if (bits !== 0o6) return -Errno.EACCES
    return node.open(proc)
  }
}
