/*
 * The shim's shared-memory transport (helper/SHIM.md, "The ring"): two single-producer,
 * single-consumer byte rings in one shared file, carrying exactly the frames that would
 * otherwise cross the unix socket. Both sides poll while calls keep coming, so a call
 * costs no sleep and no system call; a side that stops polling says so (its `idle`
 * word), and the other then rings its doorbell: one byte on the unix socket, which
 * stays open for that and for telling that the peer is gone.
 *
 * The file is a memfd of the shimmed process, sealed against shrinking and growing (so
 * neither side can pull the pages from under the other: SIGBUS); the server opens it as
 * /proc/PID/fd/N. Used by libhsm-shim.so (the process side) and by build/hsm_ring.node
 * (the Node.js addon of the server side, hsm-ring-addon.c). Header-only, C11 atomics.
 *
 * Layout (every counter a free-running u32 byte count; each on its own cache line so
 * the two sides do not false-share):
 *
 *   0     magic "HSMR", version, size of each ring (a power of two), 0
 *   64    up.tail     shim -> server ring, written by the shim
 *   128   up.head     ... consumed by the server
 *   192   down.tail   server -> shim ring, written by the server
 *   256   down.head   ... consumed by the shim
 *   320   server_idle 1: the server is not polling, the shim rings the doorbell
 *   384   shim_idle   1: the shim is not polling, the server rings the doorbell
 *   448   shim_sleeper  non-zero (a thread id): a caller of the shim sleeps on shim_bell
 *   512   shim_bell     a futex word: a server that finds the shim idle and a sleeper
 *                     there bumps it and wakes it (FUTEX_WAKE on the shared page) instead
 *                     of writing its doorbell; the sleeper then drains the ring, and the
 *                     shim's reader thread stays asleep. A server that does not know it
 *                     rings the socket: the reader then hands the reply over on the word.
 *   4096  up bytes, then down bytes
 */
#ifndef HSM_RING_H
#define HSM_RING_H

#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/futex.h>

#define HSM_RING_MAGIC 0x524d5348u /* "HSMR" */
#define HSM_RING_VERSION 1u
#define HSM_RING_DATA_OFFSET 4096u
#define HSM_RING_MIN_SIZE 4096u
#define HSM_RING_MAX_SIZE (1u << 26)
/* What the shim asks for: a frame of the largest payload fits whole. */
#define HSM_RING_DEFAULT_SIZE (2u << 20)

struct hsm_ring_shared {
	uint32_t magic;
	uint32_t version;
	uint32_t size;
	uint32_t reserved;
	uint8_t pad0[48];
	_Atomic uint32_t up_tail;
	uint8_t pad1[60];
	_Atomic uint32_t up_head;
	uint8_t pad2[60];
	_Atomic uint32_t down_tail;
	uint8_t pad3[60];
	_Atomic uint32_t down_head;
	uint8_t pad4[60];
	_Atomic uint32_t server_idle;
	uint8_t pad5[60];
	_Atomic uint32_t shim_idle;
	uint8_t pad6[60];
	_Atomic uint32_t shim_sleeper;
	uint8_t pad7[60];
	_Atomic uint32_t shim_bell;
	uint8_t pad8[60];
};

_Static_assert(sizeof(struct hsm_ring_shared) == 576, "ring header layout");
_Static_assert(offsetof(struct hsm_ring_shared, up_tail) == 64, "ring header layout");
_Static_assert(offsetof(struct hsm_ring_shared, shim_idle) == 384, "ring header layout");
_Static_assert(offsetof(struct hsm_ring_shared, shim_bell) == 512, "ring header layout");

static inline size_t hsm_ring_file_size(uint32_t size)
{
	return (size_t)HSM_RING_DATA_OFFSET + 2 * (size_t)size;
}

static inline int hsm_ring_size_ok(uint32_t size)
{
	return size >= HSM_RING_MIN_SIZE && size <= HSM_RING_MAX_SIZE && (size & (size - 1)) == 0;
}

/*
 * One direction, seen from one side. Each side keeps its own index (`mine`: the tail of
 * a producer, the head of a consumer) and only publishes it: the shared copy is never
 * read back, and the peer's index is loaded once per operation and checked, so a peer
 * that writes nonsense into the file cannot make this side copy outside the ring.
 */
struct hsm_ring_end {
	_Atomic uint32_t *tail;
	_Atomic uint32_t *head;
	uint8_t *data;
	uint32_t size;
	uint32_t mine;
};

