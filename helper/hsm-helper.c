/*
 * hsm-helper: the process that issues hsmctl's syscalls on the real /dev/acrn_hsm.
 *
 * hsmctl's native backend (src/core/native) starts it and speaks the framed protocol
 * of PROTOCOL.md on its stdin/stdout. Each request is one HsmProcess call: open,
 * ioctl, mmap, read/write of the helper's own mappings, eventfd create/read/write,
 * close. The main thread reads frames in order and runs every call inline, except the
 * ones that may sleep indefinitely (ATTACH_IOREQ_CLIENT, §4.7): each of those runs on a
 * thread of its own, so replies can come back out of order.
 *
 * Everything the client sends is checked before it reaches the kernel (PROTOCOL.md,
 * "Validation"); a bad frame gets an error reply and the helper keeps serving. On EOF
 * it closes every fd it opened, which releases (and destroys) their VMs (§1.5).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/acrn.h>

#include "hsm-ioctls.h"
#include "hsm-protocol.h"

#define PAGE_SIZE_4K 4096ull
#define PAGE_FLOOR(a) ((a) & ~(PAGE_SIZE_4K - 1))

/* Calls that may each hold a thread at once (one ATTACH per VM is the normal load). */
#define MAX_BLOCKING_CALLS 64
#define BLOCKING_STACK_SIZE (64 * 1024)
/* mmap calls the helper keeps track of; each is one VMA of the process. */
#define MAX_MAPPINGS 65536
/* Refusal messages are short sentences. */
#define MESSAGE_MAX 240

/* Exit statuses (PROTOCOL.md, "Lifetime"). */
#define EXIT_CLEAN 0
#define EXIT_TRUNCATED 1
#define EXIT_USAGE 2
#define EXIT_OUTPUT_LOST 3
#define EXIT_NO_MEMORY 4

#ifdef HSM_HELPER_TESTING
#define HELPER_FEATURES HSMP_FEATURE_TESTING
#else
#define HELPER_FEATURES 0u
#endif

static const char *device_path = "/dev/acrn_hsm";

/* ------------------------------------------------------------------------------------ */
/* Output: replies from the main thread are batched; blocking threads write their own.  */

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

struct outbuf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* Main thread only. Room for two largest frames, so one always fits after a flush. */
static struct outbuf main_out;

/* Write everything or give up: without stdout nobody can hear us, so exit. */
static void write_all_locked(const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(EXIT_OUTPUT_LOST); /* the process exit closes every fd */
		p += w;
		n -= (size_t)w;
	}
}

static void flush_main_out(void)
{
	if (main_out.len == 0)
		return;
	pthread_mutex_lock(&out_lock);
	write_all_locked(main_out.data, main_out.len);
	pthread_mutex_unlock(&out_lock);
	main_out.len = 0;
}

static void put_reply(uint8_t *at, uint32_t id, uint16_t op, uint8_t flags, int64_t result,
		      int32_t error, const void *payload, uint32_t length)
{
	struct hsmp_header h = {
		.version = HSMP_VERSION,
		.flags = flags,
		.op = op,
		.id = id,
		.length = length,
		.result = result,
		.error = error,
	};
	hsmp_encode_header(at, &h);
	if (length)
		memcpy(at + HSMP_HEADER_SIZE, payload, length);
}

/* Queue a reply from the main thread. */
static void reply(uint32_t id, uint16_t op, uint8_t flags, int64_t result, int32_t error,
		  const void *payload, uint32_t length)
{
	size_t need = HSMP_HEADER_SIZE + (size_t)length;
	if (main_out.len + need > main_out.cap)
		flush_main_out();
	put_reply(main_out.data + main_out.len, id, op, flags, result, error, payload, length);
	main_out.len += need;
}

/* Send a small reply from a blocking-call thread, right away. */
static void reply_now(uint32_t id, uint16_t op, int64_t result, int32_t error,
		      const void *payload, uint32_t length)
{
	uint8_t frame[HSMP_HEADER_SIZE + 16];
	if (length > sizeof(frame) - HSMP_HEADER_SIZE)
		length = 0;
	put_reply(frame, id, op, 0, result, error, payload, length);
	pthread_mutex_lock(&out_lock);
	write_all_locked(frame, HSMP_HEADER_SIZE + length);
	pthread_mutex_unlock(&out_lock);
}

/* Refuse a request: result -1, an errno, the REFUSED flag and a message saying why. */
__attribute__((format(printf, 4, 5))) static void refuse(uint32_t id, uint16_t op, int error,
							 const char *fmt, ...)
{
	char message[MESSAGE_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(message))
		n = sizeof(message) - 1;
	reply(id, op, HSMP_FLAG_REFUSED, -1, error, message, (uint32_t)n);
}

/* ------------------------------------------------------------------------------------ */
/* What the helper owns: its fds and its mappings. Only the main thread touches these. */

