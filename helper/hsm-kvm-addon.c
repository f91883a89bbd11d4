/*
 * build/hsm_kvm.node: the KVM CPU engine of the simulated ACRN hypervisor (issue 10). Each
 * vCPU of a VM is a KVM vCPU run by its own native thread; the JavaScript model keeps
 * ACRN's semantics (ioreq slots, dispatch, VM states). src/core/sim/hypervisor/cpu/kvm.ts
 * wraps this; nothing else uses it.
 *
 * How an access reaches JavaScript without allocating: every vCPU has a 64-byte exit
 * record in memory shared with JavaScript (an external ArrayBuffer per VM, layout below).
 * The vCPU thread fills it, marks it POSTED, bumps the module's `posted` counter and, when
 * the main thread is not polling, wakes it with a uv_async. kvm.ts delivers the exit
 * (TAKEN) and calls complete(), which stores the value, marks it DONE and wakes the vCPU
 * thread (a futex, after the thread spun as long as completions have been coming, at most
 * HSMCTL_KVM_SPIN_US, 50 µs by default: hsm-spin.h). A PIO exit with count > 1 (INS/OUTS)
 * is delivered one element at a time, in order.
 *
 * The main thread never touches a vCPU (its fd, its kvm_run) while the thread may: it
 * "holds" the vCPU (hold++, a signal if it is inside KVM_RUN), waits until the thread says
 * it is parked, does its ioctls and lets go. The kick signal is blocked in vCPU threads
 * except inside KVM_RUN (KVM_SET_SIGNAL_MASK), so a kick that comes early makes the next
 * KVM_RUN return EINTR at once, and the handler touches nothing (kvmtool's way).
 *
 *   open()                     /dev/kvm usable? undefined, or one line saying why not
 *   control                    ArrayBuffer: [0] posted counter (u32), [16] main polling
 *   setWake(fn)                fn() runs on the main thread after a vCPU posted while the
 *                              main thread was not polling
 *   setPolling(on)             the main thread is (not) polling: vCPUs (do not) wake it
 *   wait(seen, ns)             spin until control.posted != seen, at most ns: whether it did
 *   createVm(vcpus)            { vm, records } (records: the exit records, 64 bytes each)
 *   setMemory(vm, regions)     regions: [{ gpa, size, hostAddress, readonly }]
 *   setRegs(vm, i, bytes)      struct acrn_regs, as ACRN's set_vcpu_regs() reads it
 *   getRegs(vm, i)             struct acrn_regs (Uint8Array)
 *   run(vm, i) / pause(vm, i)  i = -1: every vCPU. pause returns once they are parked
 *   reset(vm)                  a fresh KVM VM: power-on vCPUs (paused), irqchip reset
 *   complete(vm, i, value)     the vCPU's TAKEN exit is done (value: bigint)
 *   fault(vm, i)               the reason of a FAULT record (and the record is cleared)
 *   injectMsi(vm, addr, data)  KVM_SIGNAL_MSI: how many were delivered
 *   setIrqLine(vm, gsi, level) KVM_IRQ_LINE, GSIs routed as ACRN does (below 24 only)
 *   status(vm)                 [{ state, exits: { reason: count } }]
 *   destroy(vm)                threads joined, fds closed
 */
#define NAPI_VERSION 8
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/acrn.h>
#include <linux/futex.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define HSM_ADDON "hsm_kvm"
#include "hsm-lane.h"
#include "hsm-napi.h"
#include "hsm-spin.h"

/*
 * Every ioctl but KVM_RUN is made again when a signal interrupted it: KVM_CREATE_VM fails
 * with EINTR whenever one is pending (a profiler's SIGPROF, a child's SIGCHLD in hsmd), and
 * a VM would then be left without vCPUs. Only KVM_RUN's EINTR means something: a kick.
 */
#define kvm_ioctl(fd, request, arg)                                                       \
	({                                                                                \
		int r_;                                                                   \
		do                                                                        \
			r_ = ioctl((fd), (request), (arg));                               \
		while (r_ < 0 && errno == EINTR);                                         \
		r_;                                                                       \
	})

#define MAX_VCPUS 64
#define MAX_REGIONS 512
#define PAGE 4096ULL

/* QEMU's places for the pages KVM needs on Intel without unrestricted guest: just below
 * the BIOS area at 4 GiB - 16 MiB, where no ACRN VM has RAM. */
#define IDENTITY_MAP_ADDR 0xfeffc000ULL
#define TSS_ADDR 0xfeffd000ULL

/* ---- the exit record (kvm.ts reads it through typed arrays: keep the offsets) ---- */
/* REC_LANE: the exit went out through the lane (hsm-lane.h) and waits for its completion
 * there; JavaScript never sees it as an exit. */
enum { REC_NONE = 0, REC_POSTED = 1, REC_TAKEN = 2, REC_DONE = 3, REC_FAULT = 4, REC_LANE = 5 };
enum { KIND_PIO = 0, KIND_MMIO = 1 };

struct exit_record {
	_Atomic int32_t state; /* 0 */
	int32_t kind;          /* 4 */
	int32_t write;         /* 8 */
	int32_t size;          /* 12 */
	uint64_t addr;         /* 16 */
	uint64_t value;        /* 24: the written value; complete() puts the read value here */
	uint8_t pad[32];
};
_Static_assert(sizeof(struct exit_record) == 64, "exit record layout");

struct control {
	_Atomic uint32_t posted;       /* 0 */
	uint32_t pad0[3];
	_Atomic uint32_t main_polling; /* 16 */
	uint32_t pad1[3];
	_Atomic uint32_t log_ready;    /* 32: a lane log has completions to drain */
	uint32_t pad2[7];
};

/* ---- counts of exits by reason (status()) ---- */
enum {
	COUNT_PIO,
	COUNT_MMIO,
	COUNT_KICK,
	COUNT_SHUTDOWN,
	COUNT_INTERNAL_ERROR,
	COUNT_FAIL_ENTRY,
	COUNT_SYSTEM_EVENT,
	COUNT_OTHER,
	N_COUNTS
};
static const char *const count_names[N_COUNTS] = {
	"pio", "mmio", "kick", "shutdown", "internal-error", "fail-entry", "system-event", "other",
};

/* Statistics read from the vCPU's binary stats fd without stopping it. */
enum { STAT_BLOCKING, STAT_HALT_EXITS, STAT_IRQ_INJECTIONS, STAT_IRQ_WINDOW, N_STATS };
static const char *const stat_names[N_STATS] = { "blocking", "halt_exits", "irq_injections",
						  "irq_window_exits" };

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd;
	int stats_fd;
	long stat_offset[N_STATS]; /* -1: not there */
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	struct exit_record *rec;

	_Atomic uint32_t wake;     /* futex: bumped by the main thread for any news */
	_Atomic int32_t sleeping;  /* the thread is (about to be) in a futex wait on wake */
	_Atomic uint32_t parked;   /* futex: 1 while the thread keeps off the vCPU */
	_Atomic int32_t main_waits; /* the main thread waits for parked */
	_Atomic int32_t in_run;    /* the thread is in (or about to enter) KVM_RUN */
	_Atomic int32_t hold;      /* main-thread operations that need the thread parked */
	_Atomic int32_t looking;   /* of those, reads only (registers, mp_state): their kick
				    * is not the guest's exit, and `vm show` must not change
				    * the counts it shows */
	_Atomic int32_t paused;
	_Atomic int32_t stopped;   /* faulted: runs no more until reset or setRegs */
	_Atomic int32_t quit;

	/* The thread's own: the PIO exit being delivered element by element. */
	bool in_io, in_mmio;
	uint32_t io_index;
	/* When the exit waiting for completion was posted, and how long completions are
	 * worth spinning for (hsm-spin.h): a client in another process answers late on a
	 * machine with more runnable threads than CPUs, and the spin would hold its CPU. */
	uint64_t posted_at;
	uint64_t spin_budget;

	char fault[400];
	_Atomic uint64_t counts[N_COUNTS];
	uint64_t carried[N_STATS]; /* stats of KVM vCPUs before a reset */
};

struct region {
	uint64_t gpa, size, host;
	bool readonly;
};

/* The exit records are freed once both the VM and JavaScript's view of them are gone. */
struct records {
	struct exit_record *mem;
	size_t length;
	int refs;
};

struct vm {
	int fd;
	unsigned nvcpus;
	struct vcpu vcpus[MAX_VCPUS];
	struct records *records;
	struct region regions[MAX_REGIONS];
	unsigned nregions, nslots;
	bool destroyed;
	struct vm *next;

	/* The lane (hsm-lane.h), once JavaScript attached one: its page, the VM's ioreq page
	 * (both kept alive by references), whether dispatch may take it (not while CLEAR_VM_IOREQ
	 * runs), the ports some kernel client or HSM itself handles (1 bit each: those go to
	 * JavaScript), and the log of completions JavaScript drains for its observers. */
	struct hsm_lane *_Atomic lane;
	/* The model has ATTACH waiters of its own (a call that came over the ring): a request
	 * the lane dispatches wakes the main thread too. */
	_Atomic int32_t lane_js_waiters;
	uint8_t *ioreq;
	napi_ref lane_ref, ioreq_ref;
	_Atomic int32_t lane_dispatch;
	_Atomic uint8_t routes[65536 / 8];
	struct records *log;
};

/* The lane's completion log: per slot a ring of LOG_ENTRIES entries, written by the slot's
 * vCPU thread and read by JavaScript (kvm.ts). Header i at i * 64: u32 head (written by
 * the vCPU thread), u32 tail (by JavaScript), u32 lost, u32 armed (JavaScript stopped
 * draining on a timer: the next entry wakes it). Entry: u64 posted ns, u64 done ns
 * (CLOCK_MONOTONIC), u64 value, 8 bytes free, then the slot's first LOG_SLOT_BYTES. */
#define LOG_ENTRIES 256u
#define LOG_SLOT_BYTES 144u
#define LOG_ENTRY_SIZE (32u + LOG_SLOT_BYTES)
#define LOG_HEADERS (HSM_LANE_SLOTS * 64u)
_Static_assert(LOG_SLOT_BYTES >= offsetof(struct acrn_io_request, processed) + 4,
	       "the log keeps the slot up to `processed`");
struct log_header {
	_Atomic uint32_t head;
	_Atomic uint32_t tail;
	_Atomic uint32_t lost;
	_Atomic uint32_t armed;
	uint32_t pad[12];
};

/* ---- module state (one Node.js environment: the main thread's) ---- */
static int kvm_fd = -1;
static char kvm_error[256];
static int run_size;
static struct kvm_cpuid2 *supported_cpuid;
static bool has_readonly_mem;
static struct control *control;
static int kick_signal;
static struct vm *vms;
static napi_env main_env;
static uv_async_t wake_async;
static bool wake_async_ready;
static napi_ref wake_fn;
static napi_async_context wake_context;
static napi_async_cleanup_hook_handle cleanup_handle;
static unsigned spin_ns = 50000;

static void futex_wait(_Atomic uint32_t *word, uint32_t value)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* ======================= the vCPU thread ======================= */

