/*
 * What hsm-shim-node.c (the device node as stat and access see it) needs from hsm-shim.c.
 * Both are compiled into libhsm-shim.so with hidden visibility: none of this is exported.
 */
#ifndef HSM_SHIM_NODE_H
#define HSM_SHIM_NODE_H

/* The shim serves the device (HSM_SHIM_SOCKET is set). */
int shim_active(void);
/* `path` names the simulated device (HSM_SHIM_DEVICE), exactly; an absolute one if `absolute`. */
int shim_is_device_path(const char *path, int absolute);
/* `path` is the legacy device name (/dev/acrn_vhm) the shim answers as missing. */
int shim_is_hidden_path(const char *path, int absolute);
/* `fd` is one of the shim's placeholders for an open of the device. */
int shim_is_placeholder(int fd);
/* The device path (for its directory: the node's st_dev and times). */
const char *shim_device_path(void);

#endif /* HSM_SHIM_NODE_H */