enum fd_kind { FD_NONE = 0, FD_HSM, FD_EVENTFD };

static uint8_t *fd_kinds;
static size_t fd_kinds_cap;

static enum fd_kind fd_kind_of(int32_t fd)
{
	return fd >= 0 && (size_t)fd < fd_kinds_cap ? (enum fd_kind)fd_kinds[fd] : FD_NONE;
}

static int fd_track(int fd, enum fd_kind kind)
{
	if ((size_t)fd >= fd_kinds_cap) {
		size_t cap = fd_kinds_cap ? fd_kinds_cap : 64;
		while (cap <= (size_t)fd)
			cap *= 2;
		uint8_t *kinds = realloc(fd_kinds, cap);
		if (!kinds)
			return -1;
		memset(kinds + fd_kinds_cap, 0, cap - fd_kinds_cap);
		fd_kinds = kinds;
		fd_kinds_cap = cap;
	}
	fd_kinds[fd] = (uint8_t)kind;
	return 0;
}

static void close_all_fds(void)
{
	for (size_t fd = 0; fd < fd_kinds_cap; fd++) {
		if (fd_kinds[fd] != FD_NONE) {
			close((int)fd);
			fd_kinds[fd] = FD_NONE;
		}
	}
}

struct mapping {
	uint64_t start;
	uint64_t length; /* rounded up to whole pages, as the kernel maps them */
};

static struct mapping *mappings;
static size_t mapping_count;
static size_t mapping_cap;

/* The mapping that holds all of [address, address + length), or mapping_count if none. */
static size_t mapping_holding(uint64_t address, uint64_t length)
{
	size_t i = 0;
	while (i < mapping_count &&
	       !(address >= mappings[i].start && address - mappings[i].start < mappings[i].length &&
		 length <= mappings[i].length - (address - mappings[i].start)))
		i++;
	return i;
}

/* [address, address + length) lies inside one of the helper's mappings. */
static int inside_mappings(uint64_t address, uint64_t length)
{
	return length == 0 || mapping_holding(address, length) < mapping_count;
}

/* ------------------------------------------------------------------------------------ */
/* Blocking calls: each on a detached thread of its own, holding a dup of its fd so a   */
/* close meanwhile behaves as in a C program (the call keeps the file alive, §1.5).      */

struct blocking_call {
	uint32_t id;
	uint16_t op;
	int fd;
	uint32_t request;
};

static atomic_int blocking_in_flight;

/*
 * Posted by a blocking call's thread just before it enters the kernel. The main thread
 * waits for it, so the calls read after a blocking one reach the kernel after it, as they
 * would from a single-threaded caller (PROTOCOL.md, "Ordering").
 */
static sem_t blocking_entered;
/* The thread id of the blocking call that posted `blocking_entered` last. */
static _Atomic pid_t blocking_tid;

/*
 * Whether a thread is asleep (or gone): a blocking call asleep in the kernel (or, under
 * the test shim, in its socket read after sending the request) has been ordered before
 * anything the main thread does next. /proc shows it; a thread that already returned
 * and exited has no entry left.
 */
static int task_asleep(pid_t tid)
{
	char path[64], stat[512];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	ssize_t n = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	stat[n] = 0;
	/* "tid (comm) S ...": the state follows the last ')' (comm may hold one) */
	char *end = strrchr(stat, ')');
	return !end || end[1] != ' ' || end[2] == 'S' || end[2] == 'D' || end[2] == 'Z' || end[2] == 'X';
}

static void *blocking_main(void *arg)
{
	struct blocking_call call = *(struct blocking_call *)arg;
	free(arg);
	atomic_store(&blocking_tid, (pid_t)syscall(SYS_gettid));
	sem_post(&blocking_entered);

	switch (call.op) {
	case HSMP_OP_IOCTL: {
		int r = ioctl(call.fd, call.request, 0UL);
		reply_now(call.id, call.op, r, r < 0 ? errno : 0, NULL, 0);
		break;
	}
#ifdef HSM_HELPER_TESTING
	case HSMP_OP_TEST_WAIT: {
		/* Wait until the eventfd is readable, then read it, as ATTACH waits for a request. */
		uint64_t value = 0;
		ssize_t r = -1;
		for (;;) {
			struct pollfd p = { .fd = call.fd, .events = POLLIN };
			if (poll(&p, 1, -1) < 0 && errno != EINTR)
				break;
			r = read(call.fd, &value, sizeof(value));
			if (r == sizeof(value) || (r < 0 && errno != EAGAIN && errno != EINTR))
				break;
		}
		uint8_t payload[8];
		hsmp_put64(payload, value);
		if (r == sizeof(value))
			reply_now(call.id, call.op, 0, 0, payload, sizeof(payload));
		else
			reply_now(call.id, call.op, -1, errno, NULL, 0);
		break;
	}
#endif
	default:
		reply_now(call.id, call.op, -1, ENOSYS, NULL, 0);
	}
	close(call.fd);
	atomic_fetch_sub(&blocking_in_flight, 1);
	return NULL;
}