static void post(struct vcpu *v, int32_t state)
{
	v->posted_at = hsm_now_ns();
	atomic_store(&v->rec->state, state);
	atomic_fetch_add(&control->posted, 1);
	if (!atomic_load(&control->main_polling))
		uv_async_send(&wake_async);
}

static void post_fault(struct vcpu *v, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void post_fault(struct vcpu *v, const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	vsnprintf(v->fault, sizeof(v->fault), format, ap);
	va_end(ap);
	v->in_io = v->in_mmio = false;
	atomic_store(&v->stopped, 1);
	post(v, REC_FAULT);
}

/* The current element of the PIO exit, to JavaScript. */
static void post_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct exit_record *rec = v->rec;
	rec->kind = KIND_PIO;
	rec->write = run->io.direction == KVM_EXIT_IO_OUT;
	rec->size = run->io.size;
	rec->addr = run->io.port;
	rec->value = 0;
	if (rec->write)
		memcpy(&rec->value, (uint8_t *)run + run->io.data_offset + (size_t)v->io_index * run->io.size,
		       run->io.size);
	atomic_fetch_add(&v->counts[COUNT_PIO], 1);
	post(v, REC_POSTED);
}

static void post_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct exit_record *rec = v->rec;
	uint32_t len = run->mmio.len > 8 ? 8 : run->mmio.len;
	rec->kind = KIND_MMIO;
	rec->write = run->mmio.is_write;
	rec->size = (int32_t)len;
	rec->addr = run->mmio.phys_addr;
	rec->value = 0;
	if (rec->write)
		memcpy(&rec->value, run->mmio.data, len);
	atomic_fetch_add(&v->counts[COUNT_MMIO], 1);
	post(v, REC_POSTED);
}

static bool lane_take(struct vcpu *v);

/* The current element of a PIO exit: through the lane if it may go that way, else to
 * JavaScript. */
static void deliver_io(struct vcpu *v)
{
	if (!lane_take(v))
		post_io(v);
}

/* complete() came: the value goes where KVM wants it, then the next element, if any. */
static void finish_access(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint64_t value = v->rec->value;
	atomic_store(&v->rec->state, REC_NONE);
	if (v->in_io) {
		if (run->io.direction == KVM_EXIT_IO_IN)
			memcpy((uint8_t *)run + run->io.data_offset + (size_t)v->io_index * run->io.size,
			       &value, run->io.size);
		if (++v->io_index < run->io.count)
			deliver_io(v);
		else
			v->in_io = false;
	} else if (v->in_mmio) {
		if (!run->mmio.is_write)
			memcpy(run->mmio.data, &value, run->mmio.len > 8 ? 8 : run->mmio.len);
		v->in_mmio = false;
	}
}

/* A kick is blocked outside KVM_RUN, so it stays pending after the EINTR it caused: take
 * it (as QEMU's kvm_eat_signals() does), or every KVM_RUN would return EINTR at once. */
static void eat_kicks(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, kick_signal);
	struct timespec zero = { 0, 0 };
	while (sigtimedwait(&set, NULL, &zero) > 0)
		;
}

static void run_once(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	int r = ioctl(v->fd, KVM_RUN, 0);
	int e = errno;
	atomic_store(&v->in_run, 0);
	if (r < 0) {
		if (e == EINTR || e == EAGAIN) {
			eat_kicks();
			if (!atomic_load(&v->looking))
				atomic_fetch_add(&v->counts[COUNT_KICK], 1);
			return;
		}
		if (e == EFAULT)
			post_fault(v, "KVM_RUN: %s (guest memory that is not mapped in this process?)",
				   strerror(e));
		else
			post_fault(v, "KVM_RUN: %s", strerror(e));
		return;
	}
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		v->in_io = true;
		v->io_index = 0;
		deliver_io(v);
		break;
	case KVM_EXIT_MMIO:
		v->in_mmio = true;
		post_mmio(v);
		break;
	case KVM_EXIT_INTR:
		if (!atomic_load(&v->looking))
			atomic_fetch_add(&v->counts[COUNT_KICK], 1);
		break;
	case KVM_EXIT_SHUTDOWN:
		atomic_fetch_add(&v->counts[COUNT_SHUTDOWN], 1);
		post_fault(v, "triple fault: the vCPU shut down (KVM_EXIT_SHUTDOWN)");
		break;
	case KVM_EXIT_FAIL_ENTRY:
		atomic_fetch_add(&v->counts[COUNT_FAIL_ENTRY], 1);
		post_fault(v, "VM entry failed (hardware reason %#llx): the registers are not a valid state",
			   (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR: {
		static const char *const sub[] = { "", "instruction emulation failed",
						   "simultaneous exceptions", "delivery event failed" };
		atomic_fetch_add(&v->counts[COUNT_INTERNAL_ERROR], 1);
		uint32_t s = run->internal.suberror;
		post_fault(v, "KVM internal error %u%s%s", s, s < 4 && s ? ": " : "",
			   s < 4 ? sub[s] : "");
		break;
	}
	case KVM_EXIT_SYSTEM_EVENT:
		atomic_fetch_add(&v->counts[COUNT_SYSTEM_EVENT], 1);
		post_fault(v, "system event %u (%s)", run->system_event.type,
			   run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN ? "shutdown"
			   : run->system_event.type == KVM_SYSTEM_EVENT_RESET  ? "reset"
			   : run->system_event.type == KVM_SYSTEM_EVENT_CRASH  ? "crash"
									       : "other");
		break;
	default:
		atomic_fetch_add(&v->counts[COUNT_OTHER], 1);
		post_fault(v, "unexpected KVM exit reason %u", run->exit_reason);
		break;
	}
}

/*
 * Parked (the main thread's holds need not wait for us), then, with `spin`, a spin while
 * answers have been coming quickly (hsm-spin.h: the learned budget, and only with a CPU
 * to spare) until the main thread has news or `word` moves from `word_seen`: whether
 * either did.
 */
static bool park_and_spin(struct vcpu *v, uint32_t seen, bool spin, _Atomic uint32_t *word,
			  uint32_t word_seen)
{
	atomic_store(&v->parked, 1);
	if (atomic_load(&v->main_waits))
		futex_wake(&v->parked);
	if (v->spin_budget > spin_ns)
		v->spin_budget = spin_ns;
	if (!spin || !v->spin_budget || !hsm_spin_allowed())
		return false;
	uint64_t deadline = v->posted_at + v->spin_budget;
	for (unsigned i = 0;; i++) {
		if (atomic_load_explicit(&v->wake, memory_order_acquire) != seen ||
		    atomic_load_explicit(word, memory_order_acquire) != word_seen)
			return true;
		if ((i & 63) == 63 && hsm_now_ns() >= deadline)
			return false;
		hsm_relax(i);
	}
}

/* ======================= the lane (hsm-lane.h) ======================= */

static inline void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/*
 * The current element of a PIO exit through the lane, as the hypervisor's trap and HSM's
 * dispatch would send it (§4.1, §4.3): the slot filled as io.ts fills it, PENDING, then
 * the default client's (kernel_handled 0, PROCESSING, its pending bit, its waiters woken).
 * Only where dispatch would choose the default client: no kernel client's range and no
 * PCI configuration port (§4.6) holds the port (`routes`, kept by JavaScript). False:
 * JavaScript takes it (post_io), as it takes every exit of a held or paused vCPU.
 */
static bool lane_take(struct vcpu *v)
{
	struct vm *vm = v->vm;
	struct hsm_lane *lane = atomic_load(&vm->lane);
	if (!lane || v->index >= HSM_LANE_SLOTS || !atomic_load(&vm->lane_dispatch) ||
	    atomic_load(&lane->state) != HSM_LANE_ON || atomic_load(&v->hold) ||
	    atomic_load(&v->paused))
		return false;
	struct kvm_run *run = v->run;
	uint32_t port = run->io.port, size = run->io.size;
	for (uint32_t p = port; p < port + size && p < 65536; p++)
		if (atomic_load_explicit(&vm->routes[p >> 3], memory_order_relaxed) & (1u << (p & 7)))
			return false;
	struct acrn_io_request *req = hsm_lane_slot(vm->ioreq, v->index);
	struct acrn_pio_request *pio = &req->reqs.pio_request;
	bool write = run->io.direction == KVM_EXIT_IO_OUT;
	memset(&req->reqs, 0, sizeof(req->reqs));
	req->type = ACRN_IOREQ_TYPE_PORTIO;
	req->completion_polling = 0;
	pio->direction = write ? ACRN_IOREQ_DIR_WRITE : ACRN_IOREQ_DIR_READ;
	pio->address = port;
	pio->size = size;
	if (write) {
		uint32_t value = 0;
		memcpy(&value, (uint8_t *)run + run->io.data_offset + (size_t)v->io_index * size,
		       size > 4 ? 4 : size);
		pio->value = value;
	}
	req->kernel_handled = 0;
	atomic_store(&lane->owner[v->index], 1);
	atomic_store(&v->rec->state, REC_LANE);
	v->posted_at = hsm_now_ns();
	atomic_fetch_add(&v->counts[COUNT_PIO], 1);
	_Atomic uint32_t *processed = hsm_lane_processed(vm->ioreq, v->index);
	atomic_store(processed, ACRN_IOREQ_STATE_PENDING);
	/* The model's dispatch may have seen it PENDING meanwhile and taken it (or completed
	 * it, during CLEAR_VM_IOREQ): then it did the rest, and its completion wakes us. */
	uint32_t pending = ACRN_IOREQ_STATE_PENDING;
	if (atomic_compare_exchange_strong(processed, &pending, ACRN_IOREQ_STATE_PROCESSING)) {
		atomic_fetch_or(&lane->pending, 1u << v->index);
		hsm_lane_ring_bell(lane);
		if (atomic_load(&vm->lane_js_waiters)) {
			atomic_store(&control->log_ready, 1);
			uv_async_send(&wake_async);
		}
	}
	return true;
}

/* A completion for JavaScript's observers (the trace): the slot as the client left it. */
static void lane_log(struct vcpu *v, const struct acrn_io_request *slot, uint64_t value,
		     uint64_t now)
{
	struct vm *vm = v->vm;
	struct records *log = vm->log;
	if (!log)
		return;
	struct log_header *h = (struct log_header *)((uint8_t *)log->mem + (size_t)v->index * 64);
	uint32_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
	uint32_t used = head - atomic_load_explicit(&h->tail, memory_order_acquire);
	if (used >= LOG_ENTRIES) {
		atomic_fetch_add(&h->lost, 1);
	} else {
		uint8_t *e = (uint8_t *)log->mem + LOG_HEADERS +
			     ((size_t)v->index * LOG_ENTRIES + head % LOG_ENTRIES) * LOG_ENTRY_SIZE;
		put64(e, v->posted_at);
		put64(e + 8, now);
		put64(e + 16, value);
		memcpy(e + 32, slot, LOG_SLOT_BYTES);
		atomic_store_explicit(&h->head, head + 1, memory_order_release);
		used++;
	}
	/* While entries keep coming JavaScript drains on a timer; otherwise it armed the log. */
	if (atomic_exchange(&h->armed, 0) || used == LOG_ENTRIES / 2) {
		atomic_store(&control->log_ready, 1);
		uv_async_send(&wake_async);
	}
}

/* The lane's request completed: emulate_io_post (a read's value to the guest, the slot
 * FREE), then the exit's next element, or the guest runs on. */
static void lane_finish(struct vcpu *v)
{
	struct vm *vm = v->vm;
	struct hsm_lane *lane = atomic_load(&vm->lane);
	unsigned i = v->index;
	struct acrn_io_request *slot = hsm_lane_slot(vm->ioreq, i);
	struct kvm_run *run = v->run;
	uint64_t value = 0;
	if (run->io.direction == KVM_EXIT_IO_IN) {
		uint32_t x = slot->reqs.pio_request.value;
		value = run->io.size >= 4 ? x : x & ((1u << (8 * run->io.size)) - 1);
	}
	uint64_t now = hsm_now_ns();
	lane_log(v, slot, value, now);
	atomic_store(hsm_lane_processed(vm->ioreq, i), ACRN_IOREQ_STATE_FREE);
	atomic_store(&lane->owner[i], 0);
	hsm_spin_learn(&v->spin_budget, now - v->posted_at, spin_ns);
	v->rec->value = value;
	finish_access(v);
}

static void park(struct vcpu *v, uint32_t seen, bool spin);

/*
 * Waiting for the lane's request: finished once COMPLETE, else the program's NOTIFY
 * (after a spin while completions have been coming quickly) wakes it through done[i].
 * Parked meanwhile, so that the main thread's holds need not wait for the program; and a
 * held vCPU's state is the main thread's: the request is finished only when no hold is
 * taken.
 */
static void lane_wait(struct vcpu *v, uint32_t seen)
{
	struct vm *vm = v->vm;
	struct hsm_lane *lane = atomic_load(&vm->lane);
	unsigned i = v->index;
	_Atomic uint32_t *processed = hsm_lane_processed(vm->ioreq, i);
	if (atomic_load(&v->hold)) {
		park(v, seen, false);
		return;
	}
	uint32_t done = atomic_load(&lane->done[i]);
	if (atomic_load_explicit(processed, memory_order_acquire) == ACRN_IOREQ_STATE_COMPLETE) {
		lane_finish(v);
		return;
	}
	/* Every completion (the shim's NOTIFY, the model's) bumps done[i] after COMPLETE. */
	if (park_and_spin(v, seen, true, &lane->done[i], done))
		return;
	atomic_store(&lane->waiting[i], 1);
	if (atomic_load_explicit(processed, memory_order_acquire) != ACRN_IOREQ_STATE_COMPLETE &&
	    atomic_load(&v->wake) == seen)
		hsm_lane_futex_wait(&lane->done[i], done);
	atomic_store(&lane->waiting[i], 0);
}

/* Keep off the vCPU until the main thread has news; spin first when an exit waits. */
static void park(struct vcpu *v, uint32_t seen, bool spin)
{
	if (park_and_spin(v, seen, spin, &v->wake, seen))
		return;
	atomic_store(&v->sleeping, 1);
	futex_wait(&v->wake, seen);
	atomic_store(&v->sleeping, 0);
}

static void *vcpu_main(void *arg)
{
	struct vcpu *v = arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	for (;;) {
		uint32_t seen = atomic_load(&v->wake);
		atomic_store(&v->parked, 0);
		if (atomic_load(&v->quit))
			break;
		int32_t st = atomic_load(&v->rec->state);
		if (st == REC_LANE) {
			lane_wait(v, seen);
			continue;
		}
		bool waiting = st == REC_POSTED || st == REC_TAKEN;
		if (atomic_load(&v->hold) || atomic_load(&v->paused) || atomic_load(&v->stopped) ||
		    waiting || st == REC_FAULT) {
			park(v, seen, waiting);
			continue;
		}
		if (st == REC_DONE) {
			hsm_spin_learn(&v->spin_budget, hsm_now_ns() - v->posted_at, spin_ns);
			finish_access(v);
			continue;
		}
		/* in_run, then the holds again: the main thread either sees in_run and kicks,
		 * or its hold is seen here. */
		atomic_store(&v->in_run, 1);
		if (atomic_load(&v->hold) || atomic_load(&v->paused) || atomic_load(&v->quit)) {
			atomic_store(&v->in_run, 0);
			continue;
		}
		run_once(v);
	}
	atomic_store(&v->parked, 1);
	futex_wake(&v->parked);
	return NULL;
}

/* ======================= main-thread side ======================= */

static void nudge(struct vcpu *v)
{
	atomic_fetch_add(&v->wake, 1);
	if (atomic_load(&v->sleeping))
		futex_wake(&v->wake);
	/* A thread waiting for the lane sleeps on done[i], not on wake. */
	struct hsm_lane *lane = atomic_load(&v->vm->lane);
	if (lane && v->index < HSM_LANE_SLOTS && atomic_load(&lane->waiting[v->index]))
		hsm_lane_signal_done(lane, v->index);
}

static void kick(struct vcpu *v)
{
	if (atomic_load(&v->in_run))
		pthread_kill(v->thread, kick_signal);
	nudge(v);
}

static void wait_parked(struct vcpu *v)
{
	if (!v->started)
		return;
	atomic_store(&v->main_waits, 1);
	for (unsigned i = 0; !atomic_load(&v->parked); i++) {
		if (i < 1000)
			hsm_relax(i);
		else
			futex_wait(&v->parked, 0);
	}
	atomic_store(&v->main_waits, 0);
}

static void hold(struct vcpu *v)
{
	atomic_fetch_add(&v->hold, 1);
	kick(v);
	wait_parked(v);
}

static void release(struct vcpu *v)
{
	atomic_fetch_sub(&v->hold, 1);
	nudge(v);
}

/* A hold to read the vCPU's state: the exit it causes is not counted as a kick. */
static void hold_to_look(struct vcpu *v)
{
	atomic_fetch_add(&v->looking, 1);
	hold(v);
}

static void release_look(struct vcpu *v)
{
	release(v);
	atomic_fetch_sub(&v->looking, 1);
}

static void hold_all(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		atomic_fetch_add(&vm->vcpus[i].hold, 1);
		kick(&vm->vcpus[i]);
	}
	for (unsigned i = 0; i < vm->nvcpus; i++)
		wait_parked(&vm->vcpus[i]);
}

