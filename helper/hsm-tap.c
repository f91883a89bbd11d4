/*
 * libhsm-tap.so: watch a program's HSM calls without changing them (helper/TAP.md).
 *
 * Preloaded into a program that drives the HSM (acrn-dm, vm-sample), it passes every
 * call on to the real device unchanged, and streams to hsmd each HSM ioctl (the request,
 * its raw argument bytes, result, errno, start and duration) and each I/O request the
 * program completed (the slot as ATTACH returned it, the value and time at NOTIFY), in
 * the binary records of hsm-tap.h, on the unix socket HSM_TAP_SOCKET names. hsmd decodes
 * them with the project's ABI tables; nothing is decoded here.
 *
 * The traced program never waits for hsmd: records go into a 1 MiB ring in this process,
 * which a thread of the tap's own sends in batches (every 2 ms while records come); when
 * the ring is full a record is dropped and counted, and the count reaches hsmd.
 *
 *   LD_PRELOAD=build/libhsm-tap.so HSM_TAP_SOCKET=PATH program     (hardware)
 *   LD_PRELOAD="build/libhsm-tap.so build/libhsm-shim.so" ...       (on the simulation)
 *
 * Without HSM_TAP_SOCKET the tap does nothing but pass calls on.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/acrn.h>
#include <linux/futex.h>
#include <linux/ioctl.h>
#include <linux/kcmp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hsm-ioctls.h"
#include "hsm-tap.h"

#define EXPORT __attribute__((visibility("default")))

/* fds this high or higher are never looked at (passed on untraced). */
#define FD_LIMIT 65536
#define RING_SIZE (1u << 20)
#define MAX_VMS 64
#define SLOTS ACRN_IO_REQUEST_MAX
/* The most the sender sends while it holds the send lock. */
#define SEND_BATCH (64u * 1024u)
/* While records come, the sender sends a batch this often. */
#define BATCH_NS 2000000L
/* How long the sender waits between attempts to reach hsmd, and at exit for it to read. */
#define RETRY_NS 1000000000L
#define EXIT_FLUSH_MS 500 /* HSM_TAP_EXIT_MS changes it */
/* The socket's fd sits at or above this number, out of the program's way. */
#define SOCKET_FD_MIN 512

_Static_assert(offsetof(struct acrn_io_request, reqs) + 24 == HSM_TAP_VALUE_OFFSET,
	       "the value's offset in the reqs union");
_Static_assert(offsetof(struct acrn_io_request, reqs.mmio_request.value) == HSM_TAP_VALUE_OFFSET &&
		       offsetof(struct acrn_io_request, reqs.pio_request.value) == HSM_TAP_VALUE_OFFSET &&
		       offsetof(struct acrn_io_request, reqs.pci_request.value) == HSM_TAP_VALUE_OFFSET,
	       "every request type keeps its value at the same offset (§4.1)");
_Static_assert(offsetof(struct acrn_io_request, reserved1) == HSM_TAP_SLOT_BYTES,
	       "the slot bytes sent end with the reqs union");

static int (*real_ioctl)(int, unsigned long, ...);
static int (*real_close)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);