static void start_blocking(uint32_t id, uint16_t op, int fd, uint32_t request)
{
	if (atomic_fetch_add(&blocking_in_flight, 1) >= MAX_BLOCKING_CALLS) {
		atomic_fetch_sub(&blocking_in_flight, 1);
		refuse(id, op, EAGAIN, "%d blocking calls are already in flight",
		       MAX_BLOCKING_CALLS);
		return;
	}
	struct blocking_call *call = malloc(sizeof(*call));
	int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	int error = !call ? ENOMEM : dup_fd < 0 ? errno : 0;
	pthread_attr_t attr;
	pthread_t thread;
	if (!error) {
		*call = (struct blocking_call){ .id = id, .op = op, .fd = dup_fd, .request = request };
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, BLOCKING_STACK_SIZE);
		error = pthread_create(&thread, &attr, blocking_main, call);
		pthread_attr_destroy(&attr);
		if (!error) {
			while (sem_wait(&blocking_entered) < 0 && errno == EINTR)
				;
			/*
			 * Let it get into the kernel first: wait until it sleeps there (or is done),
			 * bounded at about 100 ms so a thread that never sleeps cannot stall us.
			 */
			pid_t tid = atomic_load(&blocking_tid);
			for (int spin = 0; spin < 1100 && !task_asleep(tid); spin++) {
				if (spin < 100)
					sched_yield();
				else
					nanosleep(&(struct timespec){ .tv_nsec = 100000 }, NULL);
			}
			return;
		}
	}
	free(call);
	if (dup_fd >= 0)
		close(dup_fd);
	atomic_fetch_sub(&blocking_in_flight, 1);
	refuse(id, op, error, "cannot start a thread for a blocking call: %s", strerror(error));
}

/* ------------------------------------------------------------------------------------ */
/* Ops.                                                                                  */

/* The payload has exactly `size` bytes; otherwise refuse and return 0. */
static int expect_length(const struct hsmp_header *h, const char *what, uint32_t size)
{
	if (h->length == size)
		return 1;
	refuse(h->id, h->op, EINVAL, "%s payload is %" PRIu32 " bytes, expected %" PRIu32, what,
	       h->length, size);
	return 0;
}

static int expect_zero(const struct hsmp_header *h, const char *what, uint64_t reserved)
{
	if (reserved == 0)
		return 1;
	refuse(h->id, h->op, EINVAL, "%s: reserved bytes must be zero", what);
	return 0;
}

static void op_hello(const struct hsmp_header *h)
{
	if (!expect_length(h, "hello", 0))
		return;
	uint8_t payload[HSMP_HELLO_FIXED_SIZE + HSMP_MAX_PATH];
	size_t path_len = strlen(device_path);
	hsmp_put32(payload, HSMP_MAX_PAYLOAD);
	hsmp_put32(payload + 4, (uint32_t)getpid());
	hsmp_put32(payload + 8, HELPER_FEATURES);
	hsmp_put32(payload + 12, 0);
	memcpy(payload + HSMP_HELLO_FIXED_SIZE, device_path, path_len);
	reply(h->id, h->op, 0, 0, 0, payload, (uint32_t)(HSMP_HELLO_FIXED_SIZE + path_len));
}

static void op_open(const struct hsmp_header *h, const uint8_t *p)
{
	char path[HSMP_MAX_PATH + 1];
	if (h->length == 0 || h->length > HSMP_MAX_PATH) {
		refuse(h->id, h->op, EINVAL, "open: the path must be 1 to %u bytes, got %" PRIu32,
		       HSMP_MAX_PATH, h->length);
		return;
	}
	if (memchr(p, 0, h->length)) {
		refuse(h->id, h->op, EINVAL, "open: the path contains a NUL byte");
		return;
	}
	memcpy(path, p, h->length);
	path[h->length] = 0;
	/* Only the device it was started for: the client cannot make it open other files. */
	if (strcmp(path, device_path) != 0) {
		refuse(h->id, h->op, EACCES, "hsm-helper opens only %s (its --device)", device_path);
		return;
	}
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		reply(h->id, h->op, 0, -1, errno, NULL, 0);
		return;
	}
	if (fd_track(fd, FD_HSM) < 0) {
		close(fd);
		refuse(h->id, h->op, ENOMEM, "open: no memory to track the fd");
		return;
	}
	reply(h->id, h->op, 0, fd, 0, NULL, 0);
}

static void op_close(const struct hsmp_header *h, const uint8_t *p)
{
	if (!expect_length(h, "close", HSMP_CLOSE_SIZE) ||
	    !expect_zero(h, "close", hsmp_get32(p + 4)))
		return;
	int32_t fd = (int32_t)hsmp_get32(p);
	if (fd_kind_of(fd) == FD_NONE) {
		refuse(h->id, h->op, EBADF, "close: fd %" PRId32 " was not opened through hsm-helper",
		       fd);
		return;
	}
	fd_kinds[fd] = FD_NONE;
	int r = close(fd);
	reply(h->id, h->op, 0, r, r < 0 ? errno : 0, NULL, 0);
}