static void release_all(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nvcpus; i++)
		release(&vm->vcpus[i]);
}

/* ---- registers: struct acrn_regs <-> KVM, as ACRN's set_vcpu_regs() (vcpu.c) ---- */

#define CR0_PE 0x1ULL
#define CR0_PG 0x80000000ULL
#define CR4_MCE (1ULL << 6)
#define CR4_VMXE (1ULL << 13)
#define CR4_SMXE (1ULL << 14)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

/* ACRN's vcpu.h */
#define REAL_MODE_DATA_SEG_AR 0x0093U
#define PROTECTED_MODE_DATA_SEG_AR 0xc093U
#define REAL_MODE_SEG_LIMIT 0xffffU
#define PROTECTED_MODE_SEG_LIMIT 0xffffffffU
#define LDTR_AR 0x0082U
#define TR_AR 0x008bU

/* A segment from VMX access-rights format (what ACRN's cs_ar is). */
static void segment_from_ar(struct kvm_segment *s, uint16_t selector, uint64_t base, uint32_t limit,
			    uint32_t ar)
{
	s->selector = selector;
	s->base = base;
	s->limit = limit;
	s->type = ar & 0xf;
	s->s = (ar >> 4) & 1;
	s->dpl = (ar >> 5) & 3;
	s->present = (ar >> 7) & 1;
	s->avl = (ar >> 12) & 1;
	s->l = (ar >> 13) & 1;
	s->db = (ar >> 14) & 1;
	s->g = (ar >> 15) & 1;
	s->unusable = (ar >> 16) & 1;
	s->padding = 0;
}

static uint32_t ar_of(const struct kvm_segment *s)
{
	return (uint32_t)(s->type & 0xf) | (uint32_t)(s->s & 1) << 4 | (uint32_t)(s->dpl & 3) << 5 |
	       (uint32_t)(s->present & 1) << 7 | (uint32_t)(s->avl & 1) << 12 | (uint32_t)(s->l & 1) << 13 |
	       (uint32_t)(s->db & 1) << 14 | (uint32_t)(s->g & 1) << 15 | (uint32_t)(s->unusable & 1) << 16;
}

/* ACRN's realmode_init_vregs: the state after power-on and reset. */
static void realmode_init_regs(struct acrn_regs *r)
{
	memset(r, 0, sizeof(*r));
	r->gdt.limit = 0xffff;
	r->idt.limit = 0xffff;
	r->cs_ar = 0x009f;
	r->cs_sel = 0xf000;
	r->cs_base = 0xffff0000;
	r->cs_limit = 0xffff;
	r->rip = 0xfff0;
	r->cr0 = 0x30; /* ET | NE */
}

