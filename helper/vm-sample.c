/*
 * vm-sample: a minimal VMM for the ACRN HSM, following the flow of the kernel's
 * samples/acrn/vm-sample.c as spec/hsm-behaviour.md §9 describes it (this is our own
 * code, not a copy): create a VM with 1 MiB of RAM at GPA 0, start its BSP in real mode at
 * address 0, create the default ioreq client, then serve port I/O (print each request,
 * complete it) until SIGINT pauses the VM and destroys it.
 *
 * Unlike the original it checks every call, zeroes notify.reserved (§9.2 10: the original
 * leaves it uninitialised, and a non-zero value makes NOTIFY fail with EINVAL), answers
 * PIO reads with 0xff bytes rather than whatever the slot held, and ships no 16-bit
 * payload of its own: `--payload FILE` loads one (a flat real-mode binary, like the
 * original's built-in one) at GPA 0, and on the simulation the vCPU executes it; without
 * one, `hsmctl guest access` plays the guest.
 *
 *   vm-sample [--device PATH] [--payload FILE] [--name NAME]
 *                                 default /dev/acrn_hsm, no payload, no name
 *
 * --name gives the VM a name: CREATE_VM's 16 "uuid" bytes, which the hypervisor reads as
 * the VM's name (A.1), at most 15 bytes and a NUL.
 *
 * Under the device shim: LD_PRELOAD=helper/build/libhsm-shim.so HSM_SHIM_SOCKET=...
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/acrn.h>

#define GUEST_MEMORY_SIZE (1024 * 1024)
#define PAGE_SIZE 4096

/* The ioreq page: 16 slots of 256 bytes, slot i for vCPU i (§4.1). */
static struct acrn_io_request_buffer io_req_buf __attribute__((aligned(PAGE_SIZE)));

static int hsm_fd = -1;
static uint16_t vmid;
static volatile sig_atomic_t is_running = 1;

static void report(const char *what, int ret)
{
	if (ret < 0)
		printf("%s failed: %s\n", what, strerror(errno));
	else
		printf("%s [%d]\n", what, ret);
	fflush(stdout);
}

/* SIGINT: stop the loop; pause the VM (destroy needs PAUSED, A.3) and end ATTACH (§4.7). */
static void vm_exit(int sig)
{
	(void)sig;
	is_running = 0;
	int saved = errno;
	ioctl(hsm_fd, ACRN_IOCTL_PAUSE_VM, (unsigned long)vmid);
	ioctl(hsm_fd, ACRN_IOCTL_DESTROY_IOREQ_CLIENT, 0);
	errno = saved;
}

