/*
 * libhsm-shim.so: LD_PRELOAD it into any program and that program's /dev/acrn_hsm
 * (HSM_SHIM_DEVICE) is a simulated platform served on the unix socket HSM_SHIM_SOCKET by
 * `hsmctl sim serve --socket PATH` or `hsmctl daemon run --serve-sim PATH`.
 *
 * open/openat of the device path connects (once per process) and opens an fd in the
 * server; the process gets a placeholder fd (/dev/null) standing for it. ioctl, close,
 * dup and fcntl(F_DUPFD) on placeholders are forwarded as helper frames (PROTOCOL.md,
 * extended by hsm-shim.h and SHIM.md). What the kernel shares with a process through
 * pointers and fds is emulated:
 *  - RAM segments (§3.4) are shared: the program's RAM is a file (its own MAP_SHARED file,
 *    or a memfd that private memory is turned into, in place: hsm-shim-ram.c) that the
 *    server maps too (SHARE), so the guest, hsmd and the program use the same bytes;
 *  - the ioreq page (§2.2) and the monitor page (§7.3) are mirrored: the server keeps its
 *    own pages, and both sides send the bytes they changed since the last exchange (DIFF
 *    frames; a shadow copy per region says what changed), around every call;
 *  - eventfds named in IOEVENTFD/IRQFD become server-side eventfds; ioeventfd signals are
 *    written to the process's eventfd, and the process's write(2) to one is forwarded
 *    before write returns, so an irqfd injects synchronously as in the kernel (§6.3).
 *
 * The frames cross in a shared-memory ring when the server takes one (ring_offer, SHIM.md
 * "The ring"): a caller polls for its own reply, so a call costs no sleep; the socket is
 * left for doorbells and for telling that the server is gone.
 *
 * Nothing here is the kernel's code; the behaviour follows spec/hsm-behaviour.md.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/acrn.h>
#include <linux/futex.h>
#include <linux/kcmp.h>

#include "hsm-ioctls.h"
#include "hsm-lane.h"
#include "hsm-protocol.h"
#include "hsm-ring.h"
#include "hsm-shim.h"
#include "hsm-shim-node.h"
#include "hsm-shim-ram.h"
#include "hsm-spin.h"

#define EXPORT __attribute__((visibility("default")))

#define PAGE 4096ull
#define PAGE_FLOOR(a) ((a) & ~(PAGE - 1))
/* fds this high or higher are never placeholders or tracked eventfds. */
#define FD_LIMIT 65536
#define MAX_WAITERS 256
#define MAX_REGIONS 4096
#define MAX_EVENTFDS 1024
/* Private dups of tracked eventfds sit at or above this number, out of the program's way. */
#define PRIVATE_FD_MIN 64

/* ------------------------------------------------------------------------------------ */
/* The real functions.                                                                   */

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real___open_2)(const char *, int);
static int (*real___open64_2)(const char *, int);
static int (*real___openat_2)(int, const char *, int);
static int (*real___openat64_2)(int, const char *, int);
static int (*real_close)(int);
static int (*real_ioctl)(int, unsigned long, ...);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static int (*real_fcntl)(int, int, ...);
static int (*real_fcntl64)(int, int, ...);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_eventfd_read)(int, eventfd_t *);
static int (*real_eventfd_write)(int, eventfd_t);

#define RESOLVE(name)                                                          \
	do {                                                                   \
		if (!real_##name)                                              \
			*(void **)(&real_##name) = dlsym(RTLD_NEXT, #name);    \
	} while (0)

static void resolve_all(void)
{
	RESOLVE(open);
	RESOLVE(open64);
	RESOLVE(openat);
	RESOLVE(openat64);
	RESOLVE(__open_2);
	RESOLVE(__open64_2);
	RESOLVE(__openat_2);
	RESOLVE(__openat64_2);
	RESOLVE(close);
	RESOLVE(ioctl);
	RESOLVE(dup);
	RESOLVE(dup2);
	RESOLVE(dup3);
	RESOLVE(fcntl);
	RESOLVE(fcntl64);
	RESOLVE(read);
	RESOLVE(write);
	RESOLVE(eventfd_read);
	RESOLVE(eventfd_write);
}

/* Raw syscalls where a libc function might be missing or interposed (early start-up). */
static ssize_t sys_read(int fd, void *buf, size_t n)
{
	return real_read ? real_read(fd, buf, n) : syscall(SYS_read, fd, buf, n);
}

static ssize_t sys_write(int fd, const void *buf, size_t n)
{
	return real_write ? real_write(fd, buf, n) : syscall(SYS_write, fd, buf, n);
}

static int sys_close(int fd)
{
	return real_close ? real_close(fd) : (int)syscall(SYS_close, fd);
}

static int sys_open(const char *path, int flags)
{
	return (int)syscall(SYS_openat, AT_FDCWD, path, flags, 0);
}

static int sys_dupfd(int fd, int min)
{
	return (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, min);
}

/* ------------------------------------------------------------------------------------ */
/* Configuration and state.                                                              */

static const char *device_path = "/dev/acrn_hsm";
static const char *socket_path;

/* Serialises frames on the socket and every table below (except the waiters). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* The waiter table: the reader thread hands replies over under it. */
static pthread_mutex_t wlock = PTHREAD_MUTEX_INITIALIZER;

enum conn_state { CONN_NONE = 0, CONN_UP = 1, CONN_LOST = -1 };
static int conn_state;
static int sock = -1;
static uint32_t next_id = 1;

/*
 * The shared-memory ring (hsm-ring.h, SHIM.md "The ring"). NULL: every frame goes on the
 * socket. Set once, before the reader thread starts, and only cleared in a forked child.
 */
static struct hsm_ring_shared *ring;
static size_t ring_length;
static struct hsm_ring_end ring_out, ring_in;
/* The consumer of the server's ring: a caller waiting for its reply, or the reader. */
static pthread_mutex_t rdlock = PTHREAD_MUTEX_INITIALIZER;
/* The server's frames being put together (rdlock held). */
static uint8_t *rx;
static size_t rx_len;
#define RX_CAP (HSMP_HEADER_SIZE + HSMP_MAX_PAYLOAD)
/* Set when the connection is lost: a sender waiting for room gives up. */
static atomic_int ring_lost;
/*
 * The longest a caller polls for its reply before it sleeps (HSM_SHIM_SPIN_US). Polling
 * saves a sleep and a wake-up when the answer comes within microseconds; a longer poll
 * only holds a CPU the server may be waiting for. A blocking call (ATTACH) does not poll
 * (BLOCKING_SPIN_NS): its answer waits for a guest's vCPU thread to run and exit, and on
 * a machine with few CPUs the poll holds the CPU that thread needs (SHIM.md, "Cost").
 */
static uint64_t spin_ns = 50000;
#define BLOCKING_SPIN_NS 0ull
/* After this long, a poll also yields the CPU: the server may be waiting for it. */
#define SPIN_YIELD_NS 50000ull
/*
 * How long each thread has learned its replies are worth polling for (hsm-spin.h), for
 * blocking calls and the others apart; UINT64_MAX until the first reply (the most). On a
 * machine with more runnable threads than CPUs the answers come late (the server waits
 * for the CPU a polling caller holds), and callers learn to sleep at once.
 */
static __thread uint64_t learned_spin[2] = { UINT64_MAX, UINT64_MAX };
/* HSM_SHIM_TRANSPORT: 0 socket only, 1 ring when the server offers it, 2 ring or warn. */
static int ring_wanted = 1;

enum fd_kind { FDK_NONE = 0, FDK_HSM = 1, FDK_EVENTFD = 2 };
/* Read without the lock on the read/write/close fast paths: a byte per fd. */
static _Atomic uint8_t fd_kind[FD_LIMIT];
/* FDK_HSM: the server's fd; FDK_EVENTFD: the index in eventfds[]. */
static int32_t fd_target[FD_LIMIT];
/* Placeholders per server fd (dup shares the open file description, §1.4). */
static int32_t hsm_refs[FD_LIMIT];

struct tracked_eventfd {
	int used;
	uint64_t id;
	/* A private dup: ioeventfd signals are written to it, and it names the object. */
	int private_fd;
};
static struct tracked_eventfd eventfds[MAX_EVENTFDS];
static uint64_t next_eventfd_id = 1;

struct region {
	uint32_t id;
	uint32_t role; /* 0: a region the server could not take, never used again */
	uint64_t address;
	uint64_t length;
	/* RAM (shared, never mirrored): the file and where the range is in it... */
	uint64_t dev, ino, file_offset;
	/* ...and the memfd private memory was turned into, kept open to be named again. */
	int fd;
	/* ioreq and monitor pages (mirrored): */
	uint8_t *shadow; /* the bytes both sides agreed on at the last exchange */
	uint8_t *now;    /* live pages only: their bytes as read with the call's argument */
	int now_valid;
	int gone; /* the process unmapped it: not read again until it is declared again */
};
static struct region regions[MAX_REGIONS];
static uint32_t region_count;
static uint32_t next_region = 1;

struct waiter {
	int used;
	uint32_t id;
	atomic_int done;
	/* Its caller sleeps on the ring's bell (ring_sleep), not on wake_fd. */
	atomic_int on_bell;
	int wake_fd;
	int64_t result;
	int32_t error;
	uint8_t flags;
	uint8_t *payload;
	uint32_t capacity;
	uint32_t length;
};
static struct waiter waiters[MAX_WAITERS];

/* Each calling thread sleeps on an eventfd of its own; closed when the thread ends. */
static __thread int wake_fd = -1;
/* The waiter this thread polls the ring for (ring_lead): its reply needs no wake-up. */
static __thread struct waiter *leading_for;
static pthread_key_t wake_key;
static pthread_once_t wake_once = PTHREAD_ONCE_INIT;

static void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!sys_write(STDERR_FILENO, line, (size_t)n);
}

/* Signals stay blocked while a lock is held: a handler that calls ioctl must not deadlock. */
struct masked {
	sigset_t old;
};

static void mask_signals(struct masked *m)
{
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &m->old);
}

static void unmask_signals(const struct masked *m)
{
	pthread_sigmask(SIG_SETMASK, &m->old, NULL);
}

static void lock_all(struct masked *m)
{
	mask_signals(m);
	pthread_mutex_lock(&lock);
}

static void unlock_all(const struct masked *m)
{
	pthread_mutex_unlock(&lock);
	unmask_signals(m);
}

/* ------------------------------------------------------------------------------------ */
/* Process memory, without faulting on an address the program got wrong.                 */

static int vm_rw_works = 1;
/* getpid() is a system call; the pid only changes in a forked child. */
static pid_t self_pid;

/* Copy up to n bytes at `address` of this process into buf; how many could be read. */
static size_t mem_read(uint64_t address, void *buf, size_t n)
{
	if (n == 0)
		return 0;
	if (vm_rw_works) {
		struct iovec local = { buf, n };
		struct iovec remote = { (void *)(uintptr_t)address, n };
		ssize_t r = process_vm_readv(self_pid, &local, 1, &remote, 1, 0);
		if (r >= 0)
			return (size_t)r;
		if (errno == EFAULT || errno == ESRCH)
			return 0;
		vm_rw_works = 0; /* ENOSYS or EPERM (seccomp): trust the program's pointers */
	}
	if (address == 0)
		return 0;
	memcpy(buf, (const void *)(uintptr_t)address, n);
	return n;
}