#define RESOLVE(name)                                                          \
	do {                                                                   \
		if (!real_##name)                                              \
			*(void **)(&real_##name) = dlsym(RTLD_NEXT, #name);    \
	} while (0)

/* ------------------------------------------------------------------------------------ */
/* State.                                                                                */

static const char *socket_path; /* HSM_TAP_SOCKET; NULL: the tap is off */
static const char *device_path = "/dev/acrn_hsm";

enum { FD_UNKNOWN = 0, FD_HSM = 1, FD_OTHER = 2 };
static _Atomic uint8_t fd_kind[FD_LIMIT];
/* The VM an HSM fd holds, as an index into vms plus one (0: none known). */
static _Atomic uint8_t fd_vm[FD_LIMIT];

struct tap_vm {
	int used;
	int fd;
	uint16_t vmid;
	uint16_t vcpu_num;
	volatile uint8_t *page; /* the program's ioreq page (§2.2) */
	uint64_t seen[SLOTS];   /* when ATTACH returned the slot PROCESSING (ns), 0: not */
	uint8_t stash[SLOTS][HSM_TAP_SLOT_BYTES];
};
static struct tap_vm vms[MAX_VMS];

/*
 * One lock for the VM table and the ring, held for a few hundred nanoseconds at most.
 * A signal handler that calls ioctl while its thread holds it would deadlock, so a thread
 * marks that it holds it (in_tap) and a nested call records nothing (it is counted).
 */
static atomic_flag lock = ATOMIC_FLAG_INIT;
static __thread int in_tap;
static __thread uint32_t my_tid;

static uint8_t ring[RING_SIZE];
static _Atomic uint64_t head; /* bytes ever written (under lock) */
static _Atomic uint64_t tail; /* bytes ever sent or discarded (by the sender) */

static _Atomic uint64_t total_ioctls, total_ioreqs, total_dropped;

static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int started;
static pthread_mutex_t send_mu = PTHREAD_MUTEX_INITIALIZER;
static int sock = -1; /* under send_mu */
/* The socket's number, for close() and dup2() of the program to check against: a program
 * that closes it (or dups over it) takes the number, and the tap must not write to it. */
static _Atomic int sock_number = -1;
static _Atomic int sock_taken;
static uint64_t dropped_at_connect;
static uint64_t totals_sent[3];
static _Atomic uint32_t sender_sleeping;
static int warned;
static pid_t my_pid;
static long exit_flush_ms = EXIT_FLUSH_MS;

static int lock_tap(void)
{
	if (in_tap)
		return 0;
	in_tap = 1;
	unsigned spins = 0;
	while (atomic_flag_test_and_set_explicit(&lock, memory_order_acquire)) {
		if (++spins % 64 == 0)
			sched_yield();
	}
	return 1;
}

static void unlock_tap(void)
{
	atomic_flag_clear_explicit(&lock, memory_order_release);
	in_tap = 0;
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static uint32_t tid(void)
{
	if (!my_tid)
		my_tid = (uint32_t)syscall(SYS_gettid);
	return my_tid;
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}
static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static void header(uint8_t *r, uint16_t type, uint32_t length)
{
	put16(r, type);
	put16(r + 2, (uint16_t)length);
	put32(r + 4, tid());
}

/* Copy `n` bytes of the program's memory at `address`, as far as they are readable. */
static size_t safe_read(void *dst, unsigned long address, size_t n)
{
	if (!n)
		return 0;
	struct iovec local = { dst, n };
	struct iovec remote = { (void *)address, n };
	ssize_t got = syscall(SYS_process_vm_readv, my_pid, &local, 1, &remote, 1, 0);
	if (got >= 0)
		return (size_t)got;
	/* process_vm_readv may be refused (seccomp, no CAP): read page by page is no better */
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* The ring and the sender.                                                              */

static void wake_sender(void)
{
	if (atomic_load(&sender_sleeping)) {
		atomic_store(&sender_sleeping, 0);
		syscall(SYS_futex, &sender_sleeping, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	}
}

/* Append a record; called with the lock held. Never waits: a full ring drops it. */
static void emit_locked(const uint8_t *r, uint32_t n)
{
	uint64_t h = atomic_load_explicit(&head, memory_order_relaxed);
	uint64_t t = atomic_load_explicit(&tail, memory_order_acquire);
	if (RING_SIZE - (h - t) < n) {
		atomic_fetch_add_explicit(&total_dropped, 1, memory_order_relaxed);
		return;
	}
	uint32_t at = (uint32_t)(h % RING_SIZE);
	uint32_t first = n < RING_SIZE - at ? n : RING_SIZE - at;
	memcpy(ring + at, r, first);
	memcpy(ring, r + first, n - first);
	atomic_store(&head, h + n);
}

static void emit(const uint8_t *r, uint32_t n)
{
	if (!lock_tap()) {
		atomic_fetch_add_explicit(&total_dropped, 1, memory_order_relaxed);
		return;
	}
	emit_locked(r, n);
	unlock_tap();
	wake_sender();
}

static void disconnect_locked(void);

static int send_all(const uint8_t *p, size_t n)
{
	while (n) {
		if (atomic_load(&sock_taken)) {
			disconnect_locked();
			return -1;
		}
		ssize_t w = send(sock, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void disconnect_locked(void)
{
	RESOLVE(close);
	atomic_store(&sock_number, -1);
	/* a number the program took is not ours to close */
	if (sock >= 0 && !atomic_exchange(&sock_taken, 0))
		real_close(sock);
	sock = -1;
}

static void hello_locked(void)
{
	uint8_t r[HSM_TAP_HELLO_SIZE] = { 0 };
	header(r, HSM_TAP_HELLO, sizeof(r));
	put32(r + 8, HSM_TAP_MAGIC);
	put32(r + 12, HSM_TAP_VERSION);
	put32(r + 16, (uint32_t)my_pid);
	put32(r + 20, RING_SIZE);
	put64(r + 24, now_ns());
	put64(r + 32, dropped_at_connect);
	char name[HSM_TAP_PROGRAM_SIZE + 1] = { 0 };
	prctl(PR_GET_NAME, name, 0, 0, 0);
	memcpy(r + 40, name, HSM_TAP_PROGRAM_SIZE);
	if (send_all(r, sizeof(r)) < 0)
		disconnect_locked();
}

static void connect_locked(void)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return;
	int high = fcntl(s, F_DUPFD_CLOEXEC, SOCKET_FD_MIN);
	RESOLVE(close);
	if (high >= 0) {
		real_close(s);
		s = high;
	}
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	strncpy(a.sun_path, socket_path, sizeof(a.sun_path) - 1);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		real_close(s);
		if (!warned) {
			warned = 1;
			char line[512];
			int n = snprintf(line, sizeof(line),
					 "hsm-tap: cannot reach hsmd at %s: %s; the program runs on, "
					 "and tracing starts when hsmd answers\n",
					 socket_path, strerror(e));
			if (n > 0) {
				ssize_t w = write(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
				(void)w;
			}
		}
		return;
	}
	sock = s;
	atomic_store(&sock_number, s);
	dropped_at_connect = atomic_load(&total_dropped);
	hello_locked();
}

static void send_totals_locked(int always)
{
	uint64_t now[3] = { atomic_load(&total_ioctls), atomic_load(&total_ioreqs),
			    atomic_load(&total_dropped) };
	if (!always && now[2] == totals_sent[2])
		return;
	uint8_t r[HSM_TAP_TOTALS_SIZE];
	header(r, HSM_TAP_TOTALS, sizeof(r));
	for (int i = 0; i < 3; i++)
		put64(r + 8 + 8 * i, now[i]);
	if (send_all(r, sizeof(r)) < 0) {
		disconnect_locked();
		return;
	}
	memcpy(totals_sent, now, sizeof(now));
}

/*
 * Send what the ring holds, up to `most` bytes; the number sent (0: nothing, or not
 * connected). The sender sends a batch at a time, so that the exit flush never waits long
 * for the lock.
 */
static uint64_t drain_locked(uint64_t most)
{
	if (sock < 0)
		return 0;
	uint64_t t = atomic_load(&tail);
	uint64_t h = atomic_load_explicit(&head, memory_order_acquire);
	if (h - t > most)
		h = t + most;
	uint64_t sent = 0;
	while (t < h && sock >= 0) {
		uint32_t at = (uint32_t)(t % RING_SIZE);
		uint64_t n = h - t < RING_SIZE - at ? h - t : RING_SIZE - at;
		if (send_all(ring + at, n) < 0) {
			/* what was being sent is lost with the connection */
			disconnect_locked();
			break;
		}
		t += n;
		sent += n;
		atomic_store(&tail, t);
	}
	if (sock >= 0)
		send_totals_locked(0);
	return sent;
}

static void pause_ns(long ns)
{
	struct timespec d = { ns / 1000000000L, ns % 1000000000L };
	while (nanosleep(&d, &d) < 0 && errno == EINTR)
		;
}

static void *sender(void *unused)
{
	(void)unused;
	for (;;) {
		pthread_mutex_lock(&send_mu);
		if (sock < 0)
			connect_locked();
		int connected = sock >= 0;
		uint64_t sent = drain_locked(SEND_BATCH);
		pthread_mutex_unlock(&send_mu);
		if (!connected) {
			pause_ns(RETRY_NS);
			continue;
		}
		if (sent == SEND_BATCH)
			continue; /* more to send at once */
		if (sent) {
			pause_ns(BATCH_NS); /* let a batch gather */
			continue;
		}
		atomic_store(&sender_sleeping, 1);
		if (atomic_load(&head) == atomic_load(&tail)) {
			struct timespec limit = { 1, 0 };
			syscall(SYS_futex, &sender_sleeping, FUTEX_WAIT_PRIVATE, 1, &limit, NULL, 0);
		}
		atomic_store(&sender_sleeping, 0);
	}
	return NULL;
}

/* The first HSM call starts the sender: programs that never touch the HSM (everything a
 * launch script runs besides acrn-dm) pay nothing. */
static void start(void)
{
	if (atomic_load_explicit(&started, memory_order_acquire))
		return;
	pthread_mutex_lock(&start_mu);
	if (!atomic_load(&started)) {
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread takes none of the program's signals */
		pthread_t t;
		if (pthread_create(&t, NULL, sender, NULL) == 0)
			pthread_detach(t);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		atomic_store_explicit(&started, 1, memory_order_release);
	}
	pthread_mutex_unlock(&start_mu);
}

/* At exit: what the ring holds goes out (hsmd gets the program's last calls), bounded. */
__attribute__((destructor)) static void flush_at_exit(void)
{
	if (!atomic_load(&started))
		return;
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += exit_flush_ms / 1000;
	deadline.tv_nsec += exit_flush_ms % 1000 * 1000000L;
	deadline.tv_sec += deadline.tv_nsec / 1000000000L;
	deadline.tv_nsec %= 1000000000L;
	if (pthread_mutex_timedlock(&send_mu, &deadline) != 0)
		return;
	if (sock < 0)
		connect_locked();
	if (sock >= 0) {
		struct timeval limit = { exit_flush_ms / 1000, exit_flush_ms % 1000 * 1000 };
		setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
		drain_locked(UINT64_MAX);
		if (sock >= 0)
			send_totals_locked(1);
	}
	pthread_mutex_unlock(&send_mu);
}

/* The child of a fork has no sender and must not write on the parent's socket. */
static void after_fork_child(void)
{
	my_pid = getpid();
	my_tid = 0;
	atomic_flag_clear(&lock);
	in_tap = 0;
	pthread_mutex_init(&send_mu, NULL);
	pthread_mutex_init(&start_mu, NULL);
	disconnect_locked();
	atomic_store(&sock_taken, 0);
	atomic_store(&head, 0);
	atomic_store(&tail, 0);
	atomic_store(&total_ioctls, 0);
	atomic_store(&total_ioreqs, 0);
	atomic_store(&total_dropped, 0);
	memset(totals_sent, 0, sizeof(totals_sent));
	atomic_store(&started, 0);
	atomic_store(&sender_sleeping, 0);
}

__attribute__((constructor)) static void tap_init(void)
{
	const char *s = getenv("HSM_TAP_SOCKET");
	if (!s || !*s)
		return;
	if (strlen(s) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fprintf(stderr, "hsm-tap: HSM_TAP_SOCKET is longer than a unix socket path may be; "
				"not tracing\n");
		return;
	}
	const char *ms = getenv("HSM_TAP_EXIT_MS");
	if (ms && *ms) {
		char *end;
		long v = strtol(ms, &end, 10);
		if (*end == '\0' && v >= 0 && v <= 60000)
			exit_flush_ms = v;
		else
			fprintf(stderr, "hsm-tap: HSM_TAP_EXIT_MS is not 0 to 60000 (ms); using %d\n",
				EXIT_FLUSH_MS);
	}
	const char *d = getenv("HSM_TAP_DEVICE");
	if (d && *d)
		device_path = d;
	my_pid = getpid();
	pthread_atfork(NULL, NULL, after_fork_child);
	socket_path = s;
}

/* ------------------------------------------------------------------------------------ */
/* HSM fds and their VMs.                                                                */

/* Whether fd is the HSM device: the same character device as device_path (under the
 * device shim, its stat answers for the node the kernel makes). Known answers are kept
 * until the fd is closed. */
static int is_hsm(int fd)
{
	if (fd < 0 || fd >= FD_LIMIT)
		return 0;
	uint8_t k = atomic_load_explicit(&fd_kind[fd], memory_order_relaxed);
	if (k != FD_UNKNOWN)
		return k == FD_HSM;
	struct stat dev, st;
	if (fstat(fd, &st) < 0)
		return 0;
	if (stat(device_path, &dev) < 0)
		return 0; /* not cached: the device may appear later */
	int hsm = S_ISCHR(st.st_mode) && S_ISCHR(dev.st_mode) && st.st_rdev == dev.st_rdev;
	atomic_store(&fd_kind[fd], hsm ? FD_HSM : FD_OTHER);
	return hsm;
}

/* The VM of an HSM fd: the one it created, or, for a dup of that fd, the same (kcmp). */
static struct tap_vm *vm_of_locked(int fd)
{
	uint8_t i = atomic_load(&fd_vm[fd]);
	if (i)
		return &vms[i - 1];
	for (int v = 0; v < MAX_VMS; v++) {
		if (vms[v].used &&
		    syscall(SYS_kcmp, my_pid, my_pid, KCMP_FILE, fd, vms[v].fd) == 0) {
			atomic_store(&fd_vm[fd], (uint8_t)(v + 1));
			return &vms[v];
		}
	}
	return NULL;
}

static void forget_fd(int fd)
{
	if (fd >= 0 && fd == atomic_load(&sock_number))
		atomic_store(&sock_taken, 1);
	if (fd < 0 || fd >= FD_LIMIT)
		return;
	atomic_store(&fd_kind[fd], FD_UNKNOWN);
	uint8_t i = atomic_exchange(&fd_vm[fd], 0);
	if (!i || !lock_tap())
		return;
	/* the fd that made the VM closes: it is released (§1.5) unless a dup holds it on */
	if (vms[i - 1].fd == fd)
		vms[i - 1].used = 0;
	unlock_tap();
}

static void vm_created(int fd, const uint8_t *creation)
{
	if (!lock_tap())
		return;
	for (int v = 0; v < MAX_VMS; v++) {
		if (vms[v].used)
			continue;
		struct tap_vm *vm = &vms[v];
		memset(vm, 0, sizeof(*vm));
		vm->used = 1;
		vm->fd = fd;
		vm->vmid = (uint16_t)get32(creation + offsetof(struct acrn_vm_creation, vmid));
		vm->vcpu_num = (uint16_t)get32(creation + offsetof(struct acrn_vm_creation, vcpu_num));
		/* the slots start at the page holding ioreq_buf (§2.2) */
		vm->page = (volatile uint8_t *)(uintptr_t)(
			get64(creation + offsetof(struct acrn_vm_creation, ioreq_buf)) & ~0xfffull);
		atomic_store(&fd_vm[fd], (uint8_t)(v + 1));
		break;
	}
	unlock_tap();
}

static void vm_destroyed(int fd)
{
	if (!lock_tap())
		return;
	struct tap_vm *vm = vm_of_locked(fd);
	if (vm) {
		vm->used = 0;
		for (int f = 0; f < FD_LIMIT; f++)
			if (atomic_load_explicit(&fd_vm[f], memory_order_relaxed) == vm - vms + 1)
				atomic_store(&fd_vm[f], 0);
	}
	unlock_tap();
}

static unsigned slot_count(const struct tap_vm *vm)
{
	return vm->vcpu_num < SLOTS ? vm->vcpu_num : SLOTS;
}

static int processing(const volatile uint8_t *slot)
{
	const volatile uint32_t *state =
		(const volatile uint32_t *)(slot + offsetof(struct acrn_io_request, processed));
	const volatile uint32_t *kernel =
		(const volatile uint32_t *)(slot + offsetof(struct acrn_io_request, kernel_handled));
	return __atomic_load_n(state, __ATOMIC_ACQUIRE) == ACRN_IOREQ_STATE_PROCESSING &&
	       *kernel == 0;
}

/* ATTACH returned: the slots it handed to the default client, as they are now (§4.7). */
static void attached(int fd, uint64_t when)
{
	if (!lock_tap())
		return;
	struct tap_vm *vm = vm_of_locked(fd);
	for (unsigned i = 0; vm && i < slot_count(vm); i++) {
		const volatile uint8_t *slot = vm->page + i * sizeof(struct acrn_io_request);
		if (!processing(slot)) {
			vm->seen[i] = 0;
		} else if (!vm->seen[i]) {
			vm->seen[i] = when;
			memcpy(vm->stash[i], (const void *)slot, HSM_TAP_SLOT_BYTES);
		}
	}
	unlock_tap();
}

/* Before NOTIFY: the requests it may complete, with the values the program wrote. */
struct pending {
	uint16_t mask;
	uint64_t value[SLOTS];
	uint8_t slot[SLOTS][HSM_TAP_SLOT_BYTES]; /* for slots ATTACH did not return (polling) */
};

static void before_notify(int fd, struct pending *p)
{
	p->mask = 0;
	if (!lock_tap())
		return;
	struct tap_vm *vm = vm_of_locked(fd);
	for (unsigned i = 0; vm && i < slot_count(vm); i++) {
		const volatile uint8_t *slot = vm->page + i * sizeof(struct acrn_io_request);
		if (!processing(slot))
			continue;
		p->mask |= (uint16_t)(1u << i);
		memcpy(&p->value[i], (const void *)(slot + HSM_TAP_VALUE_OFFSET), 8);
		if (!vm->seen[i])
			memcpy(p->slot[i], (const void *)slot, HSM_TAP_SLOT_BYTES);
	}
	unlock_tap();
}

static void notified(int fd, const struct pending *p, unsigned vcpu, uint64_t start,
		     uint32_t duration)
{
	if (vcpu >= SLOTS || !(p->mask & (1u << vcpu)) || !lock_tap())
		return;
	struct tap_vm *vm = vm_of_locked(fd);
	if (vm) {
		uint8_t r[HSM_TAP_IOREQ_SIZE];
		header(r, HSM_TAP_IOREQ, sizeof(r));
		uint64_t seen = vm->seen[vcpu];
		put64(r + 8, seen);
		put64(r + 16, start);
		put32(r + 24, duration);
		put32(r + 28, (uint32_t)fd);
		put16(r + 32, vm->vmid);
		put16(r + 34, (uint16_t)vcpu);
		put32(r + 36, seen ? HSM_TAP_SEEN_AT_ATTACH : 0);
		put64(r + 40, p->value[vcpu]);
		memcpy(r + 48, seen ? vm->stash[vcpu] : p->slot[vcpu], HSM_TAP_SLOT_BYTES);
		vm->seen[vcpu] = 0;
		emit_locked(r, sizeof(r));
		atomic_fetch_add_explicit(&total_ioreqs, 1, memory_order_relaxed);
	}
	unlock_tap();
	wake_sender();
}

/* ------------------------------------------------------------------------------------ */
/* The ioctl.                                                                            */

static int tap_ioctl(int fd, unsigned long request, unsigned long arg)
{
	uint32_t req = (uint32_t)request; /* the kernel sees the command as 32 bits */
	const struct hsm_ioctl_info *info = hsm_ioctl_lookup(req);
	start();
	_Alignas(8) uint8_t r[HSM_TAP_IOCTL_FIXED_SIZE + 2 * HSM_TAP_MAX_ARG];
	uint8_t *argbytes = r + HSM_TAP_IOCTL_FIXED_SIZE;
	uint32_t n = 0;
	uint8_t flags = 0;
	int buffer = info && info->kind == HSMP_ARG_BUFFER;
	int pm = req == ACRN_IOCTL_PM_GET_CPU_STATE;
	/* read-back requests: the bytes the kernel reads, before it writes over them */
	uint32_t in = buffer && info->read_back ? (pm ? 8 : info->buffer_size) : 0;
	if (in) {
		n = (uint32_t)safe_read(argbytes, arg, in);
		if (n < in)
			flags |= HSM_TAP_ARG_UNREADABLE;
	}
	int notify = req == ACRN_IOCTL_NOTIFY_REQUEST_FINISH;
	struct pending pending;
	if (notify)
		before_notify(fd, &pending);

	uint64_t t0 = now_ns();
	int ret = real_ioctl(fd, request, arg);
	int err = errno;
	uint64_t t1 = now_ns();
	uint32_t duration = t1 - t0 > UINT32_MAX ? UINT32_MAX : (uint32_t)(t1 - t0);

	if (buffer && !(flags & HSM_TAP_ARG_UNREADABLE)) {
		/* On success the kernel read (and wrote) the whole buffer: it is there to copy. */
		uint32_t size = in ? (pm ? hsm_pm_reply_size(get64(argbytes)) : info->buffer_size)
				   : info->buffer_size;
		if (size > HSM_TAP_MAX_ARG)
			size = HSM_TAP_MAX_ARG;
		if (ret >= 0) {
			memcpy(argbytes + n, (const void *)arg, size);
			n += size;
		} else if (!in) {
			uint32_t got = (uint32_t)safe_read(argbytes, arg, size);
			if (got < size)
				flags |= HSM_TAP_ARG_UNREADABLE;
			n = got;
		}
	}
	if (ret >= 0 && req == ACRN_IOCTL_CREATE_VM && n >= 2 * sizeof(struct acrn_vm_creation))
		vm_created(fd, argbytes + sizeof(struct acrn_vm_creation));
	else if (ret >= 0 && req == ACRN_IOCTL_DESTROY_VM)
		vm_destroyed(fd);
	else if (ret >= 0 && req == ACRN_IOCTL_ATTACH_IOREQ_CLIENT)
		attached(fd, t1);
	else if (ret >= 0 && notify && n >= sizeof(struct acrn_ioreq_notify))
		/* the kernel truncates vcpu to 16 bits (§4.7) */
		notified(fd, &pending, get32(argbytes + offsetof(struct acrn_ioreq_notify, vcpu)) & 0xffff,
			 t0, duration);

	uint32_t length = (HSM_TAP_IOCTL_FIXED_SIZE + n + 7) & ~7u;
	memset(argbytes + n, 0, length - HSM_TAP_IOCTL_FIXED_SIZE - n);
	header(r, HSM_TAP_IOCTL, length);
	put64(r + 8, t0);
	put32(r + 16, duration);
	put32(r + 20, (uint32_t)fd);
	put32(r + 24, req);
	put32(r + 28, (uint32_t)ret);
	put32(r + 32, ret < 0 ? (uint32_t)err : 0);
	put16(r + 36, (uint16_t)n);
	r[38] = flags;
	r[39] = 0;
	put64(r + 40, arg);
	atomic_fetch_add_explicit(&total_ioctls, 1, memory_order_relaxed);
	emit(r, length);
	errno = err;
	return ret;
}

/* ------------------------------------------------------------------------------------ */
/* The interposed calls.                                                                 */

EXPORT int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	unsigned long arg = va_arg(ap, unsigned long);
	va_end(ap);
	RESOLVE(ioctl);
	/* one compare for every ioctl that is not ACRN's */
	if (_IOC_TYPE(request) != ACRN_IOCTL_TYPE || !socket_path || !is_hsm(fd))
		return real_ioctl(fd, request, arg);
	return tap_ioctl(fd, request, arg);
}

EXPORT int close(int fd)
{
	RESOLVE(close);
	if (socket_path)
		forget_fd(fd);
	return real_close(fd);
}

EXPORT int dup2(int oldfd, int newfd)
{
	RESOLVE(dup2);
	int r = real_dup2(oldfd, newfd);
	if (r >= 0 && oldfd != newfd && socket_path)
		forget_fd(newfd);
	return r;
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
	RESOLVE(dup3);
	int r = real_dup3(oldfd, newfd, flags);
	if (r >= 0 && socket_path)
		forget_fd(newfd);
	return r;
}
