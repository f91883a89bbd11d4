/*
 * What hsm-helper and the device shim know about each ACRN ioctl: how its
 * argument travels, how many bytes the kernel reads or writes through the pointer, and
 * which struct field carries a user address the kernel pins. Every request number and
 * size comes from <linux/acrn.h>; nothing is written out by hand.
 */
#ifndef HSM_IOCTLS_H
#define HSM_IOCTLS_H

#include <stdint.h>

#include "hsm-protocol.h"

/* A user address inside the argument that the kernel pins (and the hypervisor uses). */
enum hsm_user_pointer {
	HSM_PTR_NONE = 0,
	/* acrn_vm_creation.ioreq_buf: the page holding it becomes the ioreq page (§2.2). */
	HSM_PTR_IOREQ_BUF,
	/* acrn_vm_memmap.vma_base for type RAM: len >> 12 pages are pinned (§3.4 B). */
	HSM_PTR_MEMSEG_RAM,
	/* The value itself: the page holding it is the interrupt-monitor page (§7.3). */
	HSM_PTR_VALUE_PAGE,
};

struct hsm_ioctl_info {
	uint32_t request;
	/* Without the ACRN_IOCTL_ prefix, as the TypeScript tables spell it. */
	const char *name;
	enum hsmp_arg kind;
	/* Bytes of user memory the kernel reads or writes through the pointer. */
	uint32_t buffer_size;
	/* The kernel writes the buffer back (the request's direction includes _IOC_READ). */
	int read_back;
	enum hsm_user_pointer pointer;
	/*
	 * The errno the kernel gives when that address cannot be pinned, so a refusal
	 * looks like the kernel's answer (CREATE_VM turns any ioreq failure into EINVAL).
	 */
	int pointer_errno;
	/* May sleep until something else happens (ATTACH_IOREQ_CLIENT, §4.7). */
	int blocking;
};

/* The ioctl whose full 32-bit request is exactly `request` (§1.6), or NULL. */
const struct hsm_ioctl_info *hsm_ioctl_lookup(uint32_t request);

/* Bytes the kernel writes back for PM_GET_CPU_STATE by the command's type (§7.8): 0 when
 * the type is unknown (the call fails). */
uint32_t hsm_pm_reply_size(uint64_t cmd);

/* Every known ioctl, for tests and for the shim. */
extern const struct hsm_ioctl_info hsm_ioctls[];
extern const unsigned int hsm_ioctl_count;

#endif /* HSM_IOCTLS_H */