static int set_regs(struct vcpu *v, const struct acrn_regs *r, const char **failed)
{
	struct kvm_sregs s;
	*failed = "KVM_GET_SREGS";
	if (kvm_ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return -1;
	/* set_vcpu_regs(): every segment but CS gets base 0 and the mode's limit and
	 * attributes; CS is taken whole; LDTR and TR are fixed. */
	bool pe = (r->cr0 & CR0_PE) != 0;
	uint32_t attr = pe ? PROTECTED_MODE_DATA_SEG_AR : REAL_MODE_DATA_SEG_AR;
	uint32_t limit = pe ? PROTECTED_MODE_SEG_LIMIT : REAL_MODE_SEG_LIMIT;
	segment_from_ar(&s.cs, r->cs_sel, r->cs_base, r->cs_limit, r->cs_ar);
	segment_from_ar(&s.ss, r->ss_sel, 0, limit, attr);
	segment_from_ar(&s.ds, r->ds_sel, 0, limit, attr);
	segment_from_ar(&s.es, r->es_sel, 0, limit, attr);
	segment_from_ar(&s.fs, r->fs_sel, 0, limit, attr);
	segment_from_ar(&s.gs, r->gs_sel, 0, limit, attr);
	segment_from_ar(&s.ldt, r->ldt_sel, 0, 0xffff, LDTR_AR);
	segment_from_ar(&s.tr, r->tr_sel, 0, 0xffff, TR_AR);
	s.gdt.base = r->gdt.base;
	s.gdt.limit = r->gdt.limit;
	s.idt.base = r->idt.base;
	s.idt.limit = r->idt.limit;
	memset(s.gdt.padding, 0, sizeof(s.gdt.padding));
	memset(s.idt.padding, 0, sizeof(s.idt.padding));
	s.cr0 = r->cr0;
	s.cr3 = r->cr3;
	/* init_guest_state() keeps VMXE, SMXE and MCE out of the guest's CR4. */
	s.cr4 = r->cr4 & ~(CR4_VMXE | CR4_SMXE | CR4_MCE);
	s.cr2 = 0;
	/* vmx_write_cr0() at VMCS init: paging with EFER.LME on enters long mode (LMA). */
	s.efer = r->ia32_efer;
	if ((s.efer & EFER_LME) && (s.cr0 & CR0_PG))
		s.efer |= EFER_LMA;
	memset(s.interrupt_bitmap, 0, sizeof(s.interrupt_bitmap));

	struct kvm_regs g = {
		.rax = r->gprs.rax, .rbx = r->gprs.rbx, .rcx = r->gprs.rcx, .rdx = r->gprs.rdx,
		.rsi = r->gprs.rsi, .rdi = r->gprs.rdi, .rsp = r->gprs.rsp, .rbp = r->gprs.rbp,
		.r8 = r->gprs.r8,   .r9 = r->gprs.r9,   .r10 = r->gprs.r10, .r11 = r->gprs.r11,
		.r12 = r->gprs.r12, .r13 = r->gprs.r13, .r14 = r->gprs.r14, .r15 = r->gprs.r15,
		.rip = r->rip,
	};
	/* set_vcpu_regs(): 0 means 0x2; otherwise CF, PF, AF, ZF, SF and OF are cleared.
	 * Bit 1 is forced on too: VM entry fails without it on ACRN's hardware as well. */
	g.rflags = r->rflags == 0 ? 0x2 : ((r->rflags & ~0x8d5ULL) | 0x2);
	*failed = "KVM_SET_SREGS";
	if (kvm_ioctl(v->fd, KVM_SET_SREGS, &s) < 0)
		return -1;
	*failed = "KVM_SET_REGS";
	return kvm_ioctl(v->fd, KVM_SET_REGS, &g);
}

static int get_regs(struct vcpu *v, struct acrn_regs *r)
{
	struct kvm_sregs s;
	struct kvm_regs g;
	if (kvm_ioctl(v->fd, KVM_GET_REGS, &g) < 0 || kvm_ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return -1;
	memset(r, 0, sizeof(*r));
	r->gprs.rax = g.rax;
	r->gprs.rcx = g.rcx;
	r->gprs.rdx = g.rdx;
	r->gprs.rbx = g.rbx;
	r->gprs.rsp = g.rsp;
	r->gprs.rbp = g.rbp;
	r->gprs.rsi = g.rsi;
	r->gprs.rdi = g.rdi;
	r->gprs.r8 = g.r8;
	r->gprs.r9 = g.r9;
	r->gprs.r10 = g.r10;
	r->gprs.r11 = g.r11;
	r->gprs.r12 = g.r12;
	r->gprs.r13 = g.r13;
	r->gprs.r14 = g.r14;
	r->gprs.r15 = g.r15;
	r->rip = g.rip;
	r->rflags = g.rflags;
	r->gdt.limit = s.gdt.limit;
	r->gdt.base = s.gdt.base;
	r->idt.limit = s.idt.limit;
	r->idt.base = s.idt.base;
	r->cs_base = s.cs.base;
	r->cs_limit = s.cs.limit;
	r->cs_ar = ar_of(&s.cs);
	r->cr0 = s.cr0;
	r->cr3 = s.cr3;
	r->cr4 = s.cr4;
	r->ia32_efer = s.efer;
	r->cs_sel = s.cs.selector;
	r->ss_sel = s.ss.selector;
	r->ds_sel = s.ds.selector;
	r->es_sel = s.es.selector;
	r->fs_sel = s.fs.selector;
	r->gs_sel = s.gs.selector;
	r->ldt_sel = s.ldt.selector;
	r->tr_sel = s.tr.selector;
	return 0;
}

/* ---- CPUID: what KVM supports, as ACRN presents it to a post-launched VM ----
 *
 * ACRN's hypervisor (hypervisor/arch/x86/guest/vcpuid.c, set_vcpuid_entries and
 * guest_cpuid_01h/06h, set_vcpuid_extfeat) gives a User VM the host's leaves with what it
 * does not virtualize masked, and its own hypervisor leaves; here KVM's supported leaves
 * stand for the host's. For a post-launched VM without nested VMX, PMU passthrough, vSGX,
 * vCAT or vHWP (acrn-dm's VMs on the simulation), that is:
 *  - leaf 0: at least 0x16 (leaf 0x16 emulated from the TSC where the CPU lacks it);
 *  - leaf 1: initial APIC id; hypervisor bit; no VMX, SMX, EST, SDBG, MONITOR, DTES64,
 *    DS-CPL, PDCM (ECX) nor DS (EDX);
 *  - leaf 5 (MONITOR/MWAIT), 0xA (PMU), 0xF and 0x10 (RDT), 0x12 (SGX), 0x14 (PT),
 *    0x1B (PCONFIG): absent (all zeros);
 *  - leaf 6: no HWP, HWP notification/activity window/EPP/package request/control, HFI,
 *    ITD (EAX), no hardware coordination feedback (ECX), EDX 0;
 *  - leaf 7.0: no PQM, PQE, SGX, MPX, Processor Trace (EBX), LA57, SGX-LC, CET shadow
 *    stack, WAITPKG (ECX), CET IBT (EDX);
 *  - 0xB/0x1F: the x2APIC id;
 *  - 0x40000000 "ACRNACRNACRN" (max 0x40000010), 0x40000001 0 (not the Service VM),
 *    0x40000010 the TSC frequency in kHz.
 * ACRN's masks are in bits of Intel's leaves; on an AMD host KVM's AMD leaves
 * (0x8000000x) pass through as ACRN passes the host's. */

#define BIT(n) (1U << (n))
/* leaf 1 ECX: DTES64 2, MONITOR 3, DS_CPL 4, VMX 5, SMX 6, EST 7, SDBG 11, PDCM 15 */
#define ACRN_CPUID1_ECX_MASKED (BIT(2) | BIT(3) | BIT(4) | BIT(5) | BIT(6) | BIT(7) | BIT(11) | BIT(15))
/* leaf 1 EDX: DTES (DS) 21 */
#define ACRN_CPUID1_EDX_MASKED BIT(21)
/* leaf 6 EAX: HWP 7, HWP_N 8, HWP_AW 9, HWP_EPP 10, HWP_PLR 11, HFI 19, HWP_CTL 22, ITD 23 */
#define ACRN_CPUID6_EAX_MASKED                                                                \
	(BIT(7) | BIT(8) | BIT(9) | BIT(10) | BIT(11) | BIT(19) | BIT(22) | BIT(23))
/* leaf 7.0 EBX: SGX 2, PQM 12, MPX 14, PQE 15, PROC_TRC 25 */
#define ACRN_CPUID7_EBX_MASKED (BIT(2) | BIT(12) | BIT(14) | BIT(15) | BIT(25))
/* leaf 7.0 ECX: WAITPKG 5, CET_SS 7, LA57 16, SGX_LC 30 */
#define ACRN_CPUID7_ECX_MASKED (BIT(5) | BIT(7) | BIT(16) | BIT(30))
/* leaf 7.0 EDX: CET_IBT 20 */
#define ACRN_CPUID7_EDX_MASKED BIT(20)

/* Leaves ACRN leaves out of a post-launched VM's table (guest_cpuid then answers zeros). */
static int acrn_hides_leaf(uint32_t function)
{
	switch (function) {
	case 0x5: case 0xa: case 0xf: case 0x10: case 0x12: case 0x14: case 0x1b:
		return 1;
	default:
		return (function & 0xf0000000U) == 0x40000000U; /* KVM's own give way to ACRN's */
	}
}

static int set_cpuid(struct vcpu *v)
{
	uint32_t n = supported_cpuid->nent;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (n + 4) * sizeof(struct kvm_cpuid_entry2));
	if (!c)
		return -1;
	uint32_t tsc_khz = 0;
	int khz = kvm_ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
	if (khz > 0)
		tsc_khz = (uint32_t)khz;
	uint32_t k = 0;
	int has_16 = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct kvm_cpuid_entry2 e = supported_cpuid->entries[i];
		if (acrn_hides_leaf(e.function))
			continue;
		switch (e.function) {
		case 0:
			if (e.eax < 0x16U)
				e.eax = 0x16U;
			break;
		case 1:
			e.ecx = (e.ecx & ~ACRN_CPUID1_ECX_MASKED) | BIT(31); /* a hypervisor is present */
			e.edx &= ~ACRN_CPUID1_EDX_MASKED;
			e.ebx = (e.ebx & 0x00ffffffU) | (uint32_t)v->index << 24; /* initial APIC id */
			break;
		case 6:
			e.eax &= ~ACRN_CPUID6_EAX_MASKED;
			e.ecx &= ~BIT(0); /* HCFC */
			e.edx = 0;
			break;
		case 7:
			if (e.index == 0) {
				e.ebx &= ~ACRN_CPUID7_EBX_MASKED;
				e.ecx &= ~ACRN_CPUID7_ECX_MASKED;
				e.edx &= ~ACRN_CPUID7_EDX_MASKED;
			}
			break;
		case 0xb:
		case 0x1f:
			e.edx = v->index; /* x2APIC id */
			break;
		case 0x16:
			has_16 = e.eax != 0;
			if (!has_16)
				continue;
			break;
		default:
			break;
		}
		c->entries[k++] = e;
	}
	/* 0x16 from the TSC where the CPU has none: base and maximum MHz, bus 100 MHz */
	if (!has_16)
		c->entries[k++] = (struct kvm_cpuid_entry2){ .function = 0x16U, .eax = tsc_khz / 1000U,
							     .ebx = tsc_khz / 1000U, .ecx = 100U };
	static const char sig[12] = "ACRNACRNACRN";
	uint32_t words[3];
	memcpy(words, sig, sizeof(words));
	c->entries[k++] = (struct kvm_cpuid_entry2){ .function = 0x40000000U, .eax = 0x40000010U,
						     .ebx = words[0], .ecx = words[1], .edx = words[2] };
	/* 0x40000001: guest capability flags; a post-launched VM has none. */
	c->entries[k++] = (struct kvm_cpuid_entry2){ .function = 0x40000001U };
	/* 0x40000010: TSC frequency in kHz. */
	c->entries[k++] = (struct kvm_cpuid_entry2){ .function = 0x40000010U, .eax = tsc_khz };
	c->nent = k;
	int r = kvm_ioctl(v->fd, KVM_SET_CPUID2, c);
	free(c);
	return r;
}

