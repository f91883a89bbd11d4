// Where ACRN keeps what acrnctl and acrn-dm share: the monitor sockets and the launch-script
// registry (../shared/acrn-dm/README.md). Both are ACRN's fixed paths, which acrn-dm and
// acrnctl hard-code; the variables move hsmctl's view of them (tests, a chroot's copy).

export interface AcrnPaths {
  /** acrn-dm's monitor sockets, `NAME.monitor.PID.socket` (ACRN_DM_SOCK_PATH). */
  mngrDir: string
  /** acrnctl's registry, `NAME.sh` and `NAME.args` (ACRN_CONF_PATH_ADD). */
  confDir: string
}

export const ACRN_MNGR_DIR = '/run/acrn/mngr'
export const ACRN_CONF_DIR = '/usr/share/acrn/conf/add'

export function acrnPaths(env: NodeJS.ProcessEnv = process.env): AcrnPaths {
  return {
    mngrDir: env.HSMCTL_ACRN_MNGR_DIR || ACRN_MNGR_DIR,
    confDir: env.HSMCTL_ACRN_CONF_DIR || ACRN_CONF_DIR,
  }
}
