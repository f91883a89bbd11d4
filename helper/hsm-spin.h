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
 * Used by libhsm-shim.so (a call waiting for its reply) and hsm_kvm.node (a vCPU thread
 * waiting for its exit's completion), and the floors that wait as they do (frame-floor,
 * kvm-floor). Header-only.
 */
#ifndef HSM_SPIN_H
#define HSM_SPIN_H

#include <sched.h>
#include <stdint.h>
#include <time.h>

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
