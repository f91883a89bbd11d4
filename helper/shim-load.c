/*
 * shim-load: how fast can any program drive the simulation through the device shim?
 * THREADS threads each issue CALLS NOTIFY_REQUEST_FINISH ioctls on one VM that has no
 * default client (HSM's no-op, §4.7), so the figure is the cost of the shim's path alone:
 * no hsm-helper, no frame protocol. `npm run bench -- native` runs it beside the helper to
 * tell which part of a shimmed ioctl's cost is the helper's and which the shim's.
 *
 *   LD_PRELOAD=build/libhsm-shim.so HSM_SHIM_SOCKET=PATH build/shim-load THREADS CALLS
 *
 * Prints one line: `calls C seconds S per_second R switches_per_call X`, where switches are
 * the process's voluntary and involuntary context switches (getrusage) over the run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <linux/acrn.h>

#define MAX_THREADS 256

static int hsm_fd;
static long calls_per_thread;
static struct acrn_io_request_buffer ioreq_page __attribute__((aligned(4096)));

static void *issue(void *arg)
{
	(void)arg;
	struct acrn_ioreq_notify notify;
	memset(&notify, 0, sizeof(notify));
	for (long i = 0; i < calls_per_thread; i++) {
		if (ioctl(hsm_fd, ACRN_IOCTL_NOTIFY_REQUEST_FINISH, &notify) < 0) {
			fprintf(stderr, "shim-load: NOTIFY_REQUEST_FINISH: %s\n", strerror(errno));
			exit(1);
		}
	}
	return NULL;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long switches(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return u.ru_nvcsw + u.ru_nivcsw;
}

int main(int argc, char **argv)
{
	long threads = argc == 3 ? strtol(argv[1], NULL, 10) : 0;
	calls_per_thread = argc == 3 ? strtol(argv[2], NULL, 10) : 0;
	if (threads < 1 || threads > MAX_THREADS || calls_per_thread < 1) {
		fprintf(stderr, "usage: shim-load THREADS(1-%d) CALLS_PER_THREAD\n", MAX_THREADS);
		return 2;
	}
	hsm_fd = open("/dev/acrn_hsm", O_RDWR | O_CLOEXEC);
	if (hsm_fd < 0) {
		fprintf(stderr, "shim-load: /dev/acrn_hsm: %s\n", strerror(errno));
		return 1;
	}
	struct acrn_vm_creation vm;
	memset(&vm, 0, sizeof(vm));
	vm.ioreq_buf = (__u64)(unsigned long)&ioreq_page;
	vm.cpu_affinity = 1 << 1; /* pCPU 1: pCPU 0 belongs to the Service VM */
	if (ioctl(hsm_fd, ACRN_IOCTL_CREATE_VM, &vm) < 0) {
		fprintf(stderr, "shim-load: CREATE_VM: %s\n", strerror(errno));
		return 1;
	}

	pthread_t tids[MAX_THREADS];
	long before = switches();
	double start = now();
	for (long i = 0; i < threads; i++) {
		int err = pthread_create(&tids[i], NULL, issue, NULL);
		if (err) {
			fprintf(stderr, "shim-load: pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	for (long i = 0; i < threads; i++)
		pthread_join(tids[i], NULL);
	double seconds = now() - start;
	long total = threads * calls_per_thread;
	printf("calls %ld seconds %.6f per_second %.0f switches_per_call %.2f\n", total, seconds,
	       (double)total / seconds, (double)(switches() - before) / (double)total);
	/* Closing the fd releases the VM (§1.5), but the hypervisor destroys only a paused VM
	 * (A.3): without the pause it would be orphaned. */
	if (ioctl(hsm_fd, ACRN_IOCTL_PAUSE_VM, 0) < 0) {
		fprintf(stderr, "shim-load: PAUSE_VM: %s\n", strerror(errno));
		return 1;
	}
	close(hsm_fd);
	return 0;
}