static inline struct hsm_ring_end hsm_ring_up(struct hsm_ring_shared *s, uint32_t size, int producer)
{
	struct hsm_ring_end e = { &s->up_tail, &s->up_head, (uint8_t *)s + HSM_RING_DATA_OFFSET,
				  size, 0 };
	e.mine = atomic_load_explicit(producer ? e.tail : e.head, memory_order_relaxed);
	return e;
}

static inline struct hsm_ring_end hsm_ring_down(struct hsm_ring_shared *s, uint32_t size,
						int producer)
{
	struct hsm_ring_end e = { &s->down_tail, &s->down_head,
				  (uint8_t *)s + HSM_RING_DATA_OFFSET + size, size, 0 };
	e.mine = atomic_load_explicit(producer ? e.tail : e.head, memory_order_relaxed);
	return e;
}

/* Consumer: is there anything to take (or a broken peer to find out about)? */
static inline int hsm_ring_has_input(const struct hsm_ring_end *e)
{
	return atomic_load_explicit(e->tail, memory_order_acquire) != e->mine;
}

/*
 * Producer: copy up to n bytes in; how many fit, or -1 when the consumer's head is not
 * one it could have (the peer is broken). The bytes are the consumer's once the tail
 * moves (release).
 */
static inline int64_t hsm_ring_put(struct hsm_ring_end *e, const uint8_t *p, uint32_t n)
{
	uint32_t used = e->mine - atomic_load_explicit(e->head, memory_order_acquire);
	if (used > e->size)
		return -1;
	uint32_t room = e->size - used;
	if (n > room)
		n = room;
	if (n == 0)
		return 0;
	uint32_t at = e->mine & (e->size - 1);
	uint32_t first = e->size - at < n ? e->size - at : n;
	memcpy(e->data + at, p, first);
	memcpy(e->data, p + first, n - first);
	e->mine += n;
	atomic_store_explicit(e->tail, e->mine, memory_order_release);
	return n;
}

/* Consumer: copy up to n bytes out; how many, or -1 for a tail the peer could not have. */
static inline int64_t hsm_ring_take(struct hsm_ring_end *e, uint8_t *p, uint32_t n)
{
	uint32_t have = atomic_load_explicit(e->tail, memory_order_acquire) - e->mine;
	if (have > e->size)
		return -1;
	if (n > have)
		n = have;
	if (n == 0)
		return 0;
	uint32_t at = e->mine & (e->size - 1);
	uint32_t first = e->size - at < n ? e->size - at : n;
	memcpy(p, e->data + at, first);
	memcpy(p + first, e->data, n - first);
	e->mine += n;
	atomic_store_explicit(e->head, e->mine, memory_order_release);
	return n;
}

/*
 * The idle handshake (Dekker's): a side going idle stores its flag and then looks at
 * its input; a producer stores its tail and then looks at the consumer's flag. With a
 * full fence between store and load on both sides, at least one of them sees the
 * other: either the idle side finds the new bytes, or the producer rings the doorbell.
 */
static inline int hsm_ring_go_idle(_Atomic uint32_t *idle, const struct hsm_ring_end *input)
{
	atomic_store_explicit(idle, 1, memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);
	if (hsm_ring_has_input(input)) {
		atomic_store_explicit(idle, 0, memory_order_relaxed);
		return 0; /* input came meanwhile: go on polling */
	}
	return 1;
}

static inline int hsm_ring_peer_idle(_Atomic uint32_t *peer_idle)
{
	atomic_thread_fence(memory_order_seq_cst);
	return atomic_load_explicit(peer_idle, memory_order_relaxed) != 0;
}

/* Ring the bell: a sleeper's FUTEX_WAIT on the count it read before returns. */
static inline void hsm_ring_ring_bell(struct hsm_ring_shared *s)
{
	atomic_fetch_add(&s->shim_bell, 1);
	syscall(SYS_futex, &s->shim_bell, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/*
 * The server's side of the bell, after its frames went in: 0 the shim polls, 1 a caller
 * asleep on shim_bell was woken (shared futex: the shim waits on its own mapping), 2 the
 * shim needs its socket doorbell (its reader thread sleeps in recv).
 */
static inline int hsm_ring_wake_shim(struct hsm_ring_shared *s)
{
	if (!hsm_ring_peer_idle(&s->shim_idle))
		return 0;
	if (!atomic_load(&s->shim_sleeper))
		return 2;
	hsm_ring_ring_bell(s);
	return 1;
}

static inline void hsm_ring_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

#endif /* HSM_RING_H */