int main(int argc, char **argv)
{
	const char *device = "/dev/acrn_hsm";
	const char *payload = NULL;
	const char *name = "";
	for (int i = 1; i < argc; i += 2) {
		if (i + 1 < argc && strcmp(argv[i], "--device") == 0) {
			device = argv[i + 1];
		} else if (i + 1 < argc && strcmp(argv[i], "--payload") == 0) {
			payload = argv[i + 1];
		} else if (i + 1 < argc && strcmp(argv[i], "--name") == 0 &&
			   strlen(argv[i + 1]) < sizeof(((struct acrn_vm_creation *)0)->uuid)) {
			name = argv[i + 1];
		} else {
			fprintf(stderr,
				"usage: vm-sample [--device PATH] [--payload FILE] [--name NAME (<= 15 bytes)]\n");
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	void *guest_memory;
	int err = posix_memalign(&guest_memory, PAGE_SIZE, GUEST_MEMORY_SIZE);
	if (err) {
		fprintf(stderr, "vm-sample: cannot allocate guest memory: %s\n", strerror(err));
		return 1;
	}
	memset(guest_memory, 0, GUEST_MEMORY_SIZE);
	if (payload) {
		FILE *f = fopen(payload, "rb");
		if (!f) {
			fprintf(stderr, "vm-sample: cannot open %s: %s\n", payload, strerror(errno));
			return 1;
		}
		size_t n = fread(guest_memory, 1, GUEST_MEMORY_SIZE, f);
		int more = fgetc(f) != EOF;
		fclose(f);
		if (more) {
			fprintf(stderr, "vm-sample: %s is larger than the guest's %d bytes of RAM\n",
				payload, GUEST_MEMORY_SIZE);
			return 1;
		}
		printf("loaded %zu bytes of %s at GPA 0\n", n, payload);
	}

	hsm_fd = open(device, O_RDWR | O_CLOEXEC);
	if (hsm_fd < 0) {
		fprintf(stderr, "vm-sample: cannot open %s: %s\n", device, strerror(errno));
		return 1;
	}

	struct acrn_vm_creation create;
	memset(&create, 0, sizeof(create));
	memcpy(&create.uuid, name, strlen(name)); /* the VM's name (A.1), NUL-padded */
	create.ioreq_buf = (uint64_t)(uintptr_t)&io_req_buf;
	int ret = ioctl(hsm_fd, ACRN_IOCTL_CREATE_VM, &create);
	report("Created VM!", ret);
	if (ret < 0)
		return 1;
	vmid = create.vmid;
	uint16_t vcpu_num = create.vcpu_num;
	printf("vmid %u, %u vCPU%s\n", vmid, vcpu_num, vcpu_num == 1 ? "" : "s");

	/* 1 MiB of RAM at GPA 0, pinned by the kernel (§3.4 B). */
	struct acrn_vm_memmap ram;
	memset(&ram, 0, sizeof(ram));
	ram.type = ACRN_MEMMAP_RAM;
	ram.vma_base = (uint64_t)(uintptr_t)guest_memory;
	ram.len = GUEST_MEMORY_SIZE;
	ram.user_vm_pa = 0;
	ram.attr = ACRN_MEM_ACCESS_RWX;
	ret = ioctl(hsm_fd, ACRN_IOCTL_SET_MEMSEG, &ram);
	report("Set up VM memory!", ret);

	/* Real mode, CS base 0, IP 0: the guest starts at GPA 0 (§9.2 step 6). */
	struct acrn_vcpu_regs regs;
	memset(&regs, 0, sizeof(regs));
	regs.vcpu_id = 0;
	regs.vcpu_regs.cr0 = 0x30;
	regs.vcpu_regs.cs_ar = 0x009f;
	regs.vcpu_regs.cs_sel = 0xf000;
	regs.vcpu_regs.cs_limit = 0xffff;
	regs.vcpu_regs.cs_base = 0 & 0xffff0000;
	regs.vcpu_regs.rip = 0 & 0xffff;
	ret = ioctl(hsm_fd, ACRN_IOCTL_SET_VCPU_REGS, &regs);
	report("Set up VM BSP registers!", ret);

	ret = ioctl(hsm_fd, ACRN_IOCTL_CREATE_IOREQ_CLIENT, 0);
	report("Created IO request client!", ret);

	ret = ioctl(hsm_fd, ACRN_IOCTL_START_VM, (unsigned long)vmid);
	report("Start VM!", ret);

	signal(SIGINT, vm_exit);

	while (is_running) {
		/* Blocks until a request is pending; 0 after a signal, ENODEV once the client is
		 * gone (our SIGINT handler). Any other failure (the device gone: EIO under the
		 * shim when its server went away) would make this loop spin: stop instead. */
		if (ioctl(hsm_fd, ACRN_IOCTL_ATTACH_IOREQ_CLIENT, 0) < 0 && is_running) {
			printf("ATTACH_IOREQ_CLIENT failed: %s\n", strerror(errno));
			return 1;
		}
		for (uint16_t vcpu = 0; vcpu < vcpu_num && vcpu < ACRN_IO_REQUEST_MAX; vcpu++) {
			struct acrn_io_request *req = &io_req_buf.req_slot[vcpu];
			uint32_t state = __atomic_load_n(&req->processed, __ATOMIC_ACQUIRE);
			if (state != ACRN_IOREQ_STATE_PROCESSING || req->kernel_handled ||
			    req->type != ACRN_IOREQ_TYPE_PORTIO)
				continue;
			struct acrn_pio_request *pio = &req->reqs.pio_request;
			if (pio->direction == ACRN_IOREQ_DIR_READ) {
				/* Nothing behind the port: all ones, as an empty bus reads. */
				pio->value = pio->size >= 4 ? 0xffffffffu : (1u << (8 * pio->size)) - 1;
				printf("Guest VM read PIO[0x%llx] with size[0x%llx]\n",
				       (unsigned long long)pio->address,
				       (unsigned long long)pio->size);
			} else {
				printf("Guest VM write PIO[0x%llx] with size[0x%llx] value[0x%x]\n",
				       (unsigned long long)pio->address,
				       (unsigned long long)pio->size, pio->value);
			}
			struct acrn_ioreq_notify notify;
			memset(&notify, 0, sizeof(notify)); /* reserved must be 0 (§4.7) */
			notify.vmid = vmid;
			notify.vcpu = vcpu;
			if (ioctl(hsm_fd, ACRN_IOCTL_NOTIFY_REQUEST_FINISH, &notify) < 0)
				printf("NOTIFY_REQUEST_FINISH failed: %s\n", strerror(errno));
		}
	}

	/* Paused by the handler, so the hypervisor lets it go (A.3). */
	ret = ioctl(hsm_fd, ACRN_IOCTL_DESTROY_VM, 0);
	report("Destroy VM!", ret);
	close(hsm_fd);
	free(guest_memory);
	return ret < 0 ? 1 : 0;
}