/*
 * A user address inside the argument that the kernel pins must lie in the helper's own
 * mappings: the hypervisor (and the guest, for RAM) will read and write those pages, and
 * anywhere else they would be the helper's heap or stack. Returns 0 after refusing.
 */
static int check_user_pointer(const struct hsmp_header *h, const struct hsm_ioctl_info *info,
			      const uint8_t *arg, uint64_t value)
{
	uint64_t address, start, length;
	const char *field;

	switch (info->pointer) {
	case HSM_PTR_NONE:
		return 1;
	case HSM_PTR_IOREQ_BUF:
		/* The kernel uses the page that holds ioreq_buf (§2.2). */
		field = "ioreq_buf";
		address = hsmp_get64(arg + offsetof(struct acrn_vm_creation, ioreq_buf));
		start = PAGE_FLOOR(address);
		length = PAGE_SIZE_4K;
		break;
	case HSM_PTR_MEMSEG_RAM: {
		/* RAM pins len >> 12 pages from the page of vma_base (§3.4 B); MMIO has none. */
		if (hsmp_get32(arg + offsetof(struct acrn_vm_memmap, type)) != ACRN_MEMMAP_RAM)
			return 1;
		uint64_t pages = hsmp_get64(arg + offsetof(struct acrn_vm_memmap, len)) >> 12;
		if (pages == 0)
			return 1; /* the kernel refuses len < 4096 itself (EINVAL) */
		field = "vma_base";
		address = hsmp_get64(arg + offsetof(struct acrn_vm_memmap, vma_base));
		start = PAGE_FLOOR(address);
		length = pages * PAGE_SIZE_4K;
		if (start > UINT64_MAX - length) {
			length = UINT64_MAX - start; /* cannot be inside anything; refused below */
		}
		break;
	}
	case HSM_PTR_VALUE_PAGE:
		/* The hypervisor uses the page that holds the address (§7.3). */
		field = "the monitor address";
		address = value;
		start = PAGE_FLOOR(address);
		length = PAGE_SIZE_4K;
		break;
	default:
		return 1;
	}
	if (inside_mappings(start, length))
		return 1;
	refuse(h->id, h->op, info->pointer_errno,
	       "%s: %s 0x%" PRIx64 ": the %" PRIu64 " bytes the kernel pins from its page "
	       "are not inside memory mapped by hsm-helper's mmap",
	       info->name, field, address, length);
	return 0;
}

/* Argument bytes of a buffer ioctl, copied so the kernel sees an aligned private buffer. */
static uint8_t ioctl_scratch[HSMP_MAX_PAYLOAD] __attribute__((aligned(64)));

