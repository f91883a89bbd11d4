/* The ACRN ioctl table (hsm-ioctls.h), built from <linux/acrn.h>. */
#include "hsm-ioctls.h"

#include <errno.h>
#include <linux/acrn.h>
#include <linux/ioctl.h>

/* A struct argument must be exactly the size the request encodes (§10.1). */
#define CHECK_SIZE(req, type) \
	_Static_assert(_IOC_SIZE(req) == sizeof(type), #req " encodes the size of " #type)

CHECK_SIZE(ACRN_IOCTL_CREATE_VM, struct acrn_vm_creation);
CHECK_SIZE(ACRN_IOCTL_SET_VCPU_REGS, struct acrn_vcpu_regs);
CHECK_SIZE(ACRN_IOCTL_INJECT_MSI, struct acrn_msi_entry);
CHECK_SIZE(ACRN_IOCTL_NOTIFY_REQUEST_FINISH, struct acrn_ioreq_notify);
CHECK_SIZE(ACRN_IOCTL_SET_MEMSEG, struct acrn_vm_memmap);
CHECK_SIZE(ACRN_IOCTL_UNSET_MEMSEG, struct acrn_vm_memmap);
CHECK_SIZE(ACRN_IOCTL_SET_PTDEV_INTR, struct acrn_ptdev_irq);
CHECK_SIZE(ACRN_IOCTL_RESET_PTDEV_INTR, struct acrn_ptdev_irq);
CHECK_SIZE(ACRN_IOCTL_ASSIGN_PCIDEV, struct acrn_pcidev);
CHECK_SIZE(ACRN_IOCTL_DEASSIGN_PCIDEV, struct acrn_pcidev);
CHECK_SIZE(ACRN_IOCTL_ASSIGN_MMIODEV, struct acrn_mmiodev);
CHECK_SIZE(ACRN_IOCTL_DEASSIGN_MMIODEV, struct acrn_mmiodev);
CHECK_SIZE(ACRN_IOCTL_CREATE_VDEV, struct acrn_vdev);
CHECK_SIZE(ACRN_IOCTL_DESTROY_VDEV, struct acrn_vdev);
CHECK_SIZE(ACRN_IOCTL_IOEVENTFD, struct acrn_ioeventfd);
CHECK_SIZE(ACRN_IOCTL_IRQFD, struct acrn_irqfd);
/* PM_GET_CPU_STATE declares a __u64 but writes back up to a whole pstate record (§7.8). */
_Static_assert(_IOC_SIZE(ACRN_IOCTL_PM_GET_CPU_STATE) == sizeof(__u64), "PM cmd is a u64");
_Static_assert(sizeof(struct acrn_pstate_data) >= sizeof(struct acrn_cstate_data),
	       "the pstate record is the largest PM reply");

#define READS_BACK(req) ((_IOC_DIR(req) & _IOC_READ) != 0)

#define STRUCT(req, nm, type) \
	{ (req), (nm), HSMP_ARG_BUFFER, sizeof(type), READS_BACK(req), HSM_PTR_NONE, 0, 0 }
#define NOARG(req, nm) { (req), (nm), HSMP_ARG_NONE, 0, 0, HSM_PTR_NONE, 0, 0 }

const struct hsm_ioctl_info hsm_ioctls[] = {
	{ ACRN_IOCTL_CREATE_VM, "CREATE_VM", HSMP_ARG_BUFFER, sizeof(struct acrn_vm_creation),
	  READS_BACK(ACRN_IOCTL_CREATE_VM), HSM_PTR_IOREQ_BUF, EINVAL, 0 },
	NOARG(ACRN_IOCTL_DESTROY_VM, "DESTROY_VM"),
	NOARG(ACRN_IOCTL_START_VM, "START_VM"),
	NOARG(ACRN_IOCTL_PAUSE_VM, "PAUSE_VM"),
	NOARG(ACRN_IOCTL_RESET_VM, "RESET_VM"),
	STRUCT(ACRN_IOCTL_SET_VCPU_REGS, "SET_VCPU_REGS", struct acrn_vcpu_regs),
	STRUCT(ACRN_IOCTL_INJECT_MSI, "INJECT_MSI", struct acrn_msi_entry),
	/* The argument is a user address, passed as a value (§7.3). */
	{ ACRN_IOCTL_VM_INTR_MONITOR, "VM_INTR_MONITOR", HSMP_ARG_VALUE, 0, 0, HSM_PTR_VALUE_PAGE,
	  EFAULT, 0 },
	/* The argument is the packed {gsi, op} value itself (§7.1). */
	{ ACRN_IOCTL_SET_IRQLINE, "SET_IRQLINE", HSMP_ARG_VALUE, 0, 0, HSM_PTR_NONE, 0, 0 },
	STRUCT(ACRN_IOCTL_NOTIFY_REQUEST_FINISH, "NOTIFY_REQUEST_FINISH",
	       struct acrn_ioreq_notify),
	NOARG(ACRN_IOCTL_CREATE_IOREQ_CLIENT, "CREATE_IOREQ_CLIENT"),
	/* Sleeps until a request is pending or the client is destroyed (§4.7). */
	{ ACRN_IOCTL_ATTACH_IOREQ_CLIENT, "ATTACH_IOREQ_CLIENT", HSMP_ARG_NONE, 0, 0, HSM_PTR_NONE,
	  0, 1 },
	NOARG(ACRN_IOCTL_DESTROY_IOREQ_CLIENT, "DESTROY_IOREQ_CLIENT"),
	NOARG(ACRN_IOCTL_CLEAR_VM_IOREQ, "CLEAR_VM_IOREQ"),
	{ ACRN_IOCTL_SET_MEMSEG, "SET_MEMSEG", HSMP_ARG_BUFFER, sizeof(struct acrn_vm_memmap), 0,
	  HSM_PTR_MEMSEG_RAM, EFAULT, 0 },
	STRUCT(ACRN_IOCTL_UNSET_MEMSEG, "UNSET_MEMSEG", struct acrn_vm_memmap),
	STRUCT(ACRN_IOCTL_SET_PTDEV_INTR, "SET_PTDEV_INTR", struct acrn_ptdev_irq),
	STRUCT(ACRN_IOCTL_RESET_PTDEV_INTR, "RESET_PTDEV_INTR", struct acrn_ptdev_irq),
	STRUCT(ACRN_IOCTL_ASSIGN_PCIDEV, "ASSIGN_PCIDEV", struct acrn_pcidev),
	STRUCT(ACRN_IOCTL_DEASSIGN_PCIDEV, "DEASSIGN_PCIDEV", struct acrn_pcidev),
	STRUCT(ACRN_IOCTL_ASSIGN_MMIODEV, "ASSIGN_MMIODEV", struct acrn_mmiodev),
	STRUCT(ACRN_IOCTL_DEASSIGN_MMIODEV, "DEASSIGN_MMIODEV", struct acrn_mmiodev),
	STRUCT(ACRN_IOCTL_CREATE_VDEV, "CREATE_VDEV", struct acrn_vdev),
	STRUCT(ACRN_IOCTL_DESTROY_VDEV, "DESTROY_VDEV", struct acrn_vdev),
	STRUCT(ACRN_IOCTL_PM_GET_CPU_STATE, "PM_GET_CPU_STATE", struct acrn_pstate_data),
	STRUCT(ACRN_IOCTL_IOEVENTFD, "IOEVENTFD", struct acrn_ioeventfd),
	STRUCT(ACRN_IOCTL_IRQFD, "IRQFD", struct acrn_irqfd),
};

const unsigned int hsm_ioctl_count = sizeof(hsm_ioctls) / sizeof(hsm_ioctls[0]);

const struct hsm_ioctl_info *hsm_ioctl_lookup(uint32_t request)
{
	for (unsigned int i = 0; i < hsm_ioctl_count; i++)
		if (hsm_ioctls[i].request == request)
			return &hsm_ioctls[i];
	return NULL;
}

uint32_t hsm_pm_reply_size(uint64_t cmd)
{
	switch (cmd & 0xff) {
	case ACRN_PMCMD_GET_PX_CNT:
	case ACRN_PMCMD_GET_CX_CNT:
		return 8;
	case ACRN_PMCMD_GET_PX_DATA:
		return sizeof(struct acrn_pstate_data);
	case ACRN_PMCMD_GET_CX_DATA:
		return sizeof(struct acrn_cstate_data);
	default:
		return 0;
	}
}
