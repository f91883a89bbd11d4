/*
 * The lane (SHIM.md, "The lane"): a page the shimmed program and hsmd share for one VM
 * whose default ioreq client is that program and whose vCPUs execute on KVM. Through it
 * a vCPU's port I/O reaches the program, and the program's answer the vCPU, without
 * hsmd's JavaScript: the vCPU thread (hsm-kvm-addon.c) fills the slot and dispatches the
 * request to the default client as HSM's dispatch would (§4.3: no kernel client's range
 * holds the port, not 0xCF8/0xCFC-0xCFF), and the shim (hsm-shim.c) serves
 * ATTACH_IOREQ_CLIENT and NOTIFY_REQUEST_FINISH from the page (§4.7). Everything else,
 * and every case the lane does not cover, still goes to the model over the ring; the
 * model reads the client's pending bits from here while the lane is on
 * (src/core/sim/lane.ts), so both ways see one ioreqs_map.
 *
 * Words are 32-bit, little-endian, changed with atomics; the futexes are shared ones
 * (the page is a file both processes map). Header-only.
 */
#ifndef HSM_LANE_H
#define HSM_LANE_H

#include <limits.h>
#include <linux/acrn.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define HSM_LANE_MAGIC 0x454e414cu /* "LANE" */
#define HSM_LANE_VERSION 1u
/* The ioreq page's slots (ACRN_IO_REQUEST_MAX): vCPUs beyond them have no slot. */
#define HSM_LANE_SLOTS 16u
#define HSM_LANE_SIZE 65536u

/* state: anything but ON sends every call over the ring again. OFF: the client was
 * destroyed (an ATTACH asleep on the lane returns ENODEV); GONE: the server ended the
 * program's session (it returns EIO, as every call does from then on). */
enum { HSM_LANE_OFF = 0, HSM_LANE_ON = 1, HSM_LANE_GONE = 2 };

struct hsm_lane {
	uint32_t magic;             /* 0: written by the shim */
	uint32_t version;           /* 4 */
	_Atomic uint32_t state;     /* 8: written by hsmd */
	_Atomic uint32_t pending;   /* 12: the default client's ioreqs_map (§4.3) */
	_Atomic uint32_t bell;      /* 16: futex: bumped when pending gains a bit or state changes */
	_Atomic uint32_t sleepers;  /* 20: the program's threads asleep on bell (ATTACH) */
	uint32_t vcpu_num;          /* 24: written by hsmd before state goes ON */
	uint32_t reserved;          /* 28 */
	/* 1 while slot i's request went out through the lane: its vCPU thread finishes it. */
	_Atomic uint32_t owner[HSM_LANE_SLOTS];   /* 32 */
	/* futex: bumped when slot i's request completes, or its vCPU thread has other news. */
	_Atomic uint32_t done[HSM_LANE_SLOTS];    /* 96 */
	/* slot i's vCPU thread is asleep on done[i] */
	_Atomic uint32_t waiting[HSM_LANE_SLOTS]; /* 160 */
	/* The calls the shim answered, for the server's ioctl log (`hsmctl ioctl log`): a ring
	 * of HSM_LANE_CALLS records the shim writes (head) and the server reads (tail), only
	 * while the server wants them (calls_wanted). While the ring is full the shim sends its
	 * calls over the ring, where the server logs them itself: none is lost. */
	_Atomic uint32_t calls_head;   /* 224 */
	_Atomic uint32_t calls_tail;   /* 228 */
	_Atomic uint32_t calls_lost;   /* 232 */
	_Atomic uint32_t calls_wanted; /* 236 */
};
_Static_assert(sizeof(struct hsm_lane) == 240, "lane layout (src/core/sim/lane.ts)");

#define HSM_LANE_CALLS_AT 1024u
#define HSM_LANE_CALLS 1024u
struct hsm_lane_call {
	uint32_t request;
	int32_t result;
	uint32_t error;
	uint32_t reserved;
	uint8_t arg[8];       /* NOTIFY's struct acrn_ioreq_notify as the program passed it */
	uint64_t started_ns;  /* CLOCK_MONOTONIC */
	uint64_t duration_ns;
	uint64_t reserved2;
};
_Static_assert(sizeof(struct hsm_lane_call) == 48, "lane call layout (src/core/sim/lane.ts)");
_Static_assert(HSM_LANE_CALLS_AT + HSM_LANE_CALLS * sizeof(struct hsm_lane_call) <= HSM_LANE_SIZE,
	       "the calls fit the page");

/* Slot i of the ioreq page at `page` (§4.1), and its `processed` word, changed atomically. */
static inline struct acrn_io_request *hsm_lane_slot(void *page, unsigned i)
{
	return &((struct acrn_io_request_buffer *)page)->req_slot[i];
}

static inline _Atomic uint32_t *hsm_lane_processed(void *page, unsigned i)
{
	return (_Atomic uint32_t *)&hsm_lane_slot(page, i)->processed;
}

static inline long hsm_lane_futex_wait(_Atomic uint32_t *word, uint32_t value)
{
	return syscall(SYS_futex, word, FUTEX_WAIT, value, NULL, NULL, 0);
}

static inline void hsm_lane_futex_wake(_Atomic uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Slot i completed (or its vCPU thread has news): wake it if it sleeps. */
static inline void hsm_lane_signal_done(struct hsm_lane *lane, unsigned slot)
{
	atomic_fetch_add(&lane->done[slot], 1);
	if (atomic_load(&lane->waiting[slot]))
		hsm_lane_futex_wake(&lane->done[slot]);
}

/* pending gained a bit, or state changed: wake the program's ATTACH sleepers. */
static inline void hsm_lane_ring_bell(struct hsm_lane *lane)
{
	atomic_fetch_add(&lane->bell, 1);
	if (atomic_load(&lane->sleepers))
		hsm_lane_futex_wake(&lane->bell);
}

#endif