static void op_ioctl(const struct hsmp_header *h, const uint8_t *p)
{
	if (h->length < HSMP_IOCTL_FIXED_SIZE) {
		refuse(h->id, h->op, EINVAL,
		       "ioctl payload is %" PRIu32 " bytes, shorter than its %u-byte fixed part",
		       h->length, HSMP_IOCTL_FIXED_SIZE);
		return;
	}
	int32_t fd = (int32_t)hsmp_get32(p);
	uint32_t request = hsmp_get32(p + 4);
	uint16_t kind = hsmp_get16(p + 8);
	uint64_t value = hsmp_get64(p + 16);
	const uint8_t *bytes = p + HSMP_IOCTL_FIXED_SIZE;
	uint32_t nbytes = h->length - HSMP_IOCTL_FIXED_SIZE;

	if (!expect_zero(h, "ioctl", (uint64_t)hsmp_get16(p + 10) | hsmp_get32(p + 12)))
		return;
	const struct hsm_ioctl_info *info = hsm_ioctl_lookup(request);
	if (!info) {
		/* Matched on all 32 bits, as HSM does (§1.6): a wrong size is another request. */
		refuse(h->id, h->op, ENOTTY,
		       "ioctl: 0x%08" PRIx32 " is not an ACRN_IOCTL_* request of <linux/acrn.h>",
		       request);
		return;
	}
	if (fd_kind_of(fd) == FD_NONE) {
		refuse(h->id, h->op, EBADF, "%s: fd %" PRId32 " was not opened through hsm-helper",
		       info->name, fd);
		return;
	}
	if (kind != HSMP_ARG_BUFFER && nbytes != 0) {
		refuse(h->id, h->op, EINVAL, "%s: only a buffer argument carries bytes", info->name);
		return;
	}

	unsigned long arg = 0;
	const uint8_t *view = NULL; /* the argument's bytes, for the user-pointer check */
	switch (info->kind) {
	case HSMP_ARG_NONE:
		if (kind != HSMP_ARG_NONE || value != 0) {
			refuse(h->id, h->op, EINVAL, "%s takes no argument (kind none, value 0)",
			       info->name);
			return;
		}
		break;
	case HSMP_ARG_VALUE:
		if (kind != HSMP_ARG_VALUE) {
			refuse(h->id, h->op, EINVAL, "%s takes a value argument (kind value)",
			       info->name);
			return;
		}
		arg = (unsigned long)value;
		break;
	case HSMP_ARG_BUFFER:
		if (kind == HSMP_ARG_BUFFER) {
			if (value != 0) {
				refuse(h->id, h->op, EINVAL, "%s: value must be 0 for a buffer argument",
				       info->name);
				return;
			}
			if (nbytes < info->buffer_size) {
				refuse(h->id, h->op, EFAULT,
				       "%s reads or writes %" PRIu32 " bytes through its pointer; "
				       "the argument has %" PRIu32,
				       info->name, info->buffer_size, nbytes);
				return;
			}
			memcpy(ioctl_scratch, bytes, nbytes);
			view = ioctl_scratch;
			arg = (unsigned long)(uintptr_t)ioctl_scratch;
		} else if (kind == HSMP_ARG_POINTER) {
			if (!inside_mappings(value, info->buffer_size)) {
				refuse(h->id, h->op, EFAULT,
				       "%s: 0x%" PRIx64 "..+%" PRIu32 " is outside hsm-helper's "
				       "mappings",
				       info->name, value, info->buffer_size);
				return;
			}
			view = (const uint8_t *)(uintptr_t)value;
			arg = (unsigned long)value;
		} else if (kind == HSMP_ARG_NONE) {
			/* What the kernel answers for a NULL struct pointer. */
			refuse(h->id, h->op, EFAULT, "%s: no argument (a NULL struct pointer)",
			       info->name);
			return;
		} else {
			refuse(h->id, h->op, EINVAL,
			       "%s takes a struct argument (kind buffer or pointer)", info->name);
			return;
		}
		break;
	default:
		refuse(h->id, h->op, EINVAL, "%s: unknown argument kind", info->name);
		return;
	}
	if (!check_user_pointer(h, info, view, value))
		return;

	if (info->blocking) {
		start_blocking(h->id, h->op, fd, request);
		return;
	}
	int r = ioctl(fd, request, arg);
	int error = r < 0 ? errno : 0;
	/* The bytes come back whether or not the call failed, as they would in the caller's memory. */
	int send_back = kind == HSMP_ARG_BUFFER && info->read_back;
	reply(h->id, h->op, 0, r, error, ioctl_scratch, send_back ? nbytes : 0);
}

static void op_mmap(const struct hsmp_header *h, const uint8_t *p)
{
	if (!expect_length(h, "mmap", HSMP_MMAP_SIZE))
		return;
	uint64_t length = hsmp_get64(p);
	if (length == 0 || length > SIZE_MAX - PAGE_SIZE_4K) {
		refuse(h->id, h->op, EINVAL, "mmap: length %" PRIu64 " is not a usable size",
		       length);
		return;
	}
	if (mapping_count >= MAX_MAPPINGS) {
		refuse(h->id, h->op, ENOMEM, "mmap: %d mappings already", MAX_MAPPINGS);
		return;
	}
	if (mapping_count == mapping_cap) {
		size_t cap = mapping_cap ? mapping_cap * 2 : 16;
		struct mapping *grown = realloc(mappings, cap * sizeof(*grown));
		if (!grown) {
			refuse(h->id, h->op, ENOMEM, "mmap: no memory to track the mapping");
			return;
		}
		mappings = grown;
		mapping_cap = cap;
	}
	void *address = mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (address == MAP_FAILED) {
		reply(h->id, h->op, 0, -1, errno, NULL, 0);
		return;
	}
	mappings[mapping_count++] = (struct mapping){
		.start = (uint64_t)(uintptr_t)address,
		.length = (length + PAGE_SIZE_4K - 1) & ~(PAGE_SIZE_4K - 1),
	};
	reply(h->id, h->op, 0, (int64_t)(uintptr_t)address, 0, NULL, 0);
}

/*
 * munmap of pages inside one of the helper's mappings (never of its own code, heap or
 * stack): the mapping loses them, and what is left of it on either side stays. Pages the
 * kernel pinned (a VM's RAM, its ioreq page) stay the kernel's until the VM lets them go.
 */
