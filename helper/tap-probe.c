/*
 * tap-probe: the calls test/core/native/tap.test.ts makes under the tap (TAP.md) that the
 * sample clients do not: a bad argument pointer, an ACRN ioctl on a file that is not the
 * HSM, a dup of the HSM fd, a value ioctl, an unknown request, and a forked child. Each
 * call's result is printed, `NAME RESULT ERRNO`, so the test can hold the tap's log
 * against what the program saw.
 *
 *   tap-probe [--device PATH]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/acrn.h>

static struct acrn_io_request_buffer ioreq_page __attribute__((aligned(4096)));

static void say(const char *what, int ret)
{
	printf("%s %d %d\n", what, ret, ret < 0 ? errno : 0);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *device = argc == 3 && strcmp(argv[1], "--device") == 0 ? argv[2] : "/dev/acrn_hsm";
	setvbuf(stdout, NULL, _IOLBF, 0);
	int fd = open(device, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "tap-probe: %s: %s\n", device, strerror(errno));
		return 1;
	}
	struct acrn_vm_creation vm;
	memset(&vm, 0, sizeof(vm));
	memcpy(&vm.uuid, "probe", 5); /* the name (A.1) */
	vm.ioreq_buf = (__u64)(unsigned long)&ioreq_page;
	vm.cpu_affinity = 1 << 1;
	say("CREATE_VM", ioctl(fd, ACRN_IOCTL_CREATE_VM, &vm));
	printf("vmid %u\n", vm.vmid);

	/* a pointer the kernel cannot read: EFAULT, and the tap must not crash */
	say("NOTIFY_REQUEST_FINISH", ioctl(fd, ACRN_IOCTL_NOTIFY_REQUEST_FINISH, (void *)8));
	/* ACRN's type on a file that is not the HSM: passed on, not traced */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	say("null PAUSE_VM", ioctl(null, ACRN_IOCTL_PAUSE_VM, 0));
	close(null);
	/* a value ioctl: GSI 4 (§7.1) */
	say("SET_IRQLINE", ioctl(fd, ACRN_IOCTL_SET_IRQLINE, (unsigned long)((0ull << 32) | 4)));
	/* a request the HSM does not know (§1.6) */
	say("unknown", ioctl(fd, _IO(ACRN_IOCTL_TYPE, 0x7f), 0));
	/* a dup shares the VM (§1.4): traced too */
	int copy = dup(fd);
	say("dup PAUSE_VM", ioctl(copy, ACRN_IOCTL_PAUSE_VM, 0));
	close(copy);

	pid_t child = fork();
	if (child == 0) {
		/* a child of its own: under the shim its copy of the fd is a plain /dev/null */
		say("child PAUSE_VM", ioctl(fd, ACRN_IOCTL_PAUSE_VM, 0));
		exit(0); /* not _exit: the tap sends what it holds at exit */
	}
	int status = 0;
	waitpid(child, &status, 0);
	printf("child %d\n", (int)child);
	say("DESTROY_VM", ioctl(fd, ACRN_IOCTL_DESTROY_VM, 0));
	close(fd);
	return 0;
}
