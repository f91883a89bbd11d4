/*
 * build/kvm-floor: the floor the CPU engine's benchmark is measured against (issue 10,
 * "Benchmarks"): a bare C program on /dev/kvm, one vCPU, the in-kernel irqchip (as the
 * engine has), and the smallest possible loop around KVM_RUN. Nothing here is hsmctl.
 *
 *   kvm-floor out N        the guest does N `out 0x80, al`; each is KVM_RUN -> PIO exit ->
 *                          resume. Prints {"guest":"out","count":N,"seconds":T}
 *   kvm-floor compute N    the guest counts ECX down from N (dec/jnz) and then does one
 *                          `out 0x81`. Prints {"guest":"compute","count":N,"seconds":T}
 *   kvm-floor dump out|compute   the guest's bytes, raw, on stdout: the engine's bench
 *                          (scripts/bench/kvm.js) runs exactly these bytes
 *   kvm-floor host N       the compute guest's loop run natively on the host, for scale.
 *                          Prints {"guest":"host","count":N,"seconds":T}
 *
 * Both guests are 16-bit real-mode code at GPA 0 (CS base 0, IP 0) with ECX = N; both end
 * with `out 0x81, al` and then halt.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kvm-bench-guests.h"

#define GUEST_RAM 0x10000

static void die(const char *what)
{
	fprintf(stderr, "kvm-floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int usage(void)
{
	fprintf(stderr, "usage: kvm-floor out|compute|host COUNT\n       kvm-floor dump out|compute\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return usage();
	if (strcmp(argv[1], "host") == 0) {
		char *end;
		unsigned long count = strtoul(argv[2], &end, 0);
		if (*end || count == 0 || count > 0xffffffffUL)
			return usage();
		unsigned int ecx = (unsigned int)count;
		double start = now();
		__asm__ volatile("1: dec %0\n\tjnz 1b" : "+r"(ecx));
		printf("{\"guest\":\"host\",\"count\":%lu,\"seconds\":%.9f}\n", count, now() - start);
		return 0;
	}
	const struct kvm_bench_guest *guest = kvm_bench_guest(argv[strcmp(argv[1], "dump") == 0 ? 2 : 1]);
	if (!guest)
		return usage();
	if (strcmp(argv[1], "dump") == 0) {
		fwrite(guest->bytes, 1, guest->length, stdout);
		return 0;
	}
	char *end;
	unsigned long count = strtoul(argv[2], &end, 0);
	if (*end || count == 0 || count > 0xffffffffUL)
		return usage();

	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0)
		die("KVM_CREATE_IRQCHIP");
	uint8_t *ram = mmap(NULL, GUEST_RAM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED)
		die("mmap");
	memcpy(ram, guest->bytes, guest->length);
	struct kvm_userspace_memory_region slot = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = GUEST_RAM, .userspace_addr = (uintptr_t)ram
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		die("KVM_SET_USER_MEMORY_REGION");
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("KVM_CREATE_VCPU");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		die("mmap kvm_run");

	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		die("KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	struct kvm_regs regs = { .rip = 0, .rflags = 2, .rcx = count };
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		die("KVM_SET_REGS");

	unsigned long exits = 0;
	double start = now();
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			die("KVM_RUN");
		}
		if (run->exit_reason != KVM_EXIT_IO) {
			fprintf(stderr, "kvm-floor: unexpected exit %u\n", run->exit_reason);
			return 1;
		}
		exits++;
		if (run->io.port == KVM_BENCH_DONE_PORT)
			break;
	}
	double seconds = now() - start;
	printf("{\"guest\":\"%s\",\"count\":%lu,\"exits\":%lu,\"seconds\":%.6f}\n", guest->name, count,
	       exits, seconds);
	return 0;
}