static void op_munmap(const struct hsmp_header *h, const uint8_t *p)
{
	if (!expect_length(h, "munmap", HSMP_MUNMAP_SIZE))
		return;
	uint64_t address = hsmp_get64(p);
	uint64_t length = hsmp_get64(p + 8);
	if (address % PAGE_SIZE_4K != 0 || length == 0 || length > UINT64_MAX - PAGE_SIZE_4K) {
		refuse(h->id, h->op, EINVAL,
		       "munmap: 0x%" PRIx64 "..+%" PRIu64 " is not a page-aligned, non-empty range",
		       address, length);
		return;
	}
	length = (length + PAGE_SIZE_4K - 1) & ~(PAGE_SIZE_4K - 1);
	size_t i = mapping_holding(address, length);
	if (i == mapping_count) {
		refuse(h->id, h->op, EFAULT,
		       "munmap: 0x%" PRIx64 "..+%" PRIu64 " is not inside one of hsm-helper's mappings",
		       address, length);
		return;
	}
	struct mapping m = mappings[i];
	uint64_t tail = m.start + m.length - (address + length);
	/* Cut from the middle: one more mapping to remember (as Linux, ENOMEM past the limit). */
	if (address > m.start && tail > 0 && mapping_count >= MAX_MAPPINGS) {
		refuse(h->id, h->op, ENOMEM, "munmap: cutting a mapping in two would make %d",
		       MAX_MAPPINGS + 1);
		return;
	}
	if (address > m.start && tail > 0 && mapping_count == mapping_cap) {
		size_t cap = mapping_cap * 2;
		struct mapping *grown = realloc(mappings, cap * sizeof(*grown));
		if (!grown) {
			refuse(h->id, h->op, ENOMEM, "munmap: no memory to track the mappings left");
			return;
		}
		mappings = grown;
		mapping_cap = cap;
	}
	if (munmap((void *)(uintptr_t)address, (size_t)length) < 0) {
		reply(h->id, h->op, 0, -1, errno, NULL, 0);
		return;
	}
	if (address > m.start) {
		mappings[i].length = address - m.start;
		if (tail > 0)
			mappings[mapping_count++] = (struct mapping){ address + length, tail };
	} else if (tail > 0) {
		mappings[i] = (struct mapping){ address + length, tail };
	} else {
		mappings[i] = mappings[--mapping_count];
	}
	reply(h->id, h->op, 0, 0, 0, NULL, 0);
}

static void op_read(const struct hsmp_header *h, const uint8_t *p)
{
	if (!expect_length(h, "read", HSMP_READ_SIZE) || !expect_zero(h, "read", hsmp_get32(p + 12)))
		return;
	uint64_t address = hsmp_get64(p);
	uint32_t length = hsmp_get32(p + 8);
	if (length > HSMP_MAX_PAYLOAD) {
		refuse(h->id, h->op, E2BIG, "read: %" PRIu32 " bytes is more than a frame carries (%u)",
		       length, HSMP_MAX_PAYLOAD);
		return;
	}
	if (!inside_mappings(address, length)) {
		refuse(h->id, h->op, EFAULT,
		       "read: 0x%" PRIx64 "..+%" PRIu32 " is outside hsm-helper's mappings", address,
		       length);
		return;
	}
	reply(h->id, h->op, 0, 0, 0, (const void *)(uintptr_t)address, length);
}

static void op_write(const struct hsmp_header *h, const uint8_t *p)
{
	if (h->length < HSMP_WRITE_FIXED_SIZE) {
		refuse(h->id, h->op, EINVAL, "write payload is %" PRIu32 " bytes, shorter than %u",
		       h->length, HSMP_WRITE_FIXED_SIZE);
		return;
	}
	uint64_t address = hsmp_get64(p);
	uint32_t length = h->length - HSMP_WRITE_FIXED_SIZE;
	if (!inside_mappings(address, length)) {
		refuse(h->id, h->op, EFAULT,
		       "write: 0x%" PRIx64 "..+%" PRIu32 " is outside hsm-helper's mappings", address,
		       length);
		return;
	}
	if (length)
		memcpy((void *)(uintptr_t)address, p + HSMP_WRITE_FIXED_SIZE, length);
	reply(h->id, h->op, 0, 0, 0, NULL, 0);
}

static void op_eventfd(const struct hsmp_header *h, const uint8_t *p)
{
	if (!expect_length(h, "eventfd", HSMP_EVENTFD_SIZE) ||
	    !expect_zero(h, "eventfd", hsmp_get32(p + 4)))
		return;
	int fd = eventfd(hsmp_get32(p), EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0) {
		reply(h->id, h->op, 0, -1, errno, NULL, 0);
		return;
	}
	if (fd_track(fd, FD_EVENTFD) < 0) {
		close(fd);
		refuse(h->id, h->op, ENOMEM, "eventfd: no memory to track the fd");
		return;
	}
	reply(h->id, h->op, 0, fd, 0, NULL, 0);
}

/* eventfd_read and eventfd_write take any fd the helper opened; the kernel answers for it. */
static int own_fd(const struct hsmp_header *h, const char *what, int32_t fd)
{
	if (fd_kind_of(fd) != FD_NONE)
		return 1;
	refuse(h->id, h->op, EBADF, "%s: fd %" PRId32 " was not opened through hsm-helper", what,
	       fd);
	return 0;
}

