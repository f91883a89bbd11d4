// Flags shared by several commands: one definition each, so help reads the same everywhere.
import { Flags } from '@oclif/core'

export const backendFlag = Flags.string({
  description:
    'Backend of the daemon: sim (built-in simulation) or native (/dev/acrn_hsm through hsm-helper).',
  options: ['sim', 'native'],
  default: 'sim',
  env: 'HSMCTL_BACKEND',
})