static size_t mem_write(uint64_t address, const void *buf, size_t n)
{
	if (n == 0)
		return 0;
	if (vm_rw_works) {
		struct iovec local = { (void *)buf, n };
		struct iovec remote = { (void *)(uintptr_t)address, n };
		ssize_t r = process_vm_writev(self_pid, &local, 1, &remote, 1, 0);
		if (r >= 0)
			return (size_t)r;
		if (errno == EFAULT || errno == ESRCH)
			return 0;
		vm_rw_works = 0;
	}
	if (address == 0)
		return 0;
	memcpy((void *)(uintptr_t)address, buf, n);
	return n;
}

/* [address, address + length) is mapped writable (what pin_user_pages(FOLL_WRITE) needs). */
static int writable_range(uint64_t address, uint64_t length)
{
	if (length == 0 || address + length < address)
		return 0;
	int fd = sys_open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1; /* cannot tell: let the program's pointer stand */
	char buf[8192];
	size_t have = 0;
	uint64_t covered = address;
	int ok = 0, done = 0;
	while (!done) {
		ssize_t n = sys_read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = 0;
		char *line = buf;
		for (;;) {
			char *nl = strchr(line, '\n');
			if (!nl)
				break;
			*nl = 0;
			unsigned long long start, end;
			char perms[8];
			if (sscanf(line, "%llx-%llx %7s", &start, &end, perms) == 3) {
				if (start <= covered && covered < end) {
					if (perms[1] != 'w') {
						done = 1;
						break;
					}
					covered = end;
					if (covered >= address + length) {
						ok = 1;
						done = 1;
						break;
					}
				} else if (start > covered) {
					done = 1; /* a hole */
					break;
				}
			}
			line = nl + 1;
		}
		have = (size_t)(buf + have - line);
		memmove(buf, line, have);
	}
	sys_close(fd);
	return ok;
}

/* ------------------------------------------------------------------------------------ */
/* Frames out: built in a growing buffer, written under the lock in one go.              */

struct builder {
	uint8_t *data;
	size_t len;
	size_t cap;
	int failed;
};

static uint8_t *reserve(struct builder *b, size_t n)
{
	if (b->failed)
		return NULL;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *d = realloc(b->data, cap);
		if (!d) {
			b->failed = 1;
			return NULL;
		}
		b->data = d;
		b->cap = cap;
	}
	uint8_t *at = b->data + b->len;
	b->len += n;
	return at;
}

/* Start a frame; its payload follows with put_*; end_frame fixes the length and check. */
static size_t begin_frame(struct builder *b, uint16_t op, uint32_t id)
{
	size_t at = b->len;
	uint8_t *h = reserve(b, HSMP_HEADER_SIZE);
	if (h) {
		memset(h, 0, HSMP_HEADER_SIZE);
		hsmp_put16(h + HSMP_OFF_OP, op);
		hsmp_put32(h + HSMP_OFF_ID, id);
	}
	return at;
}

static void end_frame(struct builder *b, size_t at)
{
	if (b->failed)
		return;
	uint8_t *h = b->data + at;
	struct hsmp_header hdr = {
		.version = HSMP_VERSION,
		.op = hsmp_get16(h + HSMP_OFF_OP),
		.id = hsmp_get32(h + HSMP_OFF_ID),
		.length = (uint32_t)(b->len - at - HSMP_HEADER_SIZE),
	};
	hsmp_encode_header(h, &hdr);
}

static void put_bytes(struct builder *b, const void *p, size_t n)
{
	uint8_t *at = reserve(b, n);
	if (at && n)
		memcpy(at, p, n);
}

static void put_u32(struct builder *b, uint32_t v)
{
	uint8_t *at = reserve(b, 4);
	if (at)
		hsmp_put32(at, v);
}

static void put_u64(struct builder *b, uint64_t v)
{
	uint8_t *at = reserve(b, 8);
	if (at)
		hsmp_put64(at, v);
}

static void free_builder(struct builder *b)
{
	free(b->data);
	*b = (struct builder){ 0 };
}