static void find_stats(struct vcpu *v)
{
	for (int i = 0; i < N_STATS; i++)
		v->stat_offset[i] = -1;
	v->stats_fd = kvm_ioctl(v->fd, KVM_GET_STATS_FD, 0);
	if (v->stats_fd < 0)
		return;
	struct kvm_stats_header h;
	if (pread(v->stats_fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		goto fail;
	size_t size = sizeof(struct kvm_stats_desc) + h.name_size;
	char *descs = malloc(size * h.num_desc);
	if (!descs || pread(v->stats_fd, descs, size * h.num_desc, h.desc_offset) != (ssize_t)(size * h.num_desc)) {
		free(descs);
		goto fail;
	}
	for (uint32_t i = 0; i < h.num_desc; i++) {
		struct kvm_stats_desc *d = (void *)(descs + i * size);
		for (int s = 0; s < N_STATS; s++)
			if (strncmp(d->name, stat_names[s], h.name_size) == 0 && d->size == 1)
				v->stat_offset[s] = (long)h.data_offset + d->offset;
	}
	free(descs);
	return;
fail:
	close(v->stats_fd);
	v->stats_fd = -1;
}

static int64_t read_stat(struct vcpu *v, int s)
{
	uint64_t value;
	if (v->stats_fd < 0 || v->stat_offset[s] < 0 ||
	    pread(v->stats_fd, &value, sizeof(value), v->stat_offset[s]) != (ssize_t)sizeof(value))
		return -1;
	return (int64_t)value;
}

/* ---- the KVM VM itself (made again by reset()) ---- */

static int set_slot(struct vm *vm, uint32_t slot, const struct region *r)
{
	struct kvm_userspace_memory_region m = {
		.slot = slot,
		.flags = r && r->readonly ? KVM_MEM_READONLY : 0,
		.guest_phys_addr = r ? r->gpa : 0,
		.memory_size = r ? r->size : 0,
		.userspace_addr = r ? r->host : 0,
	};
	return kvm_ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &m);
}

static void close_kvm_vm(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		for (int s = 1; s < N_STATS; s++) {
			int64_t x = read_stat(v, s);
			if (x > 0)
				v->carried[s] += (uint64_t)x;
		}
		if (v->run)
			munmap(v->run, (size_t)run_size);
		v->run = NULL;
		if (v->stats_fd >= 0)
			close(v->stats_fd);
		v->stats_fd = -1;
		if (v->fd >= 0)
			close(v->fd);
		v->fd = -1;
	}
	if (vm->fd >= 0)
		close(vm->fd);
	vm->fd = -1;
	vm->nslots = 0;
}

/* ACRN's routing of a GSI (hypercall.c, hcall_set_irqline): vIOAPIC pin n, and below 16
 * vPIC pin n too, except GSI 2, the PIT's, which drives PIC pin 0 (§7.1). KVM's default
 * table sends GSI 2 to PIC pin 2, where the slave cascades. KVM's IOAPIC has 24 pins. */
static int set_acrn_gsi_routing(struct vm *vm)
{
	unsigned n = 0, max = KVM_IOAPIC_NUM_PINS + 16;
	struct kvm_irq_routing *r = calloc(1, sizeof(*r) + max * sizeof(r->entries[0]));
	if (!r)
		return -1;
	for (unsigned gsi = 0; gsi < KVM_IOAPIC_NUM_PINS; gsi++) {
		struct kvm_irq_routing_entry *e = &r->entries[n++];
		e->gsi = gsi;
		e->type = KVM_IRQ_ROUTING_IRQCHIP;
		e->u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		e->u.irqchip.pin = gsi;
		if (gsi >= 16)
			continue;
		unsigned pin = gsi == 2 ? 0 : gsi;
		e = &r->entries[n++];
		e->gsi = gsi;
		e->type = KVM_IRQ_ROUTING_IRQCHIP;
		e->u.irqchip.irqchip = pin < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
		e->u.irqchip.pin = pin % 8;
	}
	r->nr = n;
	int ret = kvm_ioctl(vm->fd, KVM_SET_GSI_ROUTING, r);
	int saved = errno;
	free(r);
	errno = saved;
	return ret;
}

/* A fresh KVM VM for `vm`: irqchip, memory slots, vCPUs at ACRN's power-on state. */
static int open_kvm_vm(struct vm *vm, char *why, size_t whylen)
{
	const char *step = "KVM_CREATE_VM";
	vm->fd = kvm_ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0)
		goto fail;
	fcntl(vm->fd, F_SETFD, FD_CLOEXEC);
	uint64_t identity = IDENTITY_MAP_ADDR;
	/* Only Intel without unrestricted guest uses them; elsewhere they cost nothing. */
	kvm_ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &identity);
	kvm_ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)TSS_ADDR);
	step = "KVM_CREATE_IRQCHIP";
	if (kvm_ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0)
		goto fail;
	step = "KVM_SET_GSI_ROUTING";
	if (set_acrn_gsi_routing(vm) < 0)
		goto fail;
	step = "KVM_SET_USER_MEMORY_REGION";
	for (unsigned i = 0; i < vm->nregions; i++)
		if (set_slot(vm, i, &vm->regions[i]) < 0)
			goto fail;
	vm->nslots = vm->nregions;
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		step = "KVM_CREATE_VCPU";
		v->fd = kvm_ioctl(vm->fd, KVM_CREATE_VCPU, (unsigned long)i);
		if (v->fd < 0)
			goto fail;
		fcntl(v->fd, F_SETFD, FD_CLOEXEC);
		step = "mmap(kvm_run)";
		void *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (run == MAP_FAILED)
			goto fail;
		v->run = run;
		step = "KVM_SET_CPUID2";
		if (set_cpuid(v) < 0)
			goto fail;
		/* Inside KVM_RUN only the kick gets through. */
		step = "KVM_SET_SIGNAL_MASK";
		struct {
			struct kvm_signal_mask head;
			uint8_t set[8];
		} mask = { .head.len = 8 };
		sigset_t set;
		sigfillset(&set);
		sigdelset(&set, kick_signal);
		memcpy(mask.set, &set, 8);
		if (kvm_ioctl(v->fd, KVM_SET_SIGNAL_MASK, &mask) < 0)
			goto fail;
		find_stats(v);
		struct acrn_regs regs;
		realmode_init_regs(&regs);
		const char *failed;
		if (set_regs(v, &regs, &failed) < 0) {
			step = failed;
			goto fail;
		}
	}
	return 0;
fail:
	snprintf(why, whylen, "%s: %s", step, strerror(errno));
	close_kvm_vm(vm);
	return -1;
}

/* ======================= Node-API ======================= */

static napi_value throw_range(napi_env env, const char *message)
{
	napi_throw_range_error(env, NULL, message);
	return NULL;
}

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv)
{
	size_t argc = want;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
		napi_throw_type_error(env, NULL, "hsm_kvm: too few arguments");
		return false;
	}
	return true;
}

static struct vm *vm_of(napi_env env, napi_value v)
{
	napi_valuetype t;
	void *data = NULL;
	if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
	    napi_get_value_external(env, v, &data) != napi_ok || !data) {
		napi_throw_type_error(env, NULL, "hsm_kvm: not a VM handle");
		return NULL;
	}
	struct vm *vm = data;
	if (vm->destroyed) {
		napi_throw_error(env, NULL, "hsm_kvm: the VM was destroyed");
		return NULL;
	}
	return vm;
}

/* vCPU index argument: -1 (all) allowed when `all`. Sets *out; false with an exception. */
static bool vcpu_arg(napi_env env, struct vm *vm, napi_value v, bool all, int32_t *out)
{
	int32_t i;
	if (napi_get_value_int32(env, v, &i) != napi_ok || (i < 0 && !(all && i == -1)) ||
	    (i >= 0 && (uint32_t)i >= vm->nvcpus)) {
		char m[96];
		snprintf(m, sizeof(m), "hsm_kvm: no vCPU %d (the VM has %u)", i, vm->nvcpus);
		napi_throw_range_error(env, NULL, m);
		return false;
	}
	*out = i;
	return true;
}

static napi_value undefined(napi_env env)
{
	napi_value u;
	napi_get_undefined(env, &u);
	return u;
}

static void wake_cb(uv_async_t *handle)
{
	(void)handle;
	napi_env env = main_env;
	if (!wake_fn)
		return;
	napi_handle_scope scope;
	if (napi_open_handle_scope(env, &scope) != napi_ok)
		return;
	napi_value fn, global, result;
	if (napi_get_reference_value(env, wake_fn, &fn) == napi_ok && fn &&
	    napi_get_global(env, &global) == napi_ok) {
		if (napi_make_callback(env, wake_context, global, fn, 0, NULL, &result) != napi_ok) {
			/* An exception in the handler: Node.js's uncaught-exception path. */
			bool pending = false;
			napi_is_exception_pending(env, &pending);
			if (pending) {
				napi_value e;
				napi_get_and_clear_last_exception(env, &e);
				napi_fatal_exception(env, e);
			}
		}
	}
	napi_close_handle_scope(env, scope);
}

static void destroy_vm(struct vm *vm)
{
	if (vm->destroyed)
		return;
	vm->destroyed = true;
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		atomic_store(&v->quit, 1);
		kick(v);
	}
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (v->started)
			pthread_join(v->thread, NULL);
		v->started = false;
		atomic_store(&v->rec->state, REC_NONE);
	}
	close_kvm_vm(vm);
	for (struct vm **p = &vms; *p; p = &(*p)->next)
		if (*p == vm) {
			*p = vm->next;
			break;
		}
}

/* Zeroed shared-with-JavaScript memory of `bytes` (pages), one reference; NULL if none. */
static struct records *new_records(size_t bytes)
{
	struct records *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->length = (bytes + PAGE - 1) & ~(PAGE - 1);
	r->mem = mmap(NULL, r->length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->mem == MAP_FAILED) {
		free(r);
		return NULL;
	}
	r->refs = 1;
	return r;
}

static void drop_records(struct records *r)
{
	if (r && --r->refs == 0) {
		munmap(r->mem, r->length);
		free(r);
	}
}

/* The lane's pages stay alive while the VM's threads may use them. */
static void lane_unref(struct vm *vm)
{
	if (vm->lane_ref)
		napi_delete_reference(main_env, vm->lane_ref);
	if (vm->ioreq_ref)
		napi_delete_reference(main_env, vm->ioreq_ref);
	vm->lane_ref = vm->ioreq_ref = NULL;
}

static void vm_finalize(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	struct vm *vm = data;
	destroy_vm(vm);
	lane_unref(vm);
	drop_records(vm->records);
	drop_records(vm->log);
	free(vm);
}

static void records_finalize(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)data;
	drop_records(hint);
}

static void close_done(uv_handle_t *handle)
{
	(void)handle;
	napi_remove_async_cleanup_hook(cleanup_handle);
}

/* The environment goes away: stop every vCPU thread, close the wake-up handle. */
static void cleanup(napi_async_cleanup_hook_handle handle, void *arg)
{
	(void)arg;
	cleanup_handle = handle;
	while (vms)
		destroy_vm(vms);
	if (wake_fn) {
		napi_delete_reference(main_env, wake_fn);
		wake_fn = NULL;
	}
	if (wake_context) {
		napi_async_destroy(main_env, wake_context);
		wake_context = NULL;
	}
	if (wake_async_ready) {
		wake_async_ready = false;
		uv_close((uv_handle_t *)&wake_async, close_done);
	} else {
		napi_remove_async_cleanup_hook(handle);
	}
}

static void kick_handler(int sig)
{
	(void)sig; /* KVM_RUN returns EINTR: that is all a kick is for */
}