static void op_eventfd_read(const struct hsmp_header *h, const uint8_t *p)
{
	if (!expect_length(h, "eventfd_read", HSMP_EVENTFD_READ_SIZE) ||
	    !expect_zero(h, "eventfd_read", hsmp_get32(p + 4)))
		return;
	int32_t fd = (int32_t)hsmp_get32(p);
	if (!own_fd(h, "eventfd_read", fd))
		return;
	uint64_t value;
	ssize_t r = read(fd, &value, sizeof(value));
	if (r != sizeof(value)) {
		reply(h->id, h->op, 0, -1, r < 0 ? errno : EIO, NULL, 0);
		return;
	}
	uint8_t payload[8];
	hsmp_put64(payload, value);
	reply(h->id, h->op, 0, 0, 0, payload, sizeof(payload));
}

static void op_eventfd_write(const struct hsmp_header *h, const uint8_t *p)
{
	if (!expect_length(h, "eventfd_write", HSMP_EVENTFD_WRITE_SIZE) ||
	    !expect_zero(h, "eventfd_write", hsmp_get32(p + 4)))
		return;
	int32_t fd = (int32_t)hsmp_get32(p);
	if (!own_fd(h, "eventfd_write", fd))
		return;
	uint64_t value = hsmp_get64(p + 8);
	ssize_t r = write(fd, &value, sizeof(value));
	if (r != sizeof(value)) {
		reply(h->id, h->op, 0, -1, r < 0 ? errno : EIO, NULL, 0);
		return;
	}
	reply(h->id, h->op, 0, 0, 0, NULL, 0);
}

#ifdef HSM_HELPER_TESTING
/* Test build only: a blocking call that needs no device, to prove out-of-order replies. */
static void op_test_wait(const struct hsmp_header *h, const uint8_t *p)
{
	if (!expect_length(h, "test_wait", HSMP_TEST_WAIT_SIZE) ||
	    !expect_zero(h, "test_wait", hsmp_get32(p + 4)))
		return;
	int32_t fd = (int32_t)hsmp_get32(p);
	if (fd_kind_of(fd) != FD_EVENTFD) {
		refuse(h->id, h->op, EBADF, "test_wait: fd %" PRId32 " is not a helper eventfd", fd);
		return;
	}
	start_blocking(h->id, h->op, fd, 0);
}
#endif

static void handle_frame(const struct hsmp_header *h, const uint8_t *p)
{
	if (h->version != HSMP_VERSION) {
		refuse(h->id, h->op, EPROTO, "protocol version %u; this hsm-helper speaks %u",
		       h->version, HSMP_VERSION);
		return;
	}
	if (h->id == 0 || h->flags != 0 || h->result != 0 || h->error != 0) {
		refuse(h->id, h->op, EPROTO,
		       "a request has a non-zero id and zero flags, result and errno");
		return;
	}
	switch (h->op) {
	case HSMP_OP_HELLO:
		op_hello(h);
		break;
	case HSMP_OP_OPEN:
		op_open(h, p);
		break;
	case HSMP_OP_CLOSE:
		op_close(h, p);
		break;
	case HSMP_OP_IOCTL:
		op_ioctl(h, p);
		break;
	case HSMP_OP_MMAP:
		op_mmap(h, p);
		break;
	case HSMP_OP_READ:
		op_read(h, p);
		break;
	case HSMP_OP_WRITE:
		op_write(h, p);
		break;
	case HSMP_OP_EVENTFD:
		op_eventfd(h, p);
		break;
	case HSMP_OP_EVENTFD_READ:
		op_eventfd_read(h, p);
		break;
	case HSMP_OP_MUNMAP:
		op_munmap(h, p);
		break;
	case HSMP_OP_EVENTFD_WRITE:
		op_eventfd_write(h, p);
		break;
#ifdef HSM_HELPER_TESTING
	case HSMP_OP_TEST_WAIT:
		op_test_wait(h, p);
		break;
#endif
	default:
		refuse(h->id, h->op, ENOSYS, "unknown op %u", h->op);
	}
}

/* ------------------------------------------------------------------------------------ */
/* Input: frames from stdin, resynchronising after garbage (PROTOCOL.md, "Bad input").   */

static uint8_t *in_buf;
static size_t in_cap, in_start, in_end;
/* Payload bytes of an oversized frame still to skip. */
static uint64_t in_discard;
/* Inside a run of garbage: one protocol error is reported per run, not per byte. */
static int in_resyncing;

static void protocol_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void protocol_error(const char *fmt, ...)
{
	char message[MESSAGE_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(message))
		n = sizeof(message) - 1;
	reply(0, HSMP_OP_PROTOCOL_ERROR, HSMP_FLAG_REFUSED, -1, EPROTO, message, (uint32_t)n);
}

