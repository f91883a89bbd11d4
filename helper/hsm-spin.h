/*
 * How long a waiter polls before it sleeps, learned from its own waits (SHIM.md "Cost"):
 * the rule of the kernel's haltpoll cpuidle governor. After each wait, whose whole length
 * (spin, sleep and wake-up) was `waited`:
 *  - longer than the most it may spin (`max`): no spin could have caught it: the budget
 *    halves, and drops to 0 below HSM_SPIN_GROW_START_NS;
 *  - within max but past the budget (it slept, and a longer spin would have caught the
 *    answer): the budget doubles, from HSM_SPIN_GROW_START_NS, up to max;
 *  - within the budget: it stays.
 * So a waiter whose peer answers quickly keeps spinning (neither side sleeps or wakes),
 * and one whose peer answers late sleeps at once and leaves the CPU to the threads that
 * have work: on a machine with more runnable threads than CPUs the peer is often the very
 * thread that waits for the CPU a spinner holds, and its answer then comes only after the
 * spin, or after a yield that hands the CPU to someone else for a whole time slice.
 *
 * And, as haltpoll polls only on an idle CPU, a waiter spins only while the machine has a
 * CPU to spare (hsm_spin_allowed: no more runnable threads than CPUs this process may use,
 * and one of ours).
 * On a machine with more runnable threads than CPUs, a spin takes its CPU time from the
 * threads that have work, ours among them (all of one session share one scheduling group,
 * autogroup), and every microsecond spun is one the answer waits: there even a spin that
 * catches its answer costs more than the sleep and wake-up it saves.
 *
 * Used by libhsm-shim.so (a call waiting for its reply) and hsm_kvm.node (a vCPU thread
 * waiting for its exit's completion), and the floors that wait as they do (frame-floor,
 * kvm-floor). Header-only.
 */
#ifndef HSM_SPIN_H
#define HSM_SPIN_H

#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define HSM_SPIN_GROW_START_NS 10000ull

/* The clock every wait here is measured on. */
static inline uint64_t hsm_now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* One round of a spin. Now and then the CPU is offered to another thread: on a machine
 * with more runnable threads than cores, the thread we wait for may be queued behind us. */
static inline void hsm_relax(unsigned round)
{
	if ((round & 31) == 31)
		sched_yield();
#if defined(__x86_64__) || defined(__i386__)
	else
		__builtin_ia32_pause();
#endif
}

/* How often a thread looks again whether the machine has a CPU to spare. */
#define HSM_SPIN_LOOK_NS 1000000ull

/*
 * Whether the machine has a CPU to spare: the runnable threads /proc/loadavg counts (its
 * fourth field, this thread among them) are, on average, no more than the CPUs this process
 * may run on, and one more: the spinner, the peer at work and a third of ours just woken
 * (a vCPU thread, say) do not make a machine busy; other programs' threads do. Looked at
 * once a millisecond per thread (open, read, close: about 2 µs here; no fd is kept, a
 * program may close or reuse any), averaged over the last looks (1/8 each). Raw system
 * calls: the shim intercepts open and read. Spinning stays allowed where /proc cannot be
 * read.
 */
/* Runnable threads beyond the CPUs and one more (0 to 64), or -1 if /proc says nothing. */
static inline long hsm_runnable_excess(void)
{
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/loadavg", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char b[128];
	long n = syscall(SYS_read, fd, b, sizeof(b) - 1);
	syscall(SYS_close, fd);
	if (n <= 0)
		return -1;
	b[n] = 0;
	/* "0.52 0.58 0.59 3/188 4242": the runnable count follows the third space */
	const char *p = b;
	for (int spaces = 0; *p && spaces < 3; p++)
		spaces += *p == ' ';
	long runnable = 0;
	while (*p >= '0' && *p <= '9')
		runnable = runnable * 10 + (*p++ - '0');
	if (*p != '/')
		return -1;
	cpu_set_t set;
	long cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
	/* One beyond the CPUs is ours: the spinner, the peer at work and a third just woken. */
	long excess = runnable > cpus + 1 ? runnable - cpus - 1 : 0;
	return excess > 64 ? 64 : excess;
}

static inline int hsm_spin_allowed(void)
{
	static __thread uint64_t looked_at;
	static __thread int excess_x8; /* the average of hsm_runnable_excess(), times 8 */
	uint64_t now = hsm_now_ns();
	if (now - looked_at >= HSM_SPIN_LOOK_NS) {
		looked_at = now;
		long excess = hsm_runnable_excess();
		/* avg += (excess - avg) / 8, in eighths */
		if (excess >= 0)
			excess_x8 += (int)excess - (excess_x8 + 4) / 8;
	}
	return excess_x8 < 8;
}

static inline void hsm_spin_learn(uint64_t *budget, uint64_t waited, uint64_t max)
{
	uint64_t b = *budget;
	if (waited > max) {
		b /= 2;
		if (b < HSM_SPIN_GROW_START_NS)
			b = 0;
	} else if (waited > b) {
		b = b < HSM_SPIN_GROW_START_NS / 2 ? HSM_SPIN_GROW_START_NS : b * 2;
	}
	*budget = b > max ? max : b;
}

#endif /* HSM_SPIN_H */