/* Opens /dev/kvm once; the reason it cannot be used, or NULL. */
static const char *open_kvm(void)
{
	if (kvm_fd >= 0)
		return NULL;
	if (kvm_error[0])
		return kvm_error;
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(kvm_error, sizeof(kvm_error), "/dev/kvm %s: %s",
			 errno == ENOENT ? "does not exist" : "cannot be opened", strerror(errno));
		return kvm_error;
	}
	int api = kvm_ioctl(fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		snprintf(kvm_error, sizeof(kvm_error), "/dev/kvm has KVM API version %d, not %d", api,
			 KVM_API_VERSION);
		close(fd);
		return kvm_error;
	}
	static const struct {
		int cap;
		const char *name;
	} needed[] = {
		{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
		{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
		{ KVM_CAP_SIGNAL_MSI, "KVM_CAP_SIGNAL_MSI" },
		{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
		{ KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE" },
	};
	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
		if (kvm_ioctl(fd, KVM_CHECK_EXTENSION, needed[i].cap) <= 0) {
			snprintf(kvm_error, sizeof(kvm_error), "/dev/kvm lacks %s", needed[i].name);
			close(fd);
			return kvm_error;
		}
	has_readonly_mem = kvm_ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) > 0;
	run_size = kvm_ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	for (uint32_t n = 128; !supported_cpuid && n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
		if (!c)
			break;
		c->nent = n;
		if (kvm_ioctl(fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			supported_cpuid = c;
		else
			free(c);
	}
	if (run_size <= 0 || !supported_cpuid) {
		snprintf(kvm_error, sizeof(kvm_error), "/dev/kvm: %s failed",
			 run_size <= 0 ? "KVM_GET_VCPU_MMAP_SIZE" : "KVM_GET_SUPPORTED_CPUID");
		close(fd);
		return kvm_error;
	}
	kick_signal = SIGRTMIN + 6;
	struct sigaction sa = { .sa_handler = kick_handler };
	sigemptyset(&sa.sa_mask);
	sigaction(kick_signal, &sa, NULL);
	const char *spin = getenv("HSMCTL_KVM_SPIN_US");
	if (spin && *spin) {
		char *end;
		unsigned long us = strtoul(spin, &end, 10);
		if (!*end && us <= 1000000)
			spin_ns = (unsigned)us * 1000;
	}
	kvm_fd = fd;
	return NULL;
}

static napi_value k_open(napi_env env, napi_callback_info info)
{
	(void)info;
	const char *why = open_kvm();
	if (!why)
		return undefined(env);
	napi_value s;
	CHECK(napi_create_string_utf8(env, why, NAPI_AUTO_LENGTH, &s));
	return s;
}

static napi_value k_set_wake(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	if (!get_args(env, info, 1, argv))
		return NULL;
	if (wake_fn)
		napi_delete_reference(env, wake_fn);
	wake_fn = NULL;
	CHECK(napi_create_reference(env, argv[0], 1, &wake_fn));
	return undefined(env);
}

static napi_value k_set_polling(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	bool on;
	if (!get_args(env, info, 1, argv))
		return NULL;
	CHECK(napi_get_value_bool(env, argv[0], &on));
	atomic_store(&control->main_polling, on ? 1 : 0);
	return undefined(env);
}

static napi_value k_wait(napi_env env, napi_callback_info info)
{
	napi_value argv[2], out;
	uint32_t seen;
	double ns;
	if (!get_args(env, info, 2, argv))
		return NULL;
	CHECK(napi_get_value_uint32(env, argv[0], &seen));
	CHECK(napi_get_value_double(env, argv[1], &ns));
	uint64_t deadline = hsm_now_ns() + (ns > 0 ? (uint64_t)ns : 0);
	bool found = false;
	for (unsigned i = 0;; i++) {
		if (atomic_load(&control->posted) != seen) {
			found = true;
			break;
		}
		if ((i & 15) == 0 && hsm_now_ns() >= deadline)
			break;
		hsm_relax(i);
	}
	CHECK(napi_get_boolean(env, found, &out));
	return out;
}

/* Makes the wake-up handle on first use (the loop of the environment that creates VMs). */
static bool ensure_wake(napi_env env)
{
	if (wake_async_ready)
		return true;
	if (main_env && main_env != env) {
		napi_throw_error(env, NULL, "hsm_kvm: VMs can only be made on the thread that made the first one");
		return false;
	}
	uv_loop_t *loop;
	napi_value name;
	if (napi_get_uv_event_loop(env, &loop) != napi_ok || uv_async_init(loop, &wake_async, wake_cb) != 0 ||
	    napi_create_string_utf8(env, "hsm_kvm", NAPI_AUTO_LENGTH, &name) != napi_ok ||
	    napi_async_init(env, NULL, name, &wake_context) != napi_ok) {
		napi_throw_error(env, NULL, "hsm_kvm: cannot set up the main thread's wake-up");
		return false;
	}
	uv_unref((uv_handle_t *)&wake_async);
	wake_async_ready = true;
	main_env = env;
	napi_add_async_cleanup_hook(env, cleanup, NULL, NULL);
	return true;
}

/* Nothing left to run (every vCPU paused or stopped): the process may exit. */
static void update_ref(void)
{
	if (!wake_async_ready)
		return;
	for (struct vm *vm = vms; vm; vm = vm->next)
		for (unsigned k = 0; k < vm->nvcpus; k++)
			if (!atomic_load(&vm->vcpus[k].paused) && !atomic_load(&vm->vcpus[k].stopped)) {
				uv_ref((uv_handle_t *)&wake_async);
				return;
			}
	uv_unref((uv_handle_t *)&wake_async);
}

static void free_vm(struct vm *vm)
{
	destroy_vm(vm);
	lane_unref(vm);
	drop_records(vm->records);
	drop_records(vm->log);
	free(vm);
}

static napi_value k_create_vm(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	uint32_t n;
	if (!get_args(env, info, 1, argv))
		return NULL;
	if (napi_get_value_uint32(env, argv[0], &n) != napi_ok || n == 0 || n > MAX_VCPUS) {
		char m[80];
		snprintf(m, sizeof(m), "hsm_kvm: a VM has 1 to %d vCPUs", MAX_VCPUS);
		return throw_range(env, m);
	}
	const char *why = open_kvm();
	if (why)
		return throw_errno(env, ENODEV, why);
	if (!ensure_wake(env))
		return NULL;
	struct vm *vm = calloc(1, sizeof(*vm));
	struct records *records = vm ? new_records(n * sizeof(struct exit_record)) : NULL;
	if (!records) {
		free(vm);
		return throw_errno(env, ENOMEM, "hsm_kvm: VM and its exit records");
	}
	vm->records = records;
	vm->fd = -1;
	vm->nvcpus = n;
	for (unsigned i = 0; i < n; i++) {
		struct vcpu *v = &vm->vcpus[i];
		v->vm = vm;
		v->index = i;
		v->fd = v->stats_fd = -1;
		v->rec = &records->mem[i];
		v->spin_budget = UINT64_MAX; /* the most (spin_ns) until it has learned */
		atomic_store(&v->paused, 1);
		atomic_store(&v->parked, 1);
	}
	char message[320];
	if (open_kvm_vm(vm, message, sizeof(message)) < 0) {
		int e = errno;
		free_vm(vm);
		return throw_errno(env, e ? e : EIO, message);
	}
	vm->next = vms;
	vms = vm;
	for (unsigned i = 0; i < n; i++) {
		struct vcpu *v = &vm->vcpus[i];
		int e = pthread_create(&v->thread, NULL, vcpu_main, v);
		if (e) {
			free_vm(vm);
			return throw_errno(env, e, "hsm_kvm: vCPU thread");
		}
		v->started = true;
		char name[16];
		snprintf(name, sizeof(name), "hsm-vcpu%u", i);
		pthread_setname_np(v->thread, name); /* for ps -L, top -H and gdb */
	}

	napi_value result, handle, buffer;
	if (napi_create_external(env, vm, vm_finalize, NULL, &handle) != napi_ok) {
		free_vm(vm);
		napi_throw_error(env, NULL, "hsm_kvm: napi_create_external failed");
		return NULL;
	}
	/* The records outlive the VM as long as JavaScript has a view of them. */
	records->refs++;
	if (napi_create_external_arraybuffer(env, records->mem, records->length, records_finalize, records,
					     &buffer) != napi_ok) {
		records->refs--;
		napi_throw_error(env, NULL, "hsm_kvm: napi_create_external_arraybuffer failed");
		return NULL;
	}
	CHECK(napi_create_object(env, &result));
	CHECK(napi_set_named_property(env, result, "vm", handle));
	CHECK(napi_set_named_property(env, result, "records", buffer));
	return result;
}

static bool get_u64_prop(napi_env env, napi_value obj, const char *name, uint64_t *out)
{
	napi_value v;
	napi_valuetype t;
	if (napi_get_named_property(env, obj, name, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok)
		return false;
	if (t == napi_bigint) {
		bool lossless;
		return napi_get_value_bigint_uint64(env, v, out, &lossless) == napi_ok && lossless;
	}
	double d;
	if (t != napi_number || napi_get_value_double(env, v, &d) != napi_ok || d < 0 || d > 0x1p64 ||
	    d != (double)(uint64_t)d)
		return false;
	*out = (uint64_t)d;
	return true;
}

static napi_value k_set_memory(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	if (!get_args(env, info, 2, argv))
		return NULL;
	struct vm *vm = vm_of(env, argv[0]);
	if (!vm)
		return NULL;
	uint32_t n;
	if (napi_get_array_length(env, argv[1], &n) != napi_ok)
		return throw_range(env, "hsm_kvm.setMemory: regions must be an array");
	if (n > MAX_REGIONS)
		return throw_range(env, "hsm_kvm.setMemory: more than 512 regions");
	struct region *regions = calloc(n ? n : 1, sizeof(*regions));
	if (!regions)
		return throw_errno(env, ENOMEM, "hsm_kvm.setMemory");
	char m[200];
	for (uint32_t i = 0; i < n; i++) {
		napi_value r, ro;
		struct region *g = &regions[i];
		bool readonly = false;
		if (napi_get_element(env, argv[1], i, &r) != napi_ok || !get_u64_prop(env, r, "gpa", &g->gpa) ||
		    !get_u64_prop(env, r, "size", &g->size) ||
		    !get_u64_prop(env, r, "hostAddress", &g->host) ||
		    napi_get_named_property(env, r, "readonly", &ro) != napi_ok ||
		    napi_get_value_bool(env, ro, &readonly) != napi_ok) {
			snprintf(m, sizeof(m), "hsm_kvm.setMemory: region %u needs gpa, size, hostAddress and readonly", i);
			free(regions);
			return throw_range(env, m);
		}
		g->readonly = readonly;
		if (g->size == 0 || (g->gpa | g->size | g->host) & (PAGE - 1) || g->gpa + g->size < g->gpa) {
			snprintf(m, sizeof(m),
				 "hsm_kvm.setMemory: region %u (GPA %#llx, %#llx bytes at %#llx) is not whole pages",
				 i, (unsigned long long)g->gpa, (unsigned long long)g->size, (unsigned long long)g->host);
			free(regions);
			return throw_range(env, m);
		}
		if (readonly && !has_readonly_mem) {
			free(regions);
			return throw_errno(env, ENOSYS, "hsm_kvm.setMemory: this KVM has no read-only slots (KVM_CAP_READONLY_MEM)");
		}
		for (uint32_t j = 0; j < i; j++)
			if (g->gpa < regions[j].gpa + regions[j].size && regions[j].gpa < g->gpa + g->size) {
				snprintf(m, sizeof(m), "hsm_kvm.setMemory: regions %u and %u overlap (GPA %#llx)", j, i,
					 (unsigned long long)g->gpa);
				free(regions);
				return throw_range(env, m);
			}
	}
	hold_all(vm);
	int e = 0;
	const struct region *bad = NULL;
	for (unsigned i = 0; i < vm->nslots; i++)
		set_slot(vm, i, NULL);
	vm->nslots = 0;
	for (uint32_t i = 0; i < n && !e; i++) {
		if (set_slot(vm, i, &regions[i]) < 0) {
			e = errno;
			bad = &regions[i];
		} else {
			vm->nslots = i + 1;
		}
	}
	if (e) {
		/* All or nothing: back to the regions it had. */
		for (unsigned i = 0; i < vm->nslots; i++)
			set_slot(vm, i, NULL);
		vm->nslots = 0;
		for (unsigned i = 0; i < vm->nregions; i++)
			if (set_slot(vm, i, &vm->regions[i]) == 0)
				vm->nslots = i + 1;
	} else {
		memcpy(vm->regions, regions, n * sizeof(*regions));
		vm->nregions = n;
	}
	release_all(vm);
	if (e) {
		snprintf(m, sizeof(m), "KVM_SET_USER_MEMORY_REGION (GPA %#llx, %#llx bytes)",
			 (unsigned long long)bad->gpa, (unsigned long long)bad->size);
		free(regions);
		return throw_errno(env, e, m);
	}
	free(regions);
	return undefined(env);
}

/* The vCPU's lane request, if any, is dropped with its exit (the slot is the model's). */
static void lane_drop(struct vcpu *v)
{
	struct hsm_lane *lane = atomic_load(&v->vm->lane);
	if (lane && v->index < HSM_LANE_SLOTS && atomic_load(&v->rec->state) == REC_LANE)
		atomic_store(&lane->owner[v->index], 0);
}

/* An outstanding exit is dropped: KVM finishes the access (a read gets 0) without
 * running the guest (immediate_exit), so that new registers are not overwritten. */
static void discard_exit(struct vcpu *v)
{
	int32_t st = atomic_load(&v->rec->state);
	if (!(v->in_io || v->in_mmio) && st != REC_POSTED && st != REC_TAKEN && st != REC_DONE &&
	    st != REC_LANE)
		return;
	lane_drop(v);
	atomic_store(&v->rec->state, REC_NONE);
	for (unsigned round = 0; round < 1u << 16 && (v->in_io || v->in_mmio); round++) {
		if (v->in_io && v->run->io.direction == KVM_EXIT_IO_IN)
			memset((uint8_t *)v->run + v->run->io.data_offset, 0,
			       (size_t)v->run->io.size * v->run->io.count);
		if (v->in_mmio && !v->run->mmio.is_write)
			memset(v->run->mmio.data, 0, sizeof(v->run->mmio.data));
		v->in_io = v->in_mmio = false;
		v->run->immediate_exit = 1;
		int r = ioctl(v->fd, KVM_RUN, 0);
		v->run->immediate_exit = 0;
		if (r == 0 && v->run->exit_reason == KVM_EXIT_IO)
			v->in_io = true; /* the rest of a string instruction */
		else if (r == 0 && v->run->exit_reason == KVM_EXIT_MMIO)
			v->in_mmio = true;
	}
	v->in_io = v->in_mmio = false;
}

static napi_value k_set_regs(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	int32_t i;
	if (!get_args(env, info, 3, argv))
		return NULL;
	struct vm *vm = vm_of(env, argv[0]);
	if (!vm || !vcpu_arg(env, vm, argv[1], false, &i))
		return NULL;
	size_t length;
	uint8_t *data = hsm_uint8_array(env, argv[2], &length);
	if (!data || length != sizeof(struct acrn_regs))
		return throw_range(env, "hsm_kvm.setRegs: the registers are a Uint8Array of struct acrn_regs (288 bytes)");
	struct acrn_regs r;
	memcpy(&r, data, sizeof(r));
	struct vcpu *v = &vm->vcpus[i];
	hold(v);
	discard_exit(v);
	const char *failed;
	int rc = set_regs(v, &r, &failed);
	/* START_VM launches the BSP with its VMCS made anew, so active even if it had halted
	 * (start_vm(), init_guest_vmx()); APs keep waiting for INIT/SIPI. */
	if (rc == 0 && i == 0) {
		struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };
		failed = "KVM_SET_MP_STATE";
		rc = kvm_ioctl(v->fd, KVM_SET_MP_STATE, &mp);
	}
	int e = errno;
	if (rc == 0)
		atomic_store(&v->stopped, 0);
	release(v);
	update_ref();
	if (rc < 0) {
		char m[160];
		snprintf(m, sizeof(m), "%s refused the registers of vCPU %d", failed, i);
		return throw_errno(env, e, m);
	}
	return undefined(env);
}

static napi_value k_get_regs(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	int32_t i;
	if (!get_args(env, info, 2, argv))
		return NULL;
	struct vm *vm = vm_of(env, argv[0]);
	if (!vm || !vcpu_arg(env, vm, argv[1], false, &i))
		return NULL;
	struct vcpu *v = &vm->vcpus[i];
	struct acrn_regs r;
	hold_to_look(v);
	int rc = get_regs(v, &r);
	int e = errno;
	release_look(v);
	if (rc < 0)
		return throw_errno(env, e, "KVM_GET_REGS");
	napi_value ab, out;
	void *data;
	CHECK(napi_create_arraybuffer(env, sizeof(r), &data, &ab));
	memcpy(data, &r, sizeof(r));
	CHECK(napi_create_typedarray(env, napi_uint8_array, sizeof(r), ab, 0, &out));
	return out;
}

static napi_value k_run(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	int32_t i;
	if (!get_args(env, info, 2, argv))
		return NULL;
	struct vm *vm = vm_of(env, argv[0]);
	if (!vm || !vcpu_arg(env, vm, argv[1], true, &i))
		return NULL;
	for (unsigned k = 0; k < vm->nvcpus; k++)
		if (i < 0 || (unsigned)i == k) {
			atomic_store(&vm->vcpus[k].paused, 0);
			nudge(&vm->vcpus[k]);
		}
	update_ref();
	return undefined(env);
}

static napi_value k_pause(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	int32_t i;
	if (!get_args(env, info, 2, argv))
		return NULL;
	struct vm *vm = vm_of(env, argv[0]);
	if (!vm || !vcpu_arg(env, vm, argv[1], true, &i))
		return NULL;
	for (unsigned k = 0; k < vm->nvcpus; k++)
		if (i < 0 || (unsigned)i == k) {
			atomic_store(&vm->vcpus[k].paused, 1);
			kick(&vm->vcpus[k]);
		}
	for (unsigned k = 0; k < vm->nvcpus; k++)
		if (i < 0 || (unsigned)i == k)
			wait_parked(&vm->vcpus[k]);
	update_ref();
	return undefined(env);
}

static napi_value k_reset(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	if (!get_args(env, info, 1, argv))
		return NULL;
	struct vm *vm = vm_of(env, argv[0]);
	if (!vm)
		return NULL;
	hold_all(vm);
	close_kvm_vm(vm);
	char message[320];
	int rc = open_kvm_vm(vm, message, sizeof(message));
	int e = errno;
	for (unsigned k = 0; k < vm->nvcpus; k++) {
		struct vcpu *v = &vm->vcpus[k];
		v->in_io = v->in_mmio = false;
		lane_drop(v);
		atomic_store(&v->rec->state, REC_NONE);
		atomic_store(&v->paused, 1);
		if (rc == 0)
			atomic_store(&v->stopped, 0);
		else {
			snprintf(v->fault, sizeof(v->fault), "reset failed: %s", message);
			atomic_store(&v->stopped, 1);
		}
	}
	release_all(vm);
	update_ref();
	if (rc < 0)
		return throw_errno(env, e ? e : EIO, message);
	return undefined(env);
}

static napi_value k_complete(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	int32_t i;
	if (!get_args(env, info, 3, argv))
		return NULL;
	struct vm *vm = vm_of(env, argv[0]);
	if (!vm || !vcpu_arg(env, vm, argv[1], false, &i))
		return NULL;
	uint64_t value;
	bool lossless;
	if (napi_get_value_bigint_uint64(env, argv[2], &value, &lossless) != napi_ok) {
		napi_throw_type_error(env, NULL, "hsm_kvm.complete: the value is a bigint");
		return NULL;
	}
	struct vcpu *v = &vm->vcpus[i];
	if (atomic_load(&v->rec->state) != REC_TAKEN) {
		char m[96];
		snprintf(m, sizeof(m), "hsm_kvm.complete: vCPU %d has no exit waiting", i);
		napi_throw_error(env, "ENOENT", m);
		return NULL;
	}
	v->rec->value = value;
	atomic_store(&v->rec->state, REC_DONE);
	nudge(v);
	return undefined(env);
}

static napi_value k_fault(napi_env env, napi_callback_info info)
{
	napi_value argv[2], s;
	int32_t i;
	if (!get_args(env, info, 2, argv))
		return NULL;
	struct vm *vm = vm_of(env, argv[0]);
	if (!vm || !vcpu_arg(env, vm, argv[1], false, &i))
		return NULL;
	struct vcpu *v = &vm->vcpus[i];
	CHECK(napi_create_string_utf8(env, v->fault, NAPI_AUTO_LENGTH, &s));
	int32_t expected = REC_FAULT;
	/* A vCPU given new registers since its fault waits for the record to clear. */
	if (atomic_compare_exchange_strong(&v->rec->state, &expected, REC_NONE))
		nudge(v);
	update_ref();
	return s;
}

static napi_value k_inject_msi(napi_env env, napi_callback_info info)
{
	napi_value argv[3], out;
	if (!get_args(env, info, 3, argv))
		return NULL;
	struct vm *vm = vm_of(env, argv[0]);
	if (!vm)
		return NULL;
	uint64_t addr;
	uint32_t data;
	bool lossless;
	if (napi_get_value_bigint_uint64(env, argv[1], &addr, &lossless) != napi_ok ||
	    napi_get_value_uint32(env, argv[2], &data) != napi_ok) {
		napi_throw_type_error(env, NULL, "hsm_kvm.injectMsi(vm, addr: bigint, data: number)");
		return NULL;
	}
	struct kvm_msi msi = { .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data };
	int r = kvm_ioctl(vm->fd, KVM_SIGNAL_MSI, &msi);
	if (r < 0)
		return throw_errno(env, errno, "KVM_SIGNAL_MSI");
	CHECK(napi_create_int32(env, r, &out));
	return out;
}

static napi_value k_set_irq_line(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	if (!get_args(env, info, 3, argv))
		return NULL;
	struct vm *vm = vm_of(env, argv[0]);
	if (!vm)
		return NULL;
	uint32_t gsi, level;
	if (napi_get_value_uint32(env, argv[1], &gsi) != napi_ok ||
	    napi_get_value_uint32(env, argv[2], &level) != napi_ok || level > 1)
		return throw_range(env, "hsm_kvm.setIrqLine(vm, gsi, level: 0 | 1)");
	struct kvm_irq_level l = { .irq = gsi, .level = level };
	if (kvm_ioctl(vm->fd, KVM_IRQ_LINE, &l) < 0) {
		char m[64];
		snprintf(m, sizeof(m), "KVM_IRQ_LINE (GSI %u)", gsi);
		return throw_errno(env, errno, m);
	}
	return undefined(env);
}

/* Halted (HLT, or an AP waiting for INIT/SIPI)? From the stats fd when KVM has one,
 * else from KVM_GET_MP_STATE with the vCPU held out of KVM_RUN. */
static bool is_halted(struct vcpu *v)
{
	int64_t blocking = read_stat(v, STAT_BLOCKING);
	if (blocking >= 0)
		return blocking != 0;
	struct kvm_mp_state mp = { 0 };
	hold_to_look(v);
	int r = kvm_ioctl(v->fd, KVM_GET_MP_STATE, &mp);
	release_look(v);
	return r == 0 && mp.mp_state != KVM_MP_STATE_RUNNABLE;
}

static napi_value k_status(napi_env env, napi_callback_info info)
{
	napi_value argv[1], out;
	if (!get_args(env, info, 1, argv))
		return NULL;
	struct vm *vm = vm_of(env, argv[0]);
	if (!vm)
		return NULL;
	CHECK(napi_create_array_with_length(env, vm->nvcpus, &out));
	for (unsigned k = 0; k < vm->nvcpus; k++) {
		struct vcpu *v = &vm->vcpus[k];
		int32_t st = atomic_load(&v->rec->state);
		const char *state = atomic_load(&v->stopped)		   ? "stopped"
				    : st == REC_POSTED || st == REC_TAKEN || st == REC_LANE ? "waiting"
				    : atomic_load(&v->paused)		   ? "paused"
				    : is_halted(v)			   ? "halted"
									   : "executing";
		napi_value o, exits, s, n;
		CHECK(napi_create_object(env, &o));
		CHECK(napi_create_string_utf8(env, state, NAPI_AUTO_LENGTH, &s));
		CHECK(napi_set_named_property(env, o, "state", s));
		CHECK(napi_create_object(env, &exits));
		for (int c = 0; c < N_COUNTS; c++) {
			uint64_t x = atomic_load(&v->counts[c]);
			if (x == 0 && c != COUNT_PIO && c != COUNT_MMIO)
				continue;
			CHECK(napi_create_double(env, (double)x, &n));
			CHECK(napi_set_named_property(env, exits, count_names[c], n));
		}
		static const struct {
			int stat;
			const char *name;
		} from_stats[] = { { STAT_HALT_EXITS, "hlt" },
				   { STAT_IRQ_INJECTIONS, "irq" },
				   { STAT_IRQ_WINDOW, "irq-window" } };
		for (size_t f = 0; f < sizeof(from_stats) / sizeof(from_stats[0]); f++) {
			int64_t x = read_stat(v, from_stats[f].stat);
			if (x < 0)
				continue;
			CHECK(napi_create_double(env, (double)((uint64_t)x + v->carried[from_stats[f].stat]), &n));
			CHECK(napi_set_named_property(env, exits, from_stats[f].name, n));
		}
		CHECK(napi_set_named_property(env, o, "exits", exits));
		CHECK(napi_set_element(env, out, k, o));
	}
	return out;
}

static napi_value k_destroy(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	void *data = NULL;
	if (!get_args(env, info, 1, argv))
		return NULL;
	if (napi_get_value_external(env, argv[0], &data) == napi_ok && data) {
		destroy_vm(data);
		lane_unref(data);
	}
	update_ref();
	return undefined(env);
}

/* A Uint8Array's bytes, and a reference that keeps them alive. */
static uint8_t *pinned_bytes(napi_env env, napi_value a, size_t at_least, napi_ref *ref)
{
	size_t length;
	uint8_t *data = hsm_uint8_array(env, a, &length);
	if (!data || length < at_least)
		return NULL;
	if (ref && napi_create_reference(env, a, 1, ref) != napi_ok)
		return NULL;
	return data;
}

/*
 * setLane(vm, lane, ioreq): the VM's lane page and its ioreq page (Uint8Arrays over
 * shared memory, kept alive here); returns the completion log (an ArrayBuffer). Dispatch
 * through it waits for setLaneDispatch(vm, true).
 */
static napi_value k_set_lane(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	if (!get_args(env, info, 3, argv))
		return NULL;
	struct vm *vm = vm_of(env, argv[0]);
	if (!vm)
		return NULL;
	if (atomic_load(&vm->lane))
		return throw_errno(env, EEXIST, "hsm_kvm.setLane: the VM has a lane");
	napi_ref lane_ref = NULL, ioreq_ref = NULL;
	struct records *log = NULL;
	napi_value buffer;
	uint8_t *lane = pinned_bytes(env, argv[1], HSM_LANE_SIZE, &lane_ref);
	uint8_t *ioreq = lane ? pinned_bytes(env, argv[2], PAGE, &ioreq_ref) : NULL;
	if (!lane || !ioreq || ((uintptr_t)lane & 63) || ((uintptr_t)ioreq & 255)) {
		throw_range(env, "hsm_kvm.setLane(vm, lane, ioreq): a lane page and an ioreq page (aligned Uint8Arrays)");
		goto fail;
	}
	log = new_records(LOG_HEADERS + (size_t)HSM_LANE_SLOTS * LOG_ENTRIES * LOG_ENTRY_SIZE);
	if (!log) {
		throw_errno(env, ENOMEM, "hsm_kvm: lane log");
		goto fail;
	}
	for (unsigned i = 0; i < HSM_LANE_SLOTS; i++) /* nothing to drain yet: the first entry wakes */
		atomic_store(&((struct log_header *)((uint8_t *)log->mem + (size_t)i * 64))->armed, 1);
	if (napi_create_external_arraybuffer(env, log->mem, log->length, records_finalize, log, &buffer) !=
	    napi_ok) {
		napi_throw_error(env, NULL, "hsm_kvm: napi_create_external_arraybuffer failed");
		goto fail;
	}
	log->refs++; /* the VM's and JavaScript's */
	hold_all(vm);
	vm->log = log;
	vm->ioreq = ioreq;
	vm->lane_ref = lane_ref;
	vm->ioreq_ref = ioreq_ref;
	atomic_store(&vm->lane, (struct hsm_lane *)lane);
	release_all(vm);
	return buffer;
fail:
	drop_records(log);
	if (lane_ref)
		napi_delete_reference(env, lane_ref);
	if (ioreq_ref)
		napi_delete_reference(env, ioreq_ref);
	return NULL;
}

/* (vm, on): one of the VM's lane switches, `which` of it. */
static napi_value set_lane_switch(napi_env env, napi_callback_info info,
				  _Atomic int32_t *(*which)(struct vm *))
{
	napi_value argv[2];
	bool on;
	if (!get_args(env, info, 2, argv))
		return NULL;
	struct vm *vm = vm_of(env, argv[0]);
	if (!vm)
		return NULL;
	CHECK(napi_get_value_bool(env, argv[1], &on));
	atomic_store(which(vm), on ? 1 : 0);
	return undefined(env);
}

static _Atomic int32_t *lane_dispatch_of(struct vm *vm) { return &vm->lane_dispatch; }
static _Atomic int32_t *lane_js_waiters_of(struct vm *vm) { return &vm->lane_js_waiters; }

/* setLaneDispatch(vm, on): whether exits may go out through the lane. */
static napi_value k_set_lane_dispatch(napi_env env, napi_callback_info info)
{
	return set_lane_switch(env, info, lane_dispatch_of);
}

/* setLaneJsWaiters(vm, on): the model has ATTACH waiters to wake when the lane dispatches. */
static napi_value k_set_lane_js_waiters(napi_env env, napi_callback_info info)
{
	return set_lane_switch(env, info, lane_js_waiters_of);
}

/* setLaneRoutes(vm, bits): 8192 bytes, bit p set when port p is not the default client's. */
static napi_value k_set_lane_routes(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	if (!get_args(env, info, 2, argv))
		return NULL;
	struct vm *vm = vm_of(env, argv[0]);
	if (!vm)
		return NULL;
	uint8_t *bits = pinned_bytes(env, argv[1], sizeof(vm->routes), NULL);
	if (!bits)
		return throw_range(env, "hsm_kvm.setLaneRoutes(vm, bits): a Uint8Array of 8192 bytes");
	for (size_t k = 0; k < sizeof(vm->routes); k++)
		atomic_store_explicit(&vm->routes[k], bits[k], memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	return undefined(env);
}

/* laneSignal(lane, slot): slot -1 rings the bell (ATTACH sleepers), else done[slot]. */
static napi_value k_lane_signal(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	int32_t slot;
	if (!get_args(env, info, 2, argv))
		return NULL;
	struct hsm_lane *lane = (struct hsm_lane *)pinned_bytes(env, argv[0], HSM_LANE_SIZE, NULL);
	if (!lane || napi_get_value_int32(env, argv[1], &slot) != napi_ok || slot < -1 ||
	    slot >= (int32_t)HSM_LANE_SLOTS)
		return throw_range(env, "hsm_kvm.laneSignal(lane, slot): a lane page and -1 to 15");
	if (slot < 0)
		hsm_lane_ring_bell(lane);
	else
		hsm_lane_signal_done(lane, (unsigned)slot);
	return undefined(env);
}

static napi_value init(napi_env env, napi_value exports)
{
	static const struct {
		const char *name;
		napi_callback fn;
	} fns[] = {
		{ "open", k_open },		  { "setWake", k_set_wake },
		{ "setPolling", k_set_polling },  { "wait", k_wait },
		{ "createVm", k_create_vm },	  { "setMemory", k_set_memory },
		{ "setRegs", k_set_regs },	  { "getRegs", k_get_regs },
		{ "run", k_run },		  { "pause", k_pause },
		{ "reset", k_reset },		  { "complete", k_complete },
		{ "fault", k_fault },		  { "injectMsi", k_inject_msi },
		{ "setIrqLine", k_set_irq_line }, { "status", k_status },
		{ "destroy", k_destroy },	  { "setLane", k_set_lane },
		{ "setLaneDispatch", k_set_lane_dispatch },
		{ "setLaneRoutes", k_set_lane_routes },
		{ "setLaneJsWaiters", k_set_lane_js_waiters },
		{ "laneSignal", k_lane_signal },
	};
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		napi_value f;
		CHECK(napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f));
		CHECK(napi_set_named_property(env, exports, fns[i].name, f));
	}
	/* The control words live as long as the process: no finalizer frees them. */
	if (!control) {
		control = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (control == MAP_FAILED) {
			control = NULL;
			napi_throw_error(env, NULL, "hsm_kvm: no memory for the control words");
			return NULL;
		}
	}
	napi_value buffer;
	CHECK(napi_create_external_arraybuffer(env, control, sizeof(*control), NULL, NULL, &buffer));
	CHECK(napi_set_named_property(env, exports, "control", buffer));
	return exports;
}

NAPI_MODULE(hsm_kvm, init)