static void process_input(void)
{
	static const uint8_t magic[4] = { 'H', 'S', 'M', 'P' };
	for (;;) {
		size_t avail = in_end - in_start;
		if (in_discard) {
			size_t skip = avail < in_discard ? avail : (size_t)in_discard;
			in_start += skip;
			in_discard -= skip;
			if (in_discard)
				return;
			continue;
		}
		if (avail < HSMP_HEADER_SIZE)
			return;
		const uint8_t *frame = in_buf + in_start;
		struct hsmp_header h;
		enum hsmp_header_status status = hsmp_decode_header(frame, &h);
		if (status != HSMP_HEADER_OK) {
			if (!in_resyncing) {
				protocol_error("%s; skipping input to the next valid header",
					       status == HSMP_HEADER_BAD_MAGIC
						       ? "bad magic: not a frame header"
						       : "bad header check: corrupt frame header");
				in_resyncing = 1;
			}
			const uint8_t *next = memmem(frame + 1, avail - 1, magic, sizeof(magic));
			if (next) {
				in_start = (size_t)(next - in_buf);
			} else {
				/* Keep a tail that may be the start of a magic split across reads. */
				in_start = in_end - (sizeof(magic) - 1);
			}
			continue;
		}
		in_resyncing = 0;
		if (h.length > HSMP_MAX_PAYLOAD) {
			/* The checked header makes the length trustworthy: skip exactly that much. */
			in_start += HSMP_HEADER_SIZE;
			in_discard = h.length;
			refuse(h.id, h.op, E2BIG,
			       "frame payload of %" PRIu32 " bytes is over the %u-byte limit",
			       h.length, HSMP_MAX_PAYLOAD);
			continue;
		}
		if (avail < HSMP_HEADER_SIZE + h.length)
			return;
		handle_frame(&h, frame + HSMP_HEADER_SIZE);
		in_start += HSMP_HEADER_SIZE + h.length;
	}
}

static void finish(int status)
{
	flush_main_out();
	close_all_fds();
	exit(status);
}

static void serve(void)
{
	for (;;) {
		process_input();
		flush_main_out();
		if (in_start == in_end) {
			in_start = in_end = 0;
		} else if (in_start > 0) {
			memmove(in_buf, in_buf + in_start, in_end - in_start);
			in_end -= in_start;
			in_start = 0;
		}
		ssize_t n = read(STDIN_FILENO, in_buf + in_end, in_cap - in_end);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		in_end += (size_t)n;
	}
	/* EOF: anything left over is a frame that will never be completed. */
	if (in_end > in_start || in_discard) {
		if (!in_resyncing)
			protocol_error("input ended inside a frame (%zu bytes of it received)",
				       in_end - in_start);
		finish(in_resyncing ? EXIT_CLEAN : EXIT_TRUNCATED);
	}
	finish(EXIT_CLEAN);
}

static void usage(FILE *to)
{
	fprintf(to,
		"usage: hsm-helper [--device PATH]\n"
		"\n"
		"Issues ACRN HSM syscalls for hsmctl's native backend. It speaks a binary\n"
		"protocol on stdin/stdout (helper/PROTOCOL.md) and is started by hsmctl;\n"
		"it is not meant to be run by hand.\n"
		"\n"
		"  --device PATH   the HSM device node (default /dev/acrn_hsm); the only\n"
		"                  path the open op accepts\n");
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
			device_path = argv[++i];
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return EXIT_CLEAN;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("hsm-helper protocol %u%s\n", HSMP_VERSION,
			       HELPER_FEATURES & HSMP_FEATURE_TESTING ? " (test build)" : "");
			return EXIT_CLEAN;
		} else {
			fprintf(stderr, "hsm-helper: unexpected argument '%s'\n", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (device_path[0] == 0 || strlen(device_path) > HSMP_MAX_PATH) {
		fprintf(stderr, "hsm-helper: --device must be 1 to %u bytes\n", HSMP_MAX_PATH);
		return EXIT_USAGE;
	}
	if (isatty(STDIN_FILENO))
		fprintf(stderr, "hsm-helper: reading binary frames from a terminal; it is meant "
				"to be started by hsmctl (see helper/PROTOCOL.md)\n");

	/* A vanished client shows up as a failed write, handled there, not as a signal. */
	signal(SIGPIPE, SIG_IGN);

	sem_init(&blocking_entered, 0, 0);
	in_cap = HSMP_HEADER_SIZE + HSMP_MAX_PAYLOAD + 64 * 1024;
	main_out.cap = 2 * ((size_t)HSMP_HEADER_SIZE + HSMP_MAX_PAYLOAD);
	in_buf = malloc(in_cap);
	main_out.data = malloc(main_out.cap);
	if (!in_buf || !main_out.data) {
		fprintf(stderr, "hsm-helper: out of memory\n");
		return EXIT_NO_MEMORY;
	}
	serve();
	return EXIT_CLEAN;
}
