/*
 * build/kvm-floor: the floor the CPU engine's benchmark is measured against (issue 10,
 * "Benchmarks"): a bare C program on /dev/kvm, one vCPU, the in-kernel irqchip (as the
 * engine has), and the smallest possible loop around KVM_RUN. Nothing here is hsmctl.
 *
 *   kvm-floor out N        the guest does N `out 0x80, al`; each is KVM_RUN -> PIO exit ->
 *                          resume. Prints {"guest":"out","count":N,"seconds":T}
 *   kvm-floor compute N    the guest counts ECX down from N (dec/jnz) and then does one
 *                          `out 0x81`. Prints {"guest":"compute","count":N,"seconds":T,
 *                          "cpu_seconds":C} (C: the CPU time of the thread running it)
 *   kvm-floor dump out|compute   the guest's bytes, raw, on stdout: the engine's bench
 *                          (scripts/bench/kvm.js) runs exactly these bytes
 *   kvm-floor host N       the compute guest's loop run natively on the host, for scale.
 *                          Prints {"guest":"host","count":N,"seconds":T}
 *   kvm-floor handoff N    the out guest, with each exit handed to a second thread that
 *                          completes it, as the engine (hsm-kvm-addon.c) hands every exit
 *                          to the main thread, where the simulated hypervisor lives: the
 *                          vCPU thread spins (offering the CPU every 32 rounds) for as long
 *                          as its completions have been coming within (hsm-spin.h, at most
 *                          50 µs), then sleeps on a futex; the completing thread spins for
 *                          200 µs after the last exit, then sleeps until woken; both spin
 *                          only while the machine has a CPU to spare (hsm_spin_allowed),
 *                          as the engine's do. The floor of
 *                          any path whose exits a model on another thread handles: the two
 *                          crossings with nothing done between them.
 *                          Prints {"guest":"handoff","count":N,"exits":E,"seconds":T}
 *
 * Both guests are 16-bit real-mode code at GPA 0 (CS base 0, IP 0) with ECX = N; both end
 * with `out 0x81, al` and then halt.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hsm-spin.h"
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
	fprintf(stderr, "usage: kvm-floor out|compute|host|handoff COUNT\n       kvm-floor dump out|compute\n");
	return 2;
}

/* ---- handoff: the engine's crossing of each exit to another thread and back ---- */

/* The engine's constants (hsm-kvm-addon.c spin_ns, hsm_relax() and its learned spin; kvm.ts
 * SPIN_WINDOW_NS): the floor crosses as the engine does. */
#define VCPU_SPIN_NS 50000ULL
#define MAIN_WINDOW_NS 200000ULL

static void futex_wait(_Atomic uint32_t *word, uint32_t value)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

struct handoff {
	int vcpu;
	struct kvm_run *run;
	_Atomic uint32_t posted;   /* bumped by the vCPU thread for each exit */
	_Atomic uint32_t done;     /* bumped by the completing thread for each completion */
	_Atomic int32_t main_sleeps;
	_Atomic int32_t vcpu_sleeps;
	_Atomic int32_t finished;
	unsigned long exits;
};

/* Wait until *word != seen: spin until `deadline`, then sleep on the futex (flag says so). */
static void await_change(_Atomic uint32_t *word, uint32_t seen, uint64_t deadline,
			 _Atomic int32_t *sleeps)
{
	/* as the engine's pollers: only with a CPU to spare (hsm_spin_allowed) */
	if (deadline > hsm_now_ns() && hsm_spin_allowed()) {
		for (unsigned i = 0;; i++) {
			if (atomic_load(word) != seen)
				return;
			if ((i & 15) == 15 && hsm_now_ns() >= deadline)
				break;
			hsm_relax(i);
		}
	}
	while (atomic_load(word) == seen) {
		atomic_store(sleeps, 1);
		if (atomic_load(word) == seen)
			futex_wait(word, seen);
		atomic_store(sleeps, 0);
	}
}

static void bump(_Atomic uint32_t *word, _Atomic int32_t *sleeps)
{
	atomic_fetch_add(word, 1);
	if (atomic_load(sleeps))
		futex_wake(word);
}

static void *handoff_vcpu(void *arg)
{
	struct handoff *h = arg;
	/* as the engine's vCPU thread: the most until it has learned (hsm-kvm-addon.c) */
	uint64_t budget = VCPU_SPIN_NS;
	for (;;) {
		if (ioctl(h->vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			die("KVM_RUN");
		}
		if (h->run->exit_reason != KVM_EXIT_IO) {
			fprintf(stderr, "kvm-floor: unexpected exit %u\n", h->run->exit_reason);
			exit(1);
		}
		h->exits++;
		if (h->run->io.port == KVM_BENCH_DONE_PORT)
			break;
		uint32_t seen = atomic_load(&h->done);
		uint64_t posted_at = hsm_now_ns();
		bump(&h->posted, &h->main_sleeps);
		await_change(&h->done, seen, posted_at + budget, &h->vcpu_sleeps);
		hsm_spin_learn(&budget, hsm_now_ns() - posted_at, VCPU_SPIN_NS);
	}
	atomic_store(&h->finished, 1);
	bump(&h->posted, &h->main_sleeps);
	return NULL;
}

/* The completing thread: every exit posted is completed at once, nothing else done. */
static void handoff_complete(struct handoff *h)
{
	uint32_t seen = 0;
	while (!atomic_load(&h->finished)) {
		await_change(&h->posted, seen, hsm_now_ns() + MAIN_WINDOW_NS, &h->main_sleeps);
		seen = atomic_load(&h->posted);
		if (atomic_load(&h->finished))
			break;
		bump(&h->done, &h->vcpu_sleeps);
	}
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
	bool handoff = strcmp(argv[1], "handoff") == 0;
	const struct kvm_bench_guest *guest =
		kvm_bench_guest(handoff ? "out" : argv[strcmp(argv[1], "dump") == 0 ? 2 : 1]);
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
	struct timespec cpu0;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
	if (handoff) {
		struct handoff h = { .vcpu = vcpu, .run = run };
		pthread_t thread;
		if ((errno = pthread_create(&thread, NULL, handoff_vcpu, &h)) != 0)
			die("pthread_create");
		handoff_complete(&h);
		pthread_join(thread, NULL);
		printf("{\"guest\":\"handoff\",\"count\":%lu,\"exits\":%lu,\"seconds\":%.6f}\n",
		       count, h.exits, now() - start);
		return 0;
	}
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
	struct timespec cpu1;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1);
	double cpu = (double)(cpu1.tv_sec - cpu0.tv_sec) + (double)(cpu1.tv_nsec - cpu0.tv_nsec) / 1e9;
	printf("{\"guest\":\"%s\",\"count\":%lu,\"exits\":%lu,\"seconds\":%.6f,\"cpu_seconds\":%.6f}\n",
	       guest->name, count, exits, seconds, cpu);
	return 0;
}