/* One byte on the socket: the server's event loop wakes and polls the ring again. */
static void ring_doorbell(void)
{
	uint8_t bell = 1;
	/* EAGAIN: bells are already queued, which wakes it just as well. */
	(void)!send(sock, &bell, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Has the server hung up? (Doorbell bytes stay where they are, for the reader.) */
static int server_gone(void)
{
	struct pollfd p = { .fd = sock, .events = POLLRDHUP };
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Copy frames into the ring (lock held), waiting for room when the server is behind. */
static int ring_send_locked(const uint8_t *p, size_t n)
{
	unsigned rounds = 0;
	while (n > 0) {
		int64_t put = atomic_load(&ring_lost)
				      ? -1
				      : hsm_ring_put(&ring_out, p,
						     n > UINT32_MAX ? UINT32_MAX : (uint32_t)n);
		if (put < 0) {
			/* Lost, or a head the server could not have written: no more calls. */
			atomic_store(&ring_lost, 1);
			errno = EIO;
			return -1;
		}
		p += put;
		n -= (size_t)put;
		if (n == 0)
			break;
		if (hsm_ring_peer_idle(&ring->server_idle))
			ring_doorbell();
		if (++rounds < 1000) {
			hsm_ring_relax();
		} else {
			/* The reader may be the one waiting here (a SYNC): see to a dead server. */
			if (rounds % 64 == 0 && server_gone()) {
				atomic_store(&ring_lost, 1);
				continue;
			}
			struct timespec pause = { 0, 20000 };
			nanosleep(&pause, NULL);
		}
	}
	if (hsm_ring_peer_idle(&ring->server_idle))
		ring_doorbell();
	return 0;
}

/* Write the whole buffer (lock held). 0, or -1 when the server is gone. */
static int send_locked(const struct builder *b)
{
	if (b->failed) {
		errno = ENOMEM;
		return -1;
	}
	if (ring)
		return ring_send_locked(b->data, b->len);
	const uint8_t *p = b->data;
	size_t n = b->len;
	while (n > 0) {
		ssize_t w = send(sock, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Mirrored memory.                                                                      */

static struct region *region_by_id(uint32_t id)
{
	for (uint32_t i = 0; i < region_count; i++)
		if (regions[i].id == id)
			return &regions[i];
	return NULL;
}

/*
 * DIFF frames for the bytes of the region that differ from its shadow (exact byte ranges:
 * sending an unchanged neighbour could undo the other side's concurrent change), and the
 * shadow updated to match. Lock held.
 */
static void emit_diffs(struct builder *b, struct region *r)
{
	uint8_t *cur;
	if (r->now_valid) {
		/* read_with_live_pages() got them with the call's argument */
		cur = r->now;
		r->now_valid = 0;
	} else {
		cur = malloc(r->length);
		if (!cur) {
			b->failed = 1;
			return;
		}
		size_t got = mem_read(r->address, cur, r->length);
		if (got < r->length) {
			free(cur); /* unmapped since: nothing more to share */
			r->gone = 1;
			return;
		}
	}
	if (memcmp(cur, r->shadow, r->length) == 0) {
		if (cur != r->now)
			free(cur);
		return;
	}
	size_t frame = 0, count_at = 0;
	uint32_t count = 0;
	int open = 0;
	size_t i = 0;
	while (i < r->length) {
		/* Skip equal 8-byte words, then equal bytes. */
		while (i + 8 <= r->length && memcmp(cur + i, r->shadow + i, 8) == 0)
			i += 8;
		while (i < r->length && cur[i] == r->shadow[i])
			i++;
		if (i >= r->length)
			break;
		size_t j = i + 1;
		while (j < r->length && cur[j] != r->shadow[j])
			j++;
		/* A range longer than a frame is split (a mirrored page never is one). */
		size_t max_range = HSMP_MAX_PAYLOAD - HSM_SHIM_DIFF_FIXED_SIZE - HSM_SHIM_RANGE_HEADER_SIZE;
		if (j - i > max_range)
			j = i + max_range;
		size_t n = j - i;
		size_t need = HSM_SHIM_RANGE_HEADER_SIZE + n;
		if (open && b->len - frame - HSMP_HEADER_SIZE + need > HSMP_MAX_PAYLOAD) {
			hsmp_put32(b->data + count_at, count);
			end_frame(b, frame);
			open = 0;
		}
		if (!open) {
			frame = begin_frame(b, HSM_SHIM_OP_DIFF, 0);
			put_u32(b, r->id);
			count_at = b->len;
			put_u32(b, 0);
			count = 0;
			open = 1;
		}
		put_u32(b, (uint32_t)i);
		put_u32(b, (uint32_t)n);
		put_bytes(b, cur + i, n);
		if (b->failed)
			break;
		memcpy(r->shadow + i, cur + i, n);
		count++;
		i = j;
	}
	if (open && !b->failed) {
		hsmp_put32(b->data + count_at, count);
		end_frame(b, frame);
	}
	if (cur != r->now)
		free(cur);
}

#define MAX_GATHER 16

/*
 * Copy the ioctl's argument (n bytes at `address`, n may be 0) and the current bytes of
 * every live page (ioreq, monitor) in one process_vm_readv: a system call costs more than
 * the copies. How many argument bytes could be read, as mem_read says. Lock held.
 */
static size_t read_with_live_pages(uint64_t address, void *buf, size_t n)
{
	struct iovec local[MAX_GATHER], remote[MAX_GATHER];
	struct region *read[MAX_GATHER];
	int count = 0, pages = 0;
	size_t total = n;
	if (n) {
		local[0] = (struct iovec){ buf, n };
		remote[0] = (struct iovec){ (void *)(uintptr_t)address, n };
		count = 1;
	}
	for (uint32_t i = 0; i < region_count && vm_rw_works; i++) {
		struct region *r = &regions[i];
		r->now_valid = 0;
		if (!r->shadow || r->gone)
			continue;
		if (count == MAX_GATHER)
			break;
		if (!r->now && !(r->now = malloc(r->length)))
			continue;
		local[count] = (struct iovec){ r->now, r->length };
		remote[count] = (struct iovec){ (void *)(uintptr_t)r->address, r->length };
		read[pages++] = r;
		count++;
		total += r->length;
	}
	if (pages == 0 || !vm_rw_works)
		return mem_read(address, buf, n);
	ssize_t got = process_vm_readv(self_pid, local, (unsigned long)count, remote,
				       (unsigned long)count, 0);
	if (got >= 0 && (size_t)got == total) {
		for (int k = 0; k < pages; k++)
			read[k]->now_valid = 1;
		return n;
	}
	/* Something is not mapped: each on its own (emit_diffs reads the pages). */
	return mem_read(address, buf, n);
}

/* Apply a DIFF frame from the server to process memory and the shadow. Lock held. */
static void apply_diff(const uint8_t *p, uint32_t length)
{
	if (length < HSM_SHIM_DIFF_FIXED_SIZE)
		return;
	struct region *r = region_by_id(hsmp_get32(p));
	uint32_t count = hsmp_get32(p + 4);
	size_t at = HSM_SHIM_DIFF_FIXED_SIZE;
	if (!r)
		return;
	for (uint32_t k = 0; k < count; k++) {
		if (length - at < HSM_SHIM_RANGE_HEADER_SIZE)
			return;
		uint32_t offset = hsmp_get32(p + at), n = hsmp_get32(p + at + 4);
		at += HSM_SHIM_RANGE_HEADER_SIZE;
		if (n > length - at || offset > r->length || n > r->length - offset)
			return;
		mem_write(r->address + offset, p + at, n);
		memcpy(r->shadow + offset, p + at, n);
		at += n;
	}
}

/* The changes of every mirrored region (ioreq, monitor pages; RAM is shared). Lock held. */
static void emit_all_diffs(struct builder *b)
{
	for (uint32_t i = 0; i < region_count; i++)
		if (regions[i].shadow && !regions[i].gone)
			emit_diffs(b, &regions[i]);
}

/*
 * Make sure the server mirrors [address, address + length) for `role`: reuse the region,
 * or declare a new one (MIRROR, then its current bytes as a DIFF from zeros). A range the
 * kernel could not pin (not mapped writable) is not declared: the server then gives the
 * simulation an unmapped address, and the simulated pin fails where the kernel's would.
 * Lock held.
 */
static void declare_region(struct builder *b, uint32_t role, uint64_t address, uint64_t length)
{
	for (uint32_t i = 0; i < region_count; i++) {
		struct region *r = &regions[i];
		if (r->role == role && r->address == address && r->length == length) {
			r->gone = 0; /* mapped again, for another VM say */
			return;
		}
	}
	if (region_count == MAX_REGIONS || length > (1ull << 34) || !writable_range(address, length))
		return;
	uint8_t *shadow = calloc(1, length);
	if (!shadow)
		return;
	struct region *r = &regions[region_count++];
	*r = (struct region){ .id = next_region++, .role = role, .address = address,
			      .length = length, .fd = -1, .shadow = shadow };
	size_t f = begin_frame(b, HSM_SHIM_OP_MIRROR, 0);
	put_u32(b, r->id);
	put_u32(b, role);
	put_u64(b, address);
	put_u64(b, length);
	end_frame(b, f);
	emit_diffs(b, r);
}

/* ------------------------------------------------------------------------------------ */
/* Eventfds named in IOEVENTFD/IRQFD arguments.                                          */

static int is_eventfd(int fd)
{
	char link[64], target[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = 0;
	return strcmp(target, "anon_inode:[eventfd]") == 0;
}

/* A field of /proc/self/fdinfo/FD, parsed in `base`; -1 when absent. */
static int64_t fdinfo_field(int fd, const char *field, int base)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	int f = sys_open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -1;
	ssize_t n = sys_read(f, buf, sizeof(buf) - 1);
	sys_close(f);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	char *at = strstr(buf, field);
	if (!at)
		return -1;
	return (int64_t)strtoull(at + strlen(field), NULL, base);
}

/* Whether two fds are the same open file (kcmp), or else the same eventfd (fdinfo). */
static int same_file(int a, int b)
{
	static int kcmp_works = 1;
	if (kcmp_works) {
		long r = syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, b);
		if (r >= 0)
			return r == 0;
		if (errno == EBADF)
			return 0;
		kcmp_works = 0;
	}
	int64_t ia = fdinfo_field(a, "eventfd-id:", 10), ib = fdinfo_field(b, "eventfd-id:", 10);
	return ia >= 0 && ia == ib;
}

static void track_fd(int fd, int index)
{
	if (fd < 0 || fd >= FD_LIMIT)
		return;
	fd_target[fd] = index;
	atomic_store(&fd_kind[fd], FDK_EVENTFD);
}

/* The tracked eventfd this fd refers to, tracking it (and the fd) if new; -1 on failure. */
static int eventfd_index(int fd)
{
	if (fd < FD_LIMIT && atomic_load(&fd_kind[fd]) == FDK_EVENTFD)
		return fd_target[fd];
	int free_slot = -1;
	for (int i = 0; i < MAX_EVENTFDS; i++) {
		if (!eventfds[i].used) {
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		if (same_file(fd, eventfds[i].private_fd)) {
			track_fd(fd, i);
			return i;
		}
	}
	if (free_slot < 0)
		return -1;
	int private_fd = sys_dupfd(fd, PRIVATE_FD_MIN);
	if (private_fd < 0)
		return -1;
	eventfds[free_slot] = (struct tracked_eventfd){ .used = 1, .id = next_eventfd_id++,
							.private_fd = private_fd };
	track_fd(fd, free_slot);
	return free_slot;
}

/* Say what the process's fd is, before an ioctl whose argument names it. Lock held. */
static void declare_fd(struct builder *b, int32_t fd)
{
	uint32_t kind = HSM_SHIM_FD_NOT_OPEN;
	uint64_t id = 0, count = 0;
	if (fd >= 0 && real_fcntl(fd, F_GETFD) >= 0) {
		if (fd < FD_LIMIT && atomic_load(&fd_kind[fd]) == FDK_HSM) {
			kind = HSM_SHIM_FD_HSM;
			id = (uint64_t)fd_target[fd];
		} else if (is_eventfd(fd)) {
			int i = eventfd_index(fd);
			if (i >= 0) {
				kind = HSM_SHIM_FD_EVENTFD;
				id = eventfds[i].id;
				int64_t c = fdinfo_field(fd, "eventfd-count:", 16);
				count = c > 0 ? (uint64_t)c : 0;
			} else {
				kind = HSM_SHIM_FD_OTHER; /* too many eventfds to track */
			}
		} else {
			kind = HSM_SHIM_FD_OTHER;
		}
	}
	size_t f = begin_frame(b, HSM_SHIM_OP_FD, 0);
	put_u32(b, (uint32_t)fd);
	put_u32(b, kind);
	put_u64(b, id);
	put_u64(b, count);
	end_frame(b, f);
}

/* ------------------------------------------------------------------------------------ */
/* Requests and replies.                                                                 */

static void close_wake_fd(void *fd)
{
	sys_close((int)(intptr_t)fd - 1);
}

static void make_wake_key(void)
{
	pthread_key_create(&wake_key, close_wake_fd);
}

static int thread_wake_fd(void)
{
	if (wake_fd >= 0)
		return wake_fd;
	pthread_once(&wake_once, make_wake_key);
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -1;
	int high = sys_dupfd(fd, PRIVATE_FD_MIN);
	if (high >= 0) {
		sys_close(fd);
		fd = high;
	}
	wake_fd = fd;
	pthread_setspecific(wake_key, (void *)(intptr_t)(fd + 1));
	return fd;
}

/*
 * The ring's bell (hsm-ring.h): one caller at a time sleeps on its futex word, and the
 * server wakes it there, not through the socket, so the reader thread stays asleep.
 * Shared futex operations: the server waits and wakes on its own mapping of the page.
 */
static __thread pid_t bell_tid;

static void ring_bell_wake(void)
{
	hsm_ring_ring_bell(ring);
}

static struct waiter *add_waiter(uint32_t id, uint8_t *payload, uint32_t capacity)
{
	int fd = thread_wake_fd();
	if (fd < 0)
		return NULL;
	pthread_mutex_lock(&wlock);
	for (int i = 0; i < MAX_WAITERS; i++) {
		struct waiter *w = &waiters[i];
		if (w->used)
			continue;
		w->used = 1;
		w->id = id;
		atomic_store(&w->done, 0);
		atomic_store(&w->on_bell, 0);
		w->wake_fd = fd;
		w->result = -1;
		w->error = EIO;
		w->flags = 0;
		w->payload = payload;
		w->capacity = capacity;
		w->length = 0;
		pthread_mutex_unlock(&wlock);
		return w;
	}
	pthread_mutex_unlock(&wlock);
	return NULL;
}

/* Signals already blocked. */
static void remove_waiter_masked(struct waiter *w)
{
	pthread_mutex_lock(&wlock);
	w->used = 0;
	pthread_mutex_unlock(&wlock);
}

static void remove_waiter(struct waiter *w)
{
	struct masked m;
	mask_signals(&m);
	remove_waiter_masked(w);
	unmask_signals(&m);
}

/* Reader side: finish a waiter (wlock held). */
static void complete_waiter(struct waiter *w, const struct hsmp_header *h, const uint8_t *p)
{
	w->result = h->result;
	w->error = h->error;
	w->flags = h->flags;
	uint32_t n = h->length < w->capacity ? h->length : w->capacity;
	if (n && p)
		memcpy(w->payload, p, n);
	w->length = n;
	atomic_store(&w->done, 1);
	/* A caller polling the ring for this very reply sees `done`: no wake-up to send. (Not
	 * any waiter of this thread: a signal handler's call may complete the one its
	 * interrupted caller sleeps on.) */
	if (w != leading_for) {
		if (atomic_load(&w->on_bell)) {
			ring_bell_wake();
		} else {
			uint64_t one = 1;
			(void)!sys_write(w->wake_fd, &one, sizeof(one));
		}
	}
}

static void fail_all_waiters(void)
{
	struct hsmp_header h = { .result = -1, .error = EIO };
	pthread_mutex_lock(&wlock);
	for (int i = 0; i < MAX_WAITERS; i++)
		if (waiters[i].used && !atomic_load(&waiters[i].done))
			complete_waiter(&waiters[i], &h, NULL);
	pthread_mutex_unlock(&wlock);
}

static uint32_t new_id(void)
{
	uint32_t id = next_id++;
	if (next_id == 0)
		next_id = 1;
	return id;
}

struct reply {
	int64_t result;
	int32_t error;
	uint32_t length;
};

static void send_interrupt(void)
{
	struct masked m;
	struct builder b = { 0 };
	size_t f = begin_frame(&b, HSM_SHIM_OP_INTERRUPT, 0);
	end_frame(&b, f);
	lock_all(&m);
	if (conn_state == CONN_UP)
		send_locked(&b);
	unlock_all(&m);
	free_builder(&b);
}

static void ring_lead(struct waiter *w, uint64_t budget);
static int ring_sleep(struct waiter *w);
static void ring_drain_for(struct waiter *w);
static int bell_take(struct waiter *w);
static void bell_release(struct waiter *w);

/*
 * Send the frames in `b` whose last one is the request `id` (already registered as `w`)
 * and wait for its reply. Called with the lock held and signals blocked (`m`); returns
 * with neither. A signal during a blocking call (ATTACH) is passed on as INTERRUPT: in
 * the kernel the wait ends and the ioctl returns 0 (§4.7).
 */
static int finish_call(struct builder *b, struct waiter *w, int blocking, struct reply *out,
		       struct masked *m)
{
	if (ring && bell_tid) {
		/* A signal handler's call, on a thread asleep on the ring's bell: the bell is given
		 * up first, so that the server rings the socket (the reader hands replies over)
		 * until that sleep resumes and takes it again. */
		uint32_t mine = (uint32_t)bell_tid;
		atomic_compare_exchange_strong(&ring->shim_sleeper, &mine, 0);
		bell_tid = 0;
	}
	int sent = conn_state == CONN_UP ? send_locked(b) : -1;
	pthread_mutex_unlock(&lock);
	if (sent < 0) {
		remove_waiter_masked(w);
		unmask_signals(m);
		errno = EIO;
		return -1;
	}
	/* On the ring the caller polls for its reply itself, signals still blocked: a
	 * handler that calls ioctl must not find this thread holding the ring. */
	int masked = 1;
	uint64_t most = blocking && spin_ns > BLOCKING_SPIN_NS ? BLOCKING_SPIN_NS : spin_ns;
	uint64_t *learned = &learned_spin[blocking != 0];
	uint64_t started = ring ? hsm_now_ns() : 0;
	if (ring)
		ring_lead(w, !hsm_spin_allowed() ? 0 : *learned < most ? *learned : most);
	if (!atomic_load(&w->done)) {
		unmask_signals(m);
		masked = 0;
	}
	int interrupted = 0;
	while (!atomic_load(&w->done)) {
		/* On the ring the server wakes this thread itself, on the ring's bell, and it takes
		 * its reply: one wake-up, not two (the reader's, then its hand-over on wake_fd). */
		int r = ring ? ring_sleep(w) : 0;
		if (r == 0) {
			struct pollfd p = { .fd = w->wake_fd, .events = POLLIN };
			r = poll(&p, 1, -1);
			if (r > 0) {
				uint64_t v;
				(void)!sys_read(w->wake_fd, &v, sizeof(v));
			}
		}
		if (r < 0 && errno == EINTR && blocking && !interrupted && !atomic_load(&w->done)) {
			interrupted = 1;
			send_interrupt();
		}
	}
	if (bell_tid)
		bell_release(w);
	if (ring) {
		if (*learned > most)
			*learned = most;
		hsm_spin_learn(learned, hsm_now_ns() - started, most);
	}
	out->result = w->result;
	out->error = w->error;
	out->length = w->length;
	if (masked) {
		remove_waiter_masked(w);
		unmask_signals(m);
	} else {
		remove_waiter(w);
	}
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* The reader thread: replies to waiters, DIFF/SIGNAL/SYNC from the server.               */

static pthread_t reader_thread;

static int read_full(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = sys_read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void handle_sync(uint32_t id, const uint8_t *p, uint32_t length)
{
	struct masked m;
	struct builder b = { 0 };
	lock_all(&m);
	if (length >= HSM_SHIM_SYNC_SIZE && hsmp_get32(p) == HSM_SHIM_SYNC_PULL)
		emit_all_diffs(&b);
	size_t f = begin_frame(&b, HSM_SHIM_OP_SYNC, id);
	end_frame(&b, f);
	send_locked(&b);
	unlock_all(&m);
	free_builder(&b);
}

static void handle_signal(const uint8_t *p, uint32_t length)
{
	if (length < HSM_SHIM_SIGNAL_SIZE)
		return;
	uint64_t id = hsmp_get64(p), value = hsmp_get64(p + 8);
	struct masked m;
	lock_all(&m);
	for (int i = 0; i < MAX_EVENTFDS; i++) {
		if (eventfds[i].used && eventfds[i].id == id) {
			/* The real write: the process's own writes are the ones forwarded. */
			(void)!sys_write(eventfds[i].private_fd, &value, sizeof(value));
			break;
		}
	}
	unlock_all(&m);
}

/* A frame from the server (the reader, or a caller polling the ring). */
static void dispatch(const struct hsmp_header *h, const uint8_t *payload)
{
	switch (h->op) {
	case HSM_SHIM_OP_DIFF: {
		struct masked m;
		lock_all(&m);
		apply_diff(payload, h->length);
		unlock_all(&m);
		break;
	}
	case HSM_SHIM_OP_SIGNAL:
		handle_signal(payload, h->length);
		break;
	case HSM_SHIM_OP_SYNC:
		handle_sync(h->id, payload, h->length);
		break;
	case HSMP_OP_PROTOCOL_ERROR:
		warn("hsm-shim: the server says: %.*s", (int)h->length, (const char *)payload);
		break;
	default:
		pthread_mutex_lock(&wlock);
		for (int i = 0; i < MAX_WAITERS; i++) {
			struct waiter *w = &waiters[i];
			if (w->used && w->id == h->id && !atomic_load(&w->done)) {
				complete_waiter(w, h, payload);
				break;
			}
		}
		pthread_mutex_unlock(&wlock);
	}
}

static void lose_connection(void)
{
	atomic_store(&ring_lost, 1);
	struct masked m;
	lock_all(&m);
	if (conn_state == CONN_UP)
		warn("hsm-shim: lost the connection to %s; HSM calls now fail with EIO", socket_path);
	conn_state = CONN_LOST;
	unlock_all(&m);
	fail_all_waiters();
}

static void *reader_main(void *arg)
{
	(void)arg;
	uint8_t header[HSMP_HEADER_SIZE];
	uint8_t *payload = malloc(HSMP_MAX_PAYLOAD);
	if (!payload)
		goto lost;
	for (;;) {
		struct hsmp_header h;
		if (read_full(sock, header, sizeof(header)) < 0)
			goto lost;
		if (hsmp_decode_header(header, &h) != HSMP_HEADER_OK || h.length > HSMP_MAX_PAYLOAD) {
			warn("hsm-shim: the server at %s sent a bad frame; giving up on it", socket_path);
			goto lost;
		}
		if (read_full(sock, payload, h.length) < 0)
			goto lost;
		dispatch(&h, payload);
	}
lost:
	free(payload);
	lose_connection();
	return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* The ring (SHIM.md, "The ring").                                                       */

/*
 * Take what the server has put in the ring and dispatch every whole frame (rdlock held).
 * -1 when the bytes are not frames: the connection is then given up.
 */
static int drain_ring(void)
{
	for (;;) {
		int64_t got = hsm_ring_take(&ring_in, rx + rx_len, (uint32_t)(RX_CAP - rx_len));
		if (got < 0)
			return -1; /* a tail the server could not have written */
		rx_len += (size_t)got;
		size_t at = 0;
		while (rx_len - at >= HSMP_HEADER_SIZE) {
			struct hsmp_header h;
			if (hsmp_decode_header(rx + at, &h) != HSMP_HEADER_OK ||
			    h.length > HSMP_MAX_PAYLOAD)
				return -1;
			if (rx_len - at < HSMP_HEADER_SIZE + (size_t)h.length)
				break;
			dispatch(&h, rx + at + HSMP_HEADER_SIZE);
			at += HSMP_HEADER_SIZE + (size_t)h.length;
		}
		if (at) {
			memmove(rx, rx + at, rx_len - at);
			rx_len -= at;
		}
		if (got == 0)
			return 0;
	}
}

/* The server's bytes are not frames: close the socket; the reader then gives up. */
static void ring_give_up(void)
{
	warn("hsm-shim: the server at %s sent a bad frame on the ring; giving up on it",
	     socket_path);
	shutdown(sock, SHUT_RDWR);
}

/* Consume the ring until it stays empty, then say so (rdlock held). */
static int drain_until_idle(void)
{
	do {
		if (drain_ring() < 0)
			return -1;
	} while (!hsm_ring_go_idle(&ring->shim_idle, &ring_in));
	return 0;
}

/*
 * Poll the ring for w's reply, for at most spin_ns (signals blocked). Whoever holds
 * rdlock consumes the ring; while a caller does, the server sends no doorbell, so a
 * steady stream of calls costs neither side a sleep or a system call.
 */
/* A bounded poll: spin_more() waits a moment, or says the budget is spent. */
struct spin {
	uint64_t deadline, yield_after;
	unsigned rounds;
};

static struct spin spin_for(uint64_t budget)
{
	uint64_t start = hsm_now_ns();
	struct spin s = { start + budget, start + SPIN_YIELD_NS, 0 };
	return s;
}

static int spin_more(struct spin *s)
{
	/* The clock costs more than a look at the ring: read it every few rounds. */
	if ((++s->rounds & 15) == 0) {
		uint64_t t = hsm_now_ns();
		if (t >= s->deadline)
			return 0;
		if (t >= s->yield_after)
			sched_yield();
	}
	hsm_ring_relax();
	return 1;
}

static void ring_lead(struct waiter *w, uint64_t budget)
{
	struct spin spin = spin_for(budget);
	while (!atomic_load(&w->done)) {
		if (pthread_mutex_trylock(&rdlock) == 0) {
			atomic_store(&ring->shim_idle, 0);
			leading_for = w;
			int bad = 0;
			for (;;) {
				if (drain_ring() < 0) {
					bad = 1;
					break;
				}
				if (atomic_load(&w->done) || !spin_more(&spin))
					break;
			}
			/* Stopping without the reply: the server's next frames ring the bell this
			 * thread will sleep on, not the reader's socket. */
			if (!bad && !atomic_load(&w->done))
				bell_take(w);
			if (!bad)
				bad = drain_until_idle() < 0;
			leading_for = NULL;
			pthread_mutex_unlock(&rdlock);
			if (bad)
				ring_give_up();
			return;
		}
		/* Another thread consumes the ring; it hands our reply over. */
		if (!spin_more(&spin))
			return;
	}
}

/*
 * Take the ring's bell for w's caller (one thread at a time sleeps on it), before the
 * thread stops polling: from then on a server that finds the shim idle rings the bell,
 * not the socket. The count is read now: a ring after it makes the wait return at once.
 */
static __thread uint32_t bell_seq;

static int bell_take(struct waiter *w)
{
	static __thread pid_t tid;
	if (!tid)
		tid = (pid_t)syscall(SYS_gettid);
	uint32_t none = 0;
	if (!atomic_compare_exchange_strong(&ring->shim_sleeper, &none, (uint32_t)tid))
		return 0;
	bell_tid = tid;
	atomic_store(&w->on_bell, 1);
	bell_seq = atomic_load(&ring->shim_bell);
	return 1;
}

static void bell_release(struct waiter *w)
{
	atomic_store(&w->on_bell, 0);
	uint32_t mine = (uint32_t)bell_tid;
	atomic_compare_exchange_strong(&ring->shim_sleeper, &mine, 0);
	bell_tid = 0;
}

/*
 * Sleep on the ring's bell until the server, or a thread that hands the reply over, rings
 * it; then drain the ring as the reader would (its frames for other threads are handed
 * over). 1 when woken, -1 on a signal (EINTR), 0 when another thread has the bell: this
 * one then sleeps on its wake_fd. Signals unblocked, no lock held.
 */
static int ring_sleep(struct waiter *w)
{
	if (!bell_tid && !bell_take(w))
		return 0;
	int r = 1;
	/* A server that put frames in before it could see the bell taken left them for
	 * whoever polls next (the ring is not empty); one after rang it (the count moved, the
	 * wait returns at once). A reply handed over before on_bell was set is done already. */
	if (!atomic_load(&w->done) &&
	    atomic_load(&ring->down_tail) == atomic_load(&ring->down_head) &&
	    syscall(SYS_futex, &ring->shim_bell, FUTEX_WAIT, bell_seq, NULL, NULL, 0) < 0 &&
	    errno == EINTR)
		r = -1;
	bell_release(w);
	/* Drain after every wake-up on the bell, this caller's reply handed over or not: the
	 * server rang the bell (not the reader's socket) for whatever it put in the ring, and
	 * with this thread off the bell nobody else would take it. */
	if (r > 0)
		ring_drain_for(w);
	return r;
}

/*
 * Drain what the server has put in the ring, for w's caller (no lock held, signals
 * unblocked), after whichever thread holds the ring now has let go of it.
 */
static void ring_drain_for(struct waiter *w)
{
	struct masked m;
	mask_signals(&m);
	/* Wait for a thread that holds the ring: it may be past its last look (go_idle), and
	 * what the bell was rung for would then stay in the ring. It holds it only to drain. */
	pthread_mutex_lock(&rdlock);
	atomic_store(&ring->shim_idle, 0);
	leading_for = w;
	int bad = drain_until_idle() < 0;
	leading_for = NULL;
	pthread_mutex_unlock(&rdlock);
	unmask_signals(&m);
	if (bad)
		ring_give_up();
}

/* Nobody polls the ring: the server's doorbell (a byte on the socket) wakes this thread. */
static void *ring_reader_main(void *arg)
{
	(void)arg;
	for (;;) {
		uint8_t bells[64];
		ssize_t r = recv(sock, bells, sizeof(bells), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		pthread_mutex_lock(&rdlock);
		atomic_store(&ring->shim_idle, 0);
		int bad = drain_until_idle() < 0;
		pthread_mutex_unlock(&rdlock);
		if (bad) {
			ring_give_up();
			break;
		}
	}
	lose_connection();
	return NULL;
}

/*
 * Offer the server a ring (socket connected, HELLO answered, no reader yet): a memfd,
 * sealed so that neither side can shrink it under the other, which the server opens as
 * /proc/PID/fd/N while it answers; the fd is closed then (the mapping stays). A server
 * that cannot (an older one, one without build/hsm_ring.node, one not allowed to open
 * our fds) refuses, and the socket carries everything.
 */
static void ring_offer(int s)
{
	uint32_t size = HSM_RING_DEFAULT_SIZE;
	size_t length = hsm_ring_file_size(size);
	char path[64];
	int fd = memfd_create("hsm-shim-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd >= 0) {
		/* Out of the program's way: its next open gets the number it expects. */
		int high = sys_dupfd(fd, PRIVATE_FD_MIN);
		sys_close(fd);
		fd = high;
	}
	void *p = MAP_FAILED;
	uint8_t *buffer = fd >= 0 ? malloc(RX_CAP) : NULL;
	if (buffer && ftruncate(fd, (off_t)length) == 0 &&
	    syscall(SYS_fcntl, fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
		p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		if (ring_wanted > 1)
			warn("hsm-shim: no ring (%s); using the socket alone", strerror(errno));
		if (fd >= 0)
			sys_close(fd);
		free(buffer);
		return;
	}
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)self_pid, fd);
	struct hsm_ring_shared *shared = p;
	shared->magic = HSM_RING_MAGIC;
	shared->version = HSM_RING_VERSION;
	shared->size = size;
	/* Neither side polls yet: each rings the other's doorbell. */
	atomic_store(&shared->server_idle, 1);
	atomic_store(&shared->shim_idle, 1);

	struct builder b = { 0 };
	size_t f = begin_frame(&b, HSM_SHIM_OP_RING, new_id());
	put_u32(&b, size);
	put_u32(&b, 0);
	put_bytes(&b, path, strlen(path));
	end_frame(&b, f);
	int ok = send_locked(&b) == 0;
	free_builder(&b);
	uint8_t header[HSMP_HEADER_SIZE];
	char message[512];
	struct hsmp_header h = { 0 };
	ok = ok && read_full(s, header, sizeof(header)) == 0 &&
	     hsmp_decode_header(header, &h) == HSMP_HEADER_OK && h.op == HSM_SHIM_OP_RING &&
	     h.length <= HSMP_MAX_PAYLOAD;
	/* The answer's text: what fits is kept for the warning, the rest read and dropped. */
	size_t kept = 0;
	for (uint32_t left = ok ? h.length : 0; ok && left > 0;) {
		char scrap[512];
		size_t n = left < sizeof(scrap) ? left : sizeof(scrap);
		ok = read_full(s, (uint8_t *)scrap, n) == 0;
		if (ok && kept < sizeof(message)) {
			size_t c = n < sizeof(message) - kept ? n : sizeof(message) - kept;
			memcpy(message + kept, scrap, c);
			kept += c;
		}
		left -= (uint32_t)n;
	}
	sys_close(fd);
	if (ok && h.result == 0) {
		ring = shared;
		ring_length = length;
		ring_out = hsm_ring_up(shared, size, 1);
		ring_in = hsm_ring_down(shared, size, 0);
		rx = buffer;
		rx_len = 0;
		return;
	}
	munmap(p, length);
	free(buffer);
	if (!ok) {
		/* The socket is out of step now: nothing more can go on it. */
		warn("hsm-shim: %s did not answer the ring offer", socket_path);
		shutdown(s, SHUT_RDWR);
	} else if (ring_wanted > 1) {
		warn("hsm-shim: the server refused the ring (%s: %.*s); using the socket alone",
		     strerror(h.error), (int)kept, message);
	}
}

/* Connect and greet the server, once per process (lock held). 0 or -1 with errno. */
static int connect_locked(void)
{
	if (conn_state == CONN_UP)
		return 0;
	if (conn_state == CONN_LOST) {
		errno = EIO;
		return -1;
	}
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(socket_path) >= sizeof(addr.sun_path)) {
		warn("hsm-shim: HSM_SHIM_SOCKET is longer than a unix socket path may be");
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, socket_path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	int high = sys_dupfd(s, PRIVATE_FD_MIN);
	if (high >= 0) {
		sys_close(s);
		s = high;
	}
	if (connect(s, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int e = errno;
		warn("hsm-shim: cannot connect to %s (%s); is `hsmctl sim serve --socket %s` running?",
		     socket_path, strerror(e), socket_path);
		sys_close(s);
		errno = e;
		return -1;
	}
	/* HELLO before the reader thread exists: read the reply right here. */
	char program[HSM_SHIM_MAX_PROGRAM + 1] = "";
	int cf = sys_open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
	if (cf >= 0) {
		ssize_t n = sys_read(cf, program, HSM_SHIM_MAX_PROGRAM);
		sys_close(cf);
		if (n > 0) {
			program[n] = 0;
			program[strcspn(program, "\n")] = 0;
		}
	}
	struct builder b = { 0 };
	size_t f = begin_frame(&b, HSM_SHIM_OP_HELLO, new_id());
	put_u32(&b, (uint32_t)getpid());
	put_u32(&b, 0);
	put_bytes(&b, program, strlen(program));
	end_frame(&b, f);
	sock = s;
	int ok = send_locked(&b) == 0;
	free_builder(&b);
	uint8_t header[HSMP_HEADER_SIZE];
	struct hsmp_header h;
	uint8_t skip[HSMP_HELLO_FIXED_SIZE + HSMP_MAX_PATH];
	if (ok && read_full(s, header, sizeof(header)) == 0 &&
	    hsmp_decode_header(header, &h) == HSMP_HEADER_OK && h.op == HSM_SHIM_OP_HELLO &&
	    h.result == 0 && h.length <= sizeof(skip) && read_full(s, skip, h.length) == 0) {
		conn_state = CONN_UP;
		if (ring_wanted)
			ring_offer(s);
	} else {
		warn("hsm-shim: %s did not answer HELLO as an hsmctl simulation server", socket_path);
		sock = -1;
		sys_close(s);
		errno = EPROTO;
		return -1;
	}
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* The reader never takes a signal: they go to the threads that may be in a call. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = pthread_create(&reader_thread, &attr, ring ? ring_reader_main : reader_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (e) {
		conn_state = CONN_LOST;
		errno = e;
		return -1;
	}
	return 0;
}

/* One request and its reply. */
static int call(uint16_t op, const void *payload, uint32_t length, struct reply *out)
{
	struct masked m;
	struct builder b = { 0 };
	lock_all(&m);
	if (conn_state != CONN_UP) {
		unlock_all(&m);
		errno = EIO;
		return -1;
	}
	uint32_t id = new_id();
	struct waiter *w = add_waiter(id, NULL, 0);
	if (!w) {
		unlock_all(&m);
		errno = EAGAIN;
		return -1;
	}
	size_t f = begin_frame(&b, op, id);
	put_bytes(&b, payload, length);
	end_frame(&b, f);
	int r = finish_call(&b, w, 0, out, &m);
	free_builder(&b);
	return r;
}

/* A frame that gets no reply. */
static void notify(uint16_t op, const void *payload, uint32_t length)
{
	struct masked m;
	struct builder b = { 0 };
	size_t f = begin_frame(&b, op, 0);
	put_bytes(&b, payload, length);
	end_frame(&b, f);
	lock_all(&m);
	if (conn_state == CONN_UP)
		send_locked(&b);
	unlock_all(&m);
	free_builder(&b);
}

/* ------------------------------------------------------------------------------------ */
/* Placeholders for HSM fds.                                                             */

/* The name older kernels gave the device (the VHM); acrn-dm tries it first. */
#define LEGACY_DEVICE "/dev/acrn_vhm"

/* openat: only an absolute path can name the device whatever the directory fd. */
int shim_is_device_path(const char *path, int absolute)
{
	return socket_path && path && (!absolute || path[0] == '/') &&
	       strcmp(path, device_path) == 0;
}

/* Answered as missing, so that a program falls through to the simulated device. */
int shim_is_hidden_path(const char *path, int absolute)
{
	return socket_path && path && (!absolute || path[0] == '/') &&
	       strcmp(path, LEGACY_DEVICE) == 0 && strcmp(device_path, LEGACY_DEVICE) != 0;
}

int shim_active(void)
{
	return socket_path != NULL;
}

const char *shim_device_path(void)
{
	return device_path;
}

static int is_hsm(int fd)
{
	return fd >= 0 && fd < FD_LIMIT && atomic_load(&fd_kind[fd]) == FDK_HSM;
}

int shim_is_placeholder(int fd)
{
	return is_hsm(fd);
}

static int shim_open(int flags)
{
	struct masked m;
	lock_all(&m);
	int r = connect_locked();
	unlock_all(&m);
	if (r < 0)
		return -1;
	struct reply rep;
	const char *path = device_path;
	if (call(HSMP_OP_OPEN, path, (uint32_t)strlen(path), &rep) < 0)
		return -1;
	if (rep.result < 0) {
		errno = rep.error;
		return -1;
	}
	int32_t sim_fd = (int32_t)rep.result;
	/* The fd the program holds: /dev/null, which behaves like a file with no read or mmap. */
	int fd = sys_open("/dev/null", O_RDWR | (flags & O_CLOEXEC));
	if (fd < 0 || fd >= FD_LIMIT || sim_fd < 0 || sim_fd >= FD_LIMIT) {
		int e = fd < 0 ? errno : EMFILE;
		uint8_t c[HSMP_CLOSE_SIZE] = { 0 };
		hsmp_put32(c, (uint32_t)sim_fd);
		call(HSMP_OP_CLOSE, c, sizeof(c), &rep);
		if (fd >= 0)
			sys_close(fd);
		errno = e;
		return -1;
	}
	lock_all(&m);
	fd_target[fd] = sim_fd;
	hsm_refs[sim_fd]++;
	atomic_store(&fd_kind[fd], FDK_HSM);
	unlock_all(&m);
	return fd;
}

/*
 * `closing` is going away: if no other fd of the process refers to the eventfd object, the
 * server may drop it (which releases its irqfd, §6.4). Lock held.
 */
static void maybe_release_eventfd(struct builder *b, int index, int closing)
{
	for (int fd = 0; fd < FD_LIMIT; fd++)
		if (fd != closing && atomic_load(&fd_kind[fd]) == FDK_EVENTFD &&
		    fd_target[fd] == index)
			return;
	/* Fds the shim never saw (dup'ed without it, inherited) still hold the object. */
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		struct dirent *e;
		int dir_fd = dirfd(d);
		while ((e = readdir(d))) {
			int fd = atoi(e->d_name);
			if (e->d_name[0] == '.' || fd == dir_fd || fd == closing ||
			    fd == eventfds[index].private_fd)
				continue;
			if (is_eventfd(fd) && same_file(fd, eventfds[index].private_fd)) {
				track_fd(fd, index);
				closedir(d);
				return;
			}
		}
		closedir(d);
	}
	size_t f = begin_frame(b, HSM_SHIM_OP_EFD_RELEASE, 0);
	put_u64(b, eventfds[index].id);
	end_frame(b, f);
	sys_close(eventfds[index].private_fd);
	eventfds[index].used = 0;
}

/*
 * The program no longer has `fd` (closed, or replaced by dup2): forget it. Returns the
 * server fd to close when it was the last placeholder of one, else -1. Lock held.
 */
static int32_t forget_fd(struct builder *b, int fd)
{
	if (fd < 0 || fd >= FD_LIMIT)
		return -1;
	uint8_t kind = atomic_exchange(&fd_kind[fd], FDK_NONE);
	if (kind == FDK_HSM) {
		int32_t sim_fd = fd_target[fd];
		if (--hsm_refs[sim_fd] == 0)
			return sim_fd;
	} else if (kind == FDK_EVENTFD) {
		maybe_release_eventfd(b, fd_target[fd], fd);
	}
	return -1;
}

/* Close a server fd and wait: its release (§1.5) is done when close returns. */
static void lane_forget(int32_t sim_fd);

static void close_sim_fd(int32_t sim_fd)
{
	if (sim_fd < 0)
		return;
	lane_forget(sim_fd);
	uint8_t c[HSMP_CLOSE_SIZE] = { 0 };
	hsmp_put32(c, (uint32_t)sim_fd);
	struct reply rep;
	call(HSMP_OP_CLOSE, c, sizeof(c), &rep);
}

/* After a dup of `oldfd` to `newfd`: `newfd` stands for the same thing. */
static void after_dup(int oldfd, int newfd)
{
	if (newfd < 0 || oldfd < 0 || oldfd >= FD_LIMIT || newfd >= FD_LIMIT)
		return;
	struct masked m;
	lock_all(&m);
	uint8_t kind = atomic_load(&fd_kind[oldfd]);
	if (kind == FDK_HSM) {
		fd_target[newfd] = fd_target[oldfd];
		hsm_refs[fd_target[oldfd]]++;
		atomic_store(&fd_kind[newfd], FDK_HSM);
	} else if (kind == FDK_EVENTFD) {
		track_fd(newfd, fd_target[oldfd]);
	}
	unlock_all(&m);
}

/* The bookkeeping of a close (or a dup2 that replaces `fd`); then the real close, if any. */
static int close_tracked(int fd, int really)
{
	struct masked m;
	struct builder b = { 0 };
	lock_all(&m);
	int32_t sim_fd = forget_fd(&b, fd);
	if (b.len && conn_state == CONN_UP)
		send_locked(&b);
	unlock_all(&m);
	free_builder(&b);
	int r = really ? real_close(fd) : 0;
	int e = errno;
	close_sim_fd(sim_fd);
	errno = e;
	return r;
}

/* ------------------------------------------------------------------------------------ */
/* ioctl on a placeholder.                                                               */

/*
 * SET_MEMSEG of RAM (§3.4 B): the range becomes a file the server maps too (SHARE), so
 * the pages the simulation pins are the program's own, as the kernel's pin would make
 * them. Done before the ioctl, outside the lock (it may copy memory and waits for the
 * server). A range that cannot be shared is not declared: the server then hands the
 * simulation an address it has not mapped, and the pin fails where the kernel's would.
 */
static void share_range(uint32_t role, uint64_t address, uint64_t length);

static void share_ram(unsigned long arg)
{
	struct acrn_vm_memmap m;
	if (mem_read(arg, &m, sizeof(m)) < sizeof(m) || m.type != ACRN_MEMMAP_RAM)
		return;
	uint64_t address = PAGE_FLOOR(m.vma_base), pages = m.len >> 12;
	if (pages == 0 || pages >= (1ull << 40) || !writable_range(address, pages * PAGE))
		return;
	share_range(HSM_SHIM_ROLE_RAM, address, pages * PAGE);
}

/*
 * The page CREATE_VM's ioreq_buf or VM_INTR_MONITOR's value names (§2.2, §7.3), shared as
 * RAM is: the kernel pins it, so the process, the kernel and the hypervisor write the same
 * bytes, and no call has to exchange them. Done before the ioctl, outside the lock. A page
 * that cannot be shared (quietly: the server may be an older one) is mirrored instead
 * (declare_region).
 */
static void share_page(uint32_t role, unsigned long arg)
{
	uint64_t address;
	if (role == HSM_SHIM_ROLE_IOREQ) {
		struct acrn_vm_creation c;
		if (mem_read(arg, &c, sizeof(c)) < sizeof(c))
			return;
		address = PAGE_FLOOR(c.ioreq_buf);
	} else {
		address = PAGE_FLOOR(arg);
	}
	if (address == 0 || !writable_range(address, PAGE))
		return;
	share_range(role, address, PAGE);
}

/*
 * Share [address, address + length) (page-aligned, mapped writable) for `role`: the range
 * is made a MAP_SHARED mapping of a file (hsm-shim-ram.c) and the server maps that file
 * (SHARE). It may wait for the server. A range that cannot be shared is not declared as
 * shared: RAM is then not declared at all (the server hands the simulation an address it
 * has not mapped, and the pin fails where the kernel's would); an ioreq or monitor page is
 * mirrored instead.
 */
static void share_range(uint32_t role, uint64_t address, uint64_t length)
{
	struct ram_file f;
	int e = ram_share_file(address, length, PRIVATE_FD_MIN, &f);
	if (e < 0) {
		if (role == HSM_SHIM_ROLE_RAM)
			warn("hsm-shim: cannot share RAM at 0x%" PRIx64 " (%" PRIu64 " bytes): %s",
			     address, length, strerror(-e));
		return;
	}
	struct masked mk;
	lock_all(&mk);
	struct region *r = NULL;
	for (uint32_t i = 0; i < region_count; i++) {
		struct region *x = &regions[i];
		if (x->role == role && x->address == address && x->length == length &&
		    x->dev == f.dev && x->ino == f.ino && x->file_offset == f.offset && !x->shadow) {
			unlock_all(&mk); /* the server maps this file here already */
			ram_file_release(&f);
			return;
		}
	}
	/* A page mirrored before (by an older declaration) is shared from now on. */
	for (uint32_t i = 0; i < region_count; i++) {
		struct region *x = &regions[i];
		if (x->role == role && x->address == address && x->shadow) {
			x->role = 0;
			x->gone = 1;
		}
	}
	if (region_count < MAX_REGIONS) {
		r = &regions[region_count++];
		*r = (struct region){ .id = next_region++, .role = role,
				      .address = address, .length = length, .dev = f.dev,
				      .ino = f.ino, .file_offset = f.offset,
				      .fd = f.owned ? f.fd : -1 };
	}
	uint32_t id = r ? r->id : 0;
	unlock_all(&mk);
	if (!r) {
		ram_file_release(&f);
		return;
	}
	char path[64];
	int n = snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)self_pid, f.fd);
	uint8_t p[HSM_SHIM_SHARE_FIXED_SIZE + 64] = { 0 };
	hsmp_put32(p, id);
	hsmp_put32(p + 4, role);
	hsmp_put64(p + 8, address);
	hsmp_put64(p + 16, length);
	hsmp_put64(p + 24, f.offset);
	hsmp_put32(p + 32, f.page_size);
	memcpy(p + HSM_SHIM_SHARE_FIXED_SIZE, path, (size_t)n);
	struct reply rep;
	int sent = call(HSM_SHIM_OP_SHARE, p, HSM_SHIM_SHARE_FIXED_SIZE + (uint32_t)n, &rep);
	/* The server has the file mapped (or gave up) once it answered: our fd may go. */
	ram_file_release(&f);
	if (sent < 0 || rep.result < 0) {
		if (sent == 0 && role == HSM_SHIM_ROLE_RAM)
			warn("hsm-shim: the server could not map RAM at 0x%" PRIx64 ": %s", address,
			     strerror(rep.error));
		lock_all(&mk);
		r->role = 0; /* never matched again */
		unlock_all(&mk);
	}
}

/* ------------------------------------------------------------------------------------ */
/* The lane (hsm-lane.h): ATTACH and NOTIFY of a VM's default client from a shared page.  */

/* Per server fd of a VM whose ioreq page is shared (not mirrored): the page CREATE_VM
 * named and, once the server took one, the lane. */
#define MAX_LANES 16
struct lane_entry {
	int32_t sim_fd;          /* -1: free */
	uint8_t *ioreq;
	struct hsm_lane *lane;   /* NULL until the server takes the offer */
};
static struct lane_entry lanes[MAX_LANES] = { [0 ... MAX_LANES - 1] = { .sim_fd = -1 } };
static int lanes_wanted = 1;
static void lane_log_call(struct hsm_lane *l, uint32_t request, const void *arg, int result,
			  int error, uint64_t started);

/* The entry whose server fd is `sim_fd` (-1: a free entry), or NULL. */
static struct lane_entry *find_entry(int32_t sim_fd)
{
	for (int i = 0; i < MAX_LANES; i++)
		if (lanes[i].sim_fd == sim_fd)
			return &lanes[i];
	return NULL;
}

/* The entry of a server fd, or NULL. */
static struct lane_entry *entry_of(int32_t sim_fd)
{
	return sim_fd >= 0 ? find_entry(sim_fd) : NULL;
}

/* The lane a server fd's VM is served through, or NULL. */
static struct lane_entry *lane_of(int32_t sim_fd)
{
	struct lane_entry *e = entry_of(sim_fd);
	return e && e->lane ? e : NULL;
}

static void lane_clear(struct lane_entry *e)
{
	if (e->lane)
		munmap(e->lane, HSM_LANE_SIZE);
	*e = (struct lane_entry){ .sim_fd = -1 };
}

/* The server fd is closed (or the VM made anew): its lane and page are no longer its. */
static void lane_forget(int32_t sim_fd)
{
	struct lane_entry *e = entry_of(sim_fd);
	if (e)
		lane_clear(e);
}

/* CREATE_VM succeeded: remember its ioreq page if it is shared with the server. */
static void lane_note_vm(int32_t sim_fd, uint64_t ioreq_buf)
{
	uint64_t page = PAGE_FLOOR(ioreq_buf);
	int shared = 0;
	struct masked m;
	lock_all(&m);
	for (uint32_t i = 0; i < region_count; i++)
		if (regions[i].role == HSM_SHIM_ROLE_IOREQ && regions[i].address == page &&
		    !regions[i].shadow)
			shared = 1;
	unlock_all(&m);
	struct lane_entry *e = shared ? find_entry(-1) : NULL;
	if (e)
		*e = (struct lane_entry){ .sim_fd = sim_fd, .ioreq = (uint8_t *)(uintptr_t)page };
}

/* CREATE_IOREQ_CLIENT succeeded: offer the server a lane for that VM. Quietly nothing
 * when it cannot be had (no shared ioreq page, an older server, no KVM there). */
static void lane_offer(int32_t sim_fd)
{
	struct lane_entry *e = entry_of(sim_fd);
	if (!e || e->lane)
		return;
	int fd = memfd_create("hsm-shim-lane", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd >= 0) {
		/* Out of the program's way, as the ring's: its next open gets the number it expects. */
		int high = sys_dupfd(fd, PRIVATE_FD_MIN);
		sys_close(fd);
		fd = high;
	}
	if (fd < 0)
		return;
	struct hsm_lane *lane = MAP_FAILED;
	/* Sealed, as the ring is: hsmd maps it, and a shrunk file would kill it with SIGBUS. */
	if (ftruncate(fd, HSM_LANE_SIZE) == 0 &&
	    syscall(SYS_fcntl, fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
		lane = mmap(NULL, HSM_LANE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (lane == MAP_FAILED) {
		sys_close(fd);
		return;
	}
	lane->magic = HSM_LANE_MAGIC;
	lane->version = HSM_LANE_VERSION;
	char path[64];
	int n = snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)self_pid, fd);
	uint8_t p[HSM_SHIM_LANE_FIXED_SIZE + 64] = { 0 };
	hsmp_put32(p, (uint32_t)sim_fd);
	memcpy(p + HSM_SHIM_LANE_FIXED_SIZE, path, (size_t)n);
	struct reply rep;
	int sent = call(HSM_SHIM_OP_LANE, p, HSM_SHIM_LANE_FIXED_SIZE + (uint32_t)n, &rep);
	sys_close(fd);
	if (sent < 0 || rep.result < 0 || atomic_load(&lane->state) != HSM_LANE_ON) {
		munmap(lane, HSM_LANE_SIZE);
		return;
	}
	e->lane = lane;
}

/* Why a wait on the lane ended with the lane off: the server's end (EIO, as every call
 * after it), or the client's destruction (ENODEV, as in the kernel, §4.7). */
static int lane_off_errno(uint32_t state)
{
	return state == HSM_LANE_GONE ? EIO : ENODEV;
}

/*
 * ATTACH_IOREQ_CLIENT through the lane: 0 when the default client has a request pending
 * (§4.7), or at a signal (the kernel's wait ends with 0 too); the errno of a wait the
 * lane's end ended (lane_off_errno); -1 when the lane was off before any wait: the ring
 * has the answer (the model knows why: no client, no VM).
 */
static int lane_attach(struct hsm_lane *l)
{
	for (int slept = 0;; slept = 1) {
		uint32_t state = atomic_load(&l->state);
		if (state != HSM_LANE_ON)
			return slept ? lane_off_errno(state) : -1;
		if (atomic_load(&l->pending))
			return 0;
		uint32_t bell = atomic_load(&l->bell);
		atomic_fetch_add(&l->sleepers, 1);
		if (atomic_load(&l->pending) || atomic_load(&l->state) != HSM_LANE_ON) {
			atomic_fetch_sub(&l->sleepers, 1);
			continue;
		}
		long r = hsm_lane_futex_wait(&l->bell, bell);
		int e = errno;
		atomic_fetch_sub(&l->sleepers, 1);
		if (r < 0 && e == EINTR) {
			uint32_t now = atomic_load(&l->state);
			return now == HSM_LANE_ON ? 0 : lane_off_errno(now);
		}
	}
}

/*
 * NOTIFY_REQUEST_FINISH through the lane, for a request the lane sent (§4.7, §4.4): the
 * client's bit cleared, the slot COMPLETE, its vCPU thread woken to finish it (as ACRN's
 * notify hypercall signals the vCPU: the slot goes FREE on that thread, not in this
 * call). 0: anything else (a bad argument, a request the model sent, the lane off) goes
 * over the ring, where the model answers it.
 */
static int lane_notify(struct lane_entry *e, unsigned long arg)
{
	struct acrn_ioreq_notify n;
	uint64_t started = hsm_now_ns();
	if (mem_read(arg, &n, sizeof(n)) < sizeof(n) || n.reserved)
		return 0;
	struct hsm_lane *l = e->lane;
	uint32_t vcpu = n.vcpu & 0xffff;
	if (atomic_load(&l->state) != HSM_LANE_ON || vcpu >= l->vcpu_num ||
	    vcpu >= HSM_LANE_SLOTS || !atomic_load(&l->owner[vcpu]))
		return 0;
	atomic_fetch_and(&l->pending, ~(1u << vcpu));
	atomic_store_explicit(hsm_lane_processed(e->ioreq, vcpu), ACRN_IOREQ_STATE_COMPLETE,
			      memory_order_release);
	hsm_lane_signal_done(l, vcpu);
	lane_log_call(l, ACRN_IOCTL_NOTIFY_REQUEST_FINISH, &n, 0, 0, started);
	return 1;
}

/* The server keeps an ioctl log and has not read the lane's: the call goes over the ring. */
static int lane_calls_full(struct hsm_lane *l)
{
	return atomic_load(&l->calls_wanted) &&
	       atomic_load(&l->calls_head) - atomic_load(&l->calls_tail) >= HSM_LANE_CALLS - 16;
}

/* A call the lane answered goes to the server's ioctl log, if it keeps one. */
static pthread_mutex_t lane_calls_lock = PTHREAD_MUTEX_INITIALIZER;
static void lane_log_call(struct hsm_lane *l, uint32_t request, const void *arg, int result,
			  int error, uint64_t started)
{
	if (!atomic_load(&l->calls_wanted))
		return;
	uint64_t now = hsm_now_ns();
	pthread_mutex_lock(&lane_calls_lock);
	uint32_t head = atomic_load_explicit(&l->calls_head, memory_order_relaxed);
	if (head - atomic_load_explicit(&l->calls_tail, memory_order_acquire) >= HSM_LANE_CALLS) {
		atomic_fetch_add(&l->calls_lost, 1);
	} else {
		struct hsm_lane_call *c =
			(struct hsm_lane_call *)((uint8_t *)l + HSM_LANE_CALLS_AT) + head % HSM_LANE_CALLS;
		*c = (struct hsm_lane_call){ .request = request, .result = result, .error = (uint32_t)error,
					     .started_ns = started, .duration_ns = now - started };
		if (arg)
			memcpy(c->arg, arg, sizeof(c->arg));
		atomic_store_explicit(&l->calls_head, head + 1, memory_order_release);
	}
	pthread_mutex_unlock(&lane_calls_lock);
}

static int shim_ioctl_ring(int fd, uint32_t request, unsigned long arg);

static int shim_ioctl(int fd, uint32_t request, unsigned long arg)
{
	struct lane_entry *e = request == ACRN_IOCTL_ATTACH_IOREQ_CLIENT ||
					       request == ACRN_IOCTL_NOTIFY_REQUEST_FINISH
				       ? lane_of(fd_target[fd])
				       : NULL;
	if (e && lane_calls_full(e->lane))
		e = NULL;
	if (e && request == ACRN_IOCTL_ATTACH_IOREQ_CLIENT) {
		uint64_t started = hsm_now_ns();
		int r = lane_attach(e->lane);
		if (r >= 0) {
			if (r != EIO) /* the server is gone: nobody to log to */
				lane_log_call(e->lane, request, NULL, r ? -1 : 0, r, started);
			if (!r)
				return 0;
			errno = r;
			return -1;
		}
	} else if (e && lane_notify(e, arg)) {
		return 0;
	}
	int32_t sim_fd = fd_target[fd];
	int r = shim_ioctl_ring(fd, request, arg);
	if (r >= 0 && lanes_wanted) {
		if (request == ACRN_IOCTL_CREATE_VM) {
			struct acrn_vm_creation c;
			lane_forget(sim_fd);
			if (mem_read(arg, &c, sizeof(c)) == sizeof(c))
				lane_note_vm(sim_fd, c.ioreq_buf);
		} else if (request == ACRN_IOCTL_CREATE_IOREQ_CLIENT) {
			lane_offer(sim_fd);
		}
	}
	return r;
}

static int shim_ioctl_ring(int fd, uint32_t request, unsigned long arg)
{
	if (request == ACRN_IOCTL_SET_MEMSEG)
		share_ram(arg);
	else if (request == ACRN_IOCTL_CREATE_VM)
		share_page(HSM_SHIM_ROLE_IOREQ, arg);
	else if (request == ACRN_IOCTL_VM_INTR_MONITOR)
		share_page(HSM_SHIM_ROLE_MONITOR, arg);

	const struct hsm_ioctl_info *info = hsm_ioctl_lookup(request);
	uint16_t kind = HSMP_ARG_NONE;
	uint64_t value = 0;
	uint8_t bytes[512];
	uint32_t nbytes = 0;
	int pm = request == ACRN_IOCTL_PM_GET_CPU_STATE;

	/* Unknown requests travel without their argument: the kernel never reads it (§1.6). */
	struct masked m;
	struct builder b = { 0 };
	lock_all(&m);
	if (conn_state != CONN_UP) {
		unlock_all(&m);
		errno = EIO;
		return -1;
	}
	if (info && info->kind == HSMP_ARG_VALUE) {
		kind = HSMP_ARG_VALUE;
		value = arg;
		read_with_live_pages(0, NULL, 0);
	} else if (info && info->kind == HSMP_ARG_BUFFER) {
		/* memdup_user: the bytes the kernel reads; PM reads the u64 cmd only. */
		uint32_t size = pm ? 8 : info->buffer_size;
		size_t got = read_with_live_pages(arg, bytes, size);
		if (got > 0) {
			kind = HSMP_ARG_BUFFER;
			nbytes = (uint32_t)got; /* short: the simulation faults as the kernel does */
			if (pm && got == size) {
				memset(bytes + 8, 0, info->buffer_size - 8);
				nbytes = info->buffer_size; /* room for the 48 bytes written back */
			}
		}
	} else {
		read_with_live_pages(0, NULL, 0);
	}
	int32_t sim_fd = fd_target[fd];
	if (info && kind == HSMP_ARG_BUFFER && nbytes >= info->buffer_size) {
		if (info->pointer == HSM_PTR_IOREQ_BUF) {
			uint64_t a = hsmp_get64(bytes + offsetof(struct acrn_vm_creation, ioreq_buf));
			declare_region(&b, HSM_SHIM_ROLE_IOREQ, PAGE_FLOOR(a), PAGE);
		}
		if (request == ACRN_IOCTL_IOEVENTFD || request == ACRN_IOCTL_IRQFD)
			declare_fd(&b, (int32_t)hsmp_get32(bytes));
	} else if (info && info->pointer == HSM_PTR_VALUE_PAGE) {
		declare_region(&b, HSM_SHIM_ROLE_MONITOR, PAGE_FLOOR(value), PAGE);
	}
	emit_all_diffs(&b);
	uint32_t id = new_id();
	uint8_t back[512];
	struct waiter *w = add_waiter(id, back, sizeof(back));
	if (!w) {
		unlock_all(&m);
		free_builder(&b);
		errno = EAGAIN;
		return -1;
	}
	size_t f = begin_frame(&b, HSMP_OP_IOCTL, id);
	put_u32(&b, (uint32_t)sim_fd);
	put_u32(&b, request);
	uint8_t k[4] = { 0 };
	hsmp_put16(k, kind);
	put_bytes(&b, k, sizeof(k));
	put_u32(&b, 0);
	put_u64(&b, value);
	put_bytes(&b, bytes, nbytes);
	end_frame(&b, f);
	struct reply rep;
	int r = finish_call(&b, w, info && info->blocking, &rep, &m);
	free_builder(&b);
	if (r < 0)
		return -1;
	if (rep.result < 0) {
		errno = rep.error;
		return -1;
	}
	/* copy_to_user of the read-back requests, on success only (§2.2 step 7, §7.8). */
	if (info && info->read_back && kind == HSMP_ARG_BUFFER) {
		uint32_t n = pm ? hsm_pm_reply_size(hsmp_get64(bytes)) : info->buffer_size;
		if (n > rep.length)
			n = rep.length;
		if (n && mem_write(arg, back, n) < n) {
			errno = EFAULT;
			return -1;
		}
	}
	return (int)rep.result;
}

/* ------------------------------------------------------------------------------------ */
/* Eventfds the shim tracks: the process's own reads and writes are passed on.            */

static int tracked_eventfd_id(int fd, uint64_t *id)
{
	if (fd < 0 || fd >= FD_LIMIT || atomic_load(&fd_kind[fd]) != FDK_EVENTFD)
		return 0;
	struct masked m;
	lock_all(&m);
	int ok = atomic_load(&fd_kind[fd]) == FDK_EVENTFD && eventfds[fd_target[fd]].used;
	if (ok)
		*id = eventfds[fd_target[fd]].id;
	unlock_all(&m);
	return ok;
}

/* After a successful write of `value`: the server's eventfd gets it too, and its irqfd
 * injects before write returns (§6.3: the wake-up runs in the writer's context). */
static void forward_write(uint64_t id, uint64_t value)
{
	uint8_t p[HSM_SHIM_EFD_WRITE_SIZE];
	hsmp_put64(p, id);
	hsmp_put64(p + 8, value);
	struct reply rep;
	call(HSM_SHIM_OP_EFD_WRITE, p, sizeof(p), &rep);
}

static void forward_read(uint64_t id)
{
	uint8_t p[HSM_SHIM_EFD_ID_SIZE];
	hsmp_put64(p, id);
	notify(HSM_SHIM_OP_EFD_READ, p, sizeof(p));
}

/* ------------------------------------------------------------------------------------ */
/* The interposed functions.                                                             */

static void child_after_fork(void)
{
	/* The child shares the parent's socket: it must not use it. Its HSM fds stay plain
	 * /dev/null files (SHIM.md, "Limits"); opening the device again connects anew. */
	pthread_mutex_init(&lock, NULL);
	pthread_mutex_init(&wlock, NULL);
	pthread_mutex_init(&rdlock, NULL);
	self_pid = getpid();
	if (ring) {
		munmap(ring, ring_length);
		ring = NULL;
		free(rx);
		rx = NULL;
		rx_len = 0;
	}
	atomic_store(&ring_lost, 0);
	if (sock >= 0)
		sys_close(sock);
	sock = -1;
	conn_state = CONN_NONE;
	for (int fd = 0; fd < FD_LIMIT; fd++)
		atomic_store(&fd_kind[fd], FDK_NONE);
	memset(hsm_refs, 0, sizeof(hsm_refs));
	for (int i = 0; i < MAX_EVENTFDS; i++) {
		if (eventfds[i].used)
			sys_close(eventfds[i].private_fd);
		eventfds[i].used = 0;
	}
	for (uint32_t i = 0; i < region_count; i++) {
		free(regions[i].shadow);
		free(regions[i].now);
		if (regions[i].fd >= 0)
			sys_close(regions[i].fd);
	}
	region_count = 0;
	memset(waiters, 0, sizeof(waiters));
	wake_fd = -1;
	/* The parent's lanes are its VMs' (the child's HSM fds are placeholders). */
	for (int i = 0; i < MAX_LANES; i++)
		lane_clear(&lanes[i]);
}

__attribute__((constructor)) static void shim_init(void)
{
	resolve_all();
	self_pid = getpid();
	const char *dev = getenv("HSM_SHIM_DEVICE");
	if (dev && *dev)
		device_path = dev;
	const char *s = getenv("HSM_SHIM_SOCKET");
	if (s && *s)
		socket_path = s;
	const char *transport = getenv("HSM_SHIM_TRANSPORT");
	if (transport && strcmp(transport, "socket") == 0)
		ring_wanted = 0;
	else if (transport && strcmp(transport, "ring") == 0)
		ring_wanted = 2;
	else if (transport && *transport && strcmp(transport, "auto") != 0)
		warn("hsm-shim: HSM_SHIM_TRANSPORT=%s: expected ring, socket or auto; using auto",
		     transport);
	const char *spin = getenv("HSM_SHIM_SPIN_US");
	if (spin && *spin) {
		char *end;
		unsigned long long us = strtoull(spin, &end, 10);
		if (*end || us > 1000000)
			warn("hsm-shim: HSM_SHIM_SPIN_US=%s: expected 0 to 1000000 (microseconds)", spin);
		else
			spin_ns = us * 1000ull;
	}
	const char *lane = getenv("HSM_SHIM_LANE");
	if (lane && strcmp(lane, "0") == 0)
		lanes_wanted = 0;
	else if (lane && *lane && strcmp(lane, "1") != 0)
		warn("hsm-shim: HSM_SHIM_LANE=%s: expected 0 or 1; using 1", lane);
	pthread_atfork(NULL, NULL, child_after_fork);
}

/* Opens the shim answers itself: the device, and the legacy name (missing, ENOENT). */
static int claimed(const char *path, int absolute)
{
	return shim_is_device_path(path, absolute) || shim_is_hidden_path(path, absolute);
}

static int open_claimed(const char *path, int flags)
{
	if (shim_is_device_path(path, 0))
		return shim_open(flags);
	errno = ENOENT;
	return -1;
}

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

EXPORT int open(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	if (claimed(path, 0))
		return open_claimed(path, flags);
	RESOLVE(open);
	return real_open(path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	if (claimed(path, 0))
		return open_claimed(path, flags);
	RESOLVE(open64);
	return real_open64(path, flags, mode);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	if (claimed(path, 1))
		return open_claimed(path, flags);
	RESOLVE(openat);
	return real_openat(dirfd, path, flags, mode);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	if (claimed(path, 1))
		return open_claimed(path, flags);
	RESOLVE(openat64);
	return real_openat64(dirfd, path, flags, mode);
}

/* The _FORTIFY_SOURCE entry points. */
EXPORT int __open_2(const char *path, int flags)
{
	if (claimed(path, 0))
		return open_claimed(path, flags);
	RESOLVE(__open_2);
	return real___open_2(path, flags);
}

EXPORT int __open64_2(const char *path, int flags)
{
	if (claimed(path, 0))
		return open_claimed(path, flags);
	RESOLVE(__open64_2);
	return real___open64_2(path, flags);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	if (claimed(path, 1))
		return open_claimed(path, flags);
	RESOLVE(__openat_2);
	return real___openat_2(dirfd, path, flags);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	if (claimed(path, 1))
		return open_claimed(path, flags);
	RESOLVE(__openat64_2);
	return real___openat64_2(dirfd, path, flags);
}

EXPORT int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	unsigned long arg = va_arg(ap, unsigned long);
	va_end(ap);
	if (is_hsm(fd)) /* the kernel sees the command as 32 bits */
		return shim_ioctl(fd, (uint32_t)request, arg);
	RESOLVE(ioctl);
	return real_ioctl(fd, request, arg);
}

EXPORT int close(int fd)
{
	RESOLVE(close);
	if (fd < 0 || fd >= FD_LIMIT || atomic_load(&fd_kind[fd]) == FDK_NONE)
		return real_close(fd);
	return close_tracked(fd, 1);
}

EXPORT int dup(int fd)
{
	RESOLVE(dup);
	int r = real_dup(fd);
	if (r >= 0 && fd >= 0 && fd < FD_LIMIT && atomic_load(&fd_kind[fd]) != FDK_NONE)
		after_dup(fd, r);
	return r;
}

static int dup_onto(int oldfd, int newfd, int r)
{
	if (r < 0 || oldfd == newfd)
		return r;
	int e = errno;
	if (newfd < FD_LIMIT && atomic_load(&fd_kind[newfd]) != FDK_NONE)
		close_tracked(newfd, 0);
	if (oldfd >= 0 && oldfd < FD_LIMIT && atomic_load(&fd_kind[oldfd]) != FDK_NONE)
		after_dup(oldfd, newfd);
	errno = e;
	return r;
}

EXPORT int dup2(int oldfd, int newfd)
{
	RESOLVE(dup2);
	return dup_onto(oldfd, newfd, real_dup2(oldfd, newfd));
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
	RESOLVE(dup3);
	return dup_onto(oldfd, newfd, real_dup3(oldfd, newfd, flags));
}

static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, va_list ap)
{
	/* Every fcntl argument is an int or a pointer; pass on what is there. */
	void *arg = va_arg(ap, void *);
	int r = real(fd, cmd, arg);
	if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && r >= 0 && fd >= 0 && fd < FD_LIMIT &&
	    atomic_load(&fd_kind[fd]) != FDK_NONE)
		after_dup(fd, r);
	return r;
}

EXPORT int fcntl(int fd, int cmd, ...)
{
	RESOLVE(fcntl);
	va_list ap;
	va_start(ap, cmd);
	int r = fcntl_common(real_fcntl, fd, cmd, ap);
	va_end(ap);
	return r;
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
	RESOLVE(fcntl64);
	RESOLVE(fcntl);
	va_list ap;
	va_start(ap, cmd);
	int r = fcntl_common(real_fcntl64 ? real_fcntl64 : real_fcntl, fd, cmd, ap);
	va_end(ap);
	return r;
}

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	RESOLVE(read);
	ssize_t r = real_read(fd, buf, n);
	uint64_t id;
	if (r == 8 && tracked_eventfd_id(fd, &id)) {
		int e = errno;
		forward_read(id);
		errno = e;
	}
	return r;
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	RESOLVE(write);
	uint64_t id;
	if (n != 8 || !tracked_eventfd_id(fd, &id))
		return real_write(fd, buf, n);
	uint64_t value;
	memcpy(&value, buf, sizeof(value));
	ssize_t r = real_write(fd, buf, n);
	if (r == 8) {
		int e = errno;
		forward_write(id, value);
		errno = e;
	}
	return r;
}

EXPORT int eventfd_read(int fd, eventfd_t *value)
{
	RESOLVE(eventfd_read);
	int r = real_eventfd_read(fd, value);
	uint64_t id;
	if (r == 0 && tracked_eventfd_id(fd, &id)) {
		int e = errno;
		forward_read(id);
		errno = e;
	}
	return r;
}

EXPORT int eventfd_write(int fd, eventfd_t value)
{
	RESOLVE(eventfd_write);
	int r = real_eventfd_write(fd, value);
	uint64_t id;
	if (r == 0 && tracked_eventfd_id(fd, &id)) {
		int e = errno;
		forward_write(id, value);
		errno = e;
	}
	return r;
}
