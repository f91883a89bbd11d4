/*
 * frame-floor: the floor of `npm run bench -- native`. Two processes, a client and a
 * server, exchange the frames of a shimmed NOTIFY_REQUEST_FINISH (a 64-byte ioctl request
 * and its 32-byte reply, hsm-protocol.h) and do nothing else: no simulation, no helper,
 * no shim. What a shimmed ioctl costs beyond this is the cost of our code.
 *
 *   build/frame-floor ring|ring-poll|ring-piped|socket CALLS [IN_FLIGHT]
 *   build/frame-floor ring-threads THREADS CALLS_PER_THREAD
 *
 * ring:   the shim's shared-memory ring (hsm-ring.h), waited on as the shim and the
 *         server wait on it (SHIM.md, "The ring" and "Cost"): each side polls for a
 *         budget learned from its own waits (hsm-spin.h, the haltpoll rule, at most
 *         50 µs), the server in slices of 10 µs with a look at its socket between them
 *         (its event loop's turn); then it says so in its idle word and sleeps: the
 *         client on the ring's bell (a futex word the server rings), the server on its
 *         socket (the client's doorbell byte).
 * ring-poll: the ring as it was waited on before (for comparison): the client polls up
 *         to 1 ms per reply, yielding after 50 µs, the server 200 µs after its last
 *         frame; a side that stops is woken by a doorbell byte on the socket.
 * ring-piped: the ring as `npm run bench -- native` pipelines calls through hsm-helper:
 *         the server's one thread also drives the client, as the bench's thread (the
 *         JavaScript server, hsmd --serve-sim's) drives hsm-helper: it writes IN_FLIGHT
 *         requests into the client's pipe, reads the replies from another, and sends the
 *         next IN_FLIGHT when all are in (Promise.all). It waits as RingPoller (ring.ts)
 *         does: slices of 10 µs within a window learned from how long the ring stays quiet
 *         (at most 50 µs), its event loop (the pipes) turned after a slice that found
 *         nothing and at least every 100 µs, past the window idle and asleep until its
 *         doorbell. The client, as hsm-helper under the shim, reads what came (asleep in
 *         read(2) when nothing has), makes each call over the ring one at a time, waiting
 *         as the `ring` client does, and writes the replies of what it read at once. Here
 *         the server process prints the line.
 * socket: the same frames over a unix socket, each side blocking in read(2).
 * ring-threads: the ring as a multi-threaded shimmed program uses it (shim-load with
 *         THREADS threads): each client thread has one request out and waits for its own
 *         reply exactly as a shim caller does (hsm-shim.c, finish_call): it polls the ring
 *         for its learned budget, consuming it for everyone (replies for other threads are
 *         handed over); then it takes the ring's bell if nobody has it and sleeps on it,
 *         or else sleeps on an eventfd of its own; with nobody on the bell the server
 *         rings the socket, and a reader thread drains the ring and hands replies over.
 *
 * IN_FLIGHT (default 1) requests are outstanding at a time. Prints one line, as
 * shim-load does: `calls C seconds S per_second R switches_per_call X`, the switches
 * being both processes' voluntary and involuntary context switches (getrusage).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/acrn.h>

#include "hsm-protocol.h"
#include "hsm-ring.h"
#include "hsm-spin.h"

#define REQUEST_SIZE (HSMP_HEADER_SIZE + HSMP_IOCTL_FIXED_SIZE + 8u)
#define REPLY_SIZE HSMP_HEADER_SIZE
#define MAX_IN_FLIGHT 1024
#define MAX_THREADS 256
/*
 * The most either side polls for its input before it sleeps: the shim's and the server's
 * defaults (HSM_SHIM_SPIN_US, HSMCTL_RING_SPIN_US), each learned down from there.
 */
#define SPIN_MAX_NS 50000ull
/* The shim's poll also yields the CPU after this long. */
#define CLIENT_YIELD_NS 50000ull
/* The server's spins in C between event-loop turns (ring.ts, WAIT_SLICE_NS). */
#define SERVER_SLICE_NS 10000ull
/* ring-poll: the budgets both sides had before they learned and slept on the bell. */
#define OLD_CLIENT_SPIN_NS 1000000ull
#define OLD_SERVER_SPIN_NS 200000ull

static int ring_mode, old_poll, piped;
/* This side's learned poll budget (hsm-spin.h), the most to start with. */
static uint64_t learned = SPIN_MAX_NS;
static long calls, in_flight;
static int sock;
static struct hsm_ring_shared *shared;

static void die(const char *what)
{
	fprintf(stderr, "frame-floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void bad_frame(const char *who)
{
	fprintf(stderr, "frame-floor: the %s got a frame it did not expect\n", who);
	exit(1);
}

static int server_side;

/*
 * A bounded poll, the clock read every 16 rounds: the shim's (spin_more in hsm-shim.c),
 * which yields the CPU after 50 µs, or the server's (RingPoller in ring.ts), which
 * never yields but turns its event loop (a zero-timeout poll of its sockets) every 10 µs.
 */
struct spin {
	uint64_t deadline, next;
	unsigned rounds;
};

static struct spin spin_for(uint64_t start, uint64_t budget)
{
	struct spin s = { start + budget,
			  start + (server_side ? SERVER_SLICE_NS : CLIENT_YIELD_NS), 0 };
	return s;
}

static int spin_more(struct spin *s)
{
	if ((++s->rounds & 15) == 0) {
		uint64_t t = hsm_now_ns();
		if (t >= s->deadline)
			return 0;
		if (t >= s->next && server_side) {
			struct pollfd p = { .fd = sock, .events = POLLIN };
			(void)poll(&p, 1, 0);
			s->next = t + SERVER_SLICE_NS;
		} else if (t >= s->next) {
			sched_yield();
		}
	}
	hsm_ring_relax();
	return 1;
}

static void doorbell(void)
{
	uint8_t bell = 1;
	(void)!send(sock, &bell, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* After frames went in: wake the peer if it sleeps, as the shim and the server do. */
static void wake_peer(void)
{
	if (!server_side) {
		if (hsm_ring_peer_idle(&shared->server_idle))
			doorbell(); /* the shim's: the server's event loop wakes on its socket */
	} else if (old_poll) {
		if (hsm_ring_peer_idle(&shared->shim_idle))
			doorbell();
	} else if (hsm_ring_wake_shim(shared) == 2) {
		doorbell(); /* nobody on the bell (not in this program: the client always is) */
	}
}

/* Sleep until a doorbell (ring) or bytes (socket) come; 0 when the peer is gone. */
static int wait_socket(void)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	while (poll(&p, 1, -1) < 0)
		if (errno != EINTR)
			die("poll");
	return !(p.revents & (POLLHUP | POLLERR)) || (p.revents & POLLIN);
}

static void drain_doorbells(void)
{
	uint8_t bells[64];
	while (recv(sock, bells, sizeof(bells), MSG_DONTWAIT) > 0)
		;
}

static void send_all(const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(sock, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("send");
		p += w;
		n -= (size_t)w;
	}
}

/* Frames out: into the ring (waking the peer if it sleeps), or onto the socket. */
static void put_frames(struct hsm_ring_end *out, const uint8_t *p, size_t n)
{
	if (!ring_mode) {
		send_all(p, n);
		return;
	}
	while (n > 0) {
		int64_t put = hsm_ring_put(out, p, (uint32_t)n);
		if (put < 0)
			bad_frame("producer");
		p += put;
		n -= (size_t)put;
		if (n > 0)
			hsm_ring_relax();
	}
	wake_peer();
}

/* The peer has gone (its end of the socket closed)? */
static int peer_gone(void)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR)) && !(p.revents & POLLIN);
}

/*
 * Stop polling and sleep until the peer has put something in: the client as the shim's
 * caller does (ring_lead, ring_sleep): it takes the bell, says it is idle, and waits on
 * the bell's futex word unless input came meanwhile; the server as its poller does: idle,
 * then its socket (the doorbell). 0 when the peer is gone.
 */
static int sleep_for_input(struct hsm_ring_end *in)
{
	if (server_side || old_poll) {
		_Atomic uint32_t *idle = server_side ? &shared->server_idle : &shared->shim_idle;
		if (hsm_ring_go_idle(idle, in)) {
			if (!wait_socket())
				return 0;
			drain_doorbells();
			atomic_store(idle, 0);
		}
		return 1;
	}
	atomic_store(&shared->shim_sleeper, (uint32_t)syscall(SYS_gettid));
	uint32_t seq = atomic_load(&shared->shim_bell);
	int alive = 1;
	if (hsm_ring_go_idle(&shared->shim_idle, in)) {
		/* A hang guard: a server that died never rings (the shim's reader sees it). */
		struct timespec check = { 0, 100000000 };
		while (!hsm_ring_has_input(in) && atomic_load(&shared->shim_bell) == seq) {
			if (syscall(SYS_futex, &shared->shim_bell, FUTEX_WAIT, seq, &check, NULL, 0) < 0 &&
			    errno == ETIMEDOUT && peer_gone()) {
				alive = 0;
				break;
			}
		}
		atomic_store(&shared->shim_idle, 0);
	}
	atomic_store(&shared->shim_sleeper, 0);
	return alive;
}

/*
 * Bytes in: at least one, appended to buf at *len. Over the ring, poll for the learned
 * budget (the old fixed one for ring-poll), then sleep until woken; how long it all took
 * teaches the budget. 0 when the peer is gone.
 */
static int take_bytes(struct hsm_ring_end *in, uint8_t *buf, size_t cap, size_t *len)
{
	if (!ring_mode) {
		for (;;) {
			ssize_t r = read(sock, buf + *len, cap - *len);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				die("read");
			*len += (size_t)r;
			return r > 0;
		}
	}
	uint64_t started = hsm_now_ns();
	/* learned, and only with a CPU to spare, as the shim and hsmd now wait */
	uint64_t budget = old_poll ? (server_side ? OLD_SERVER_SPIN_NS : OLD_CLIENT_SPIN_NS)
				   : hsm_spin_allowed() ? learned : 0;
	struct spin spin = spin_for(started, budget);
	for (;;) {
		int64_t got = hsm_ring_take(in, buf + *len, (uint32_t)(cap - *len));
		if (got < 0)
			bad_frame("consumer");
		if (got > 0) {
			*len += (size_t)got;
			if (!old_poll)
				hsm_spin_learn(&learned, hsm_now_ns() - started, SPIN_MAX_NS);
			return 1;
		}
		if (spin_more(&spin))
			continue;
		if (!sleep_for_input(in))
			return 0;
		/* Woken: take what came, and sleep again at once if nothing did. */
		spin = spin_for(hsm_now_ns(), old_poll ? budget : 0);
	}
}

static void encode_request(uint8_t *b, uint32_t id)
{
	struct hsmp_header h = { HSMP_VERSION, 0, HSMP_OP_IOCTL, id, REQUEST_SIZE - HSMP_HEADER_SIZE,
				 0, 0 };
	uint8_t *p = b + HSMP_HEADER_SIZE;
	memset(p, 0, REQUEST_SIZE - HSMP_HEADER_SIZE);
	hsmp_put32(p, 3);					/* the simulated fd */
	hsmp_put32(p + 4, ACRN_IOCTL_NOTIFY_REQUEST_FINISH); /* struct acrn_ioreq_notify */
	hsmp_put16(p + 8, HSMP_ARG_BUFFER);			/* its 8 bytes follow, zero */
	hsmp_encode_header(b, &h);
}

/* Check a request as the server checks one (wellFormed, decodeIoctl): its reply, or -1. */
static int handle_request(const uint8_t *b, uint32_t length, const struct hsmp_header *h,
			  uint8_t *reply)
{
	if (h->version != HSMP_VERSION || h->flags || h->result || h->error || h->id == 0 ||
	    h->op != HSMP_OP_IOCTL || length != REQUEST_SIZE - HSMP_HEADER_SIZE ||
	    hsmp_get32(b + 4) != ACRN_IOCTL_NOTIFY_REQUEST_FINISH ||
	    hsmp_get16(b + 8) != HSMP_ARG_BUFFER)
		return -1;
	struct hsmp_header r = { HSMP_VERSION, 0, HSMP_OP_IOCTL, h->id, 0, 0, 0 };
	hsmp_encode_header(reply, &r);
	return 0;
}

/* Whole frames at the front of buf: calls fn on each, keeps the rest. */
static size_t frames_in(uint8_t *buf, size_t *len, const char *who,
			void (*fn)(const struct hsmp_header *, const uint8_t *, void *), void *ctx)
{
	size_t at = 0, n = 0;
	while (*len - at >= HSMP_HEADER_SIZE) {
		struct hsmp_header h;
		if (hsmp_decode_header(buf + at, &h) != HSMP_HEADER_OK || h.length > HSMP_MAX_PAYLOAD)
			bad_frame(who);
		if (*len - at < HSMP_HEADER_SIZE + (size_t)h.length)
			break;
		fn(&h, buf + at + HSMP_HEADER_SIZE, ctx);
		at += HSMP_HEADER_SIZE + h.length;
		n++;
	}
	memmove(buf, buf + at, *len - at);
	*len -= at;
	return n;
}

struct server_batch {
	uint8_t out[MAX_IN_FLIGHT * REPLY_SIZE];
	size_t len;
};

static void serve_frame(const struct hsmp_header *h, const uint8_t *payload, void *ctx)
{
	struct server_batch *b = ctx;
	if (handle_request(payload, h->length, h, b->out + b->len) < 0)
		bad_frame("server");
	b->len += REPLY_SIZE;
}

static void server(void)
{
	server_side = 1;
	struct hsm_ring_end in = {0}, out = {0};
	if (ring_mode) {
		in = hsm_ring_up(shared, shared->size, 0);
		out = hsm_ring_down(shared, shared->size, 1);
	}
	static uint8_t rx[MAX_IN_FLIGHT * REQUEST_SIZE];
	static struct server_batch batch;
	size_t rx_len = 0;
	uint8_t ready = 1;
	send_all(&ready, 1);
	for (long served = 0; served < calls;) {
		if (!take_bytes(&in, rx, sizeof(rx), &rx_len))
			exit(1);
		batch.len = 0;
		served += (long)frames_in(rx, &rx_len, "server", serve_frame, &batch);
		put_frames(&out, batch.out, batch.len);
	}
	exit(0);
}

struct client_state {
	long done;
};

static void reply_frame(const struct hsmp_header *h, const uint8_t *payload, void *ctx)
{
	(void)payload;
	struct client_state *c = ctx;
	/* Replies come in order, each for the oldest request still out, and say 0. */
	if (h->op != HSMP_OP_IOCTL || h->id != (uint32_t)(c->done + 1) || h->result || h->error)
		bad_frame("client");
	c->done++;
}

static long switches(int who)
{
	struct rusage u;
	getrusage(who, &u);
	return u.ru_nvcsw + u.ru_nivcsw;
}

/* ------------------------------------------------------------------------------------ */
/* ring-piped: the pipelined figure's path without our code. The server's one thread also */
/* drives the client, as the bench's thread drives hsm-helper over its pipes.             */

/* The server's event loop gets a turn at least this often while frames come (ring.ts). */
#define TURN_NS 100000ull

static int req_fd = -1, rep_fd = -1; /* the driver's requests to the client, its replies */

static void write_fully(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write");
		p += w;
		n -= (size_t)w;
	}
}

/*
 * The client, as hsm-helper under the shim runs a pipeline of calls: it reads what the
 * driver has sent (sleeping in read(2) when there is nothing), makes each request's call
 * over the ring, one at a time, waiting as the shim waits (take_bytes), and writes the
 * replies of what it read in one write, then reads again (hsm-helper's serve()).
 */
static void piped_client(void)
{
	server_side = 0;
	struct hsm_ring_end out = hsm_ring_up(shared, shared->size, 1);
	struct hsm_ring_end in = hsm_ring_down(shared, shared->size, 0);
	static uint8_t inbuf[MAX_IN_FLIGHT * REQUEST_SIZE], outbuf[MAX_IN_FLIGHT * REPLY_SIZE];
	uint8_t rx[4 * REPLY_SIZE], request[REQUEST_SIZE];
	size_t have = 0, rx_len = 0;
	struct client_state ring_calls = { 0 };
	for (;;) {
		ssize_t r = read(req_fd, inbuf + have, sizeof(inbuf) - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read");
		if (r == 0)
			exit(0); /* every call made */
		have += (size_t)r;
		size_t at = 0, replies = 0;
		while (have - at >= REQUEST_SIZE) {
			struct hsmp_header h;
			if (hsmp_decode_header(inbuf + at, &h) != HSMP_HEADER_OK ||
			    handle_request(inbuf + at + HSMP_HEADER_SIZE, h.length, &h,
					   outbuf + replies * REPLY_SIZE) < 0)
				bad_frame("client (from the driver)");
			encode_request(request, (uint32_t)(ring_calls.done + 1));
			put_frames(&out, request, REQUEST_SIZE);
			long want = ring_calls.done + 1;
			while (ring_calls.done < want) {
				if (!take_bytes(&in, rx, sizeof(rx), &rx_len))
					bad_frame("client (the server left)");
				frames_in(rx, &rx_len, "client", reply_frame, &ring_calls);
			}
			at += REQUEST_SIZE;
			replies++;
		}
		memmove(inbuf, inbuf + at, have - at);
		have -= at;
		write_fully(rep_fd, outbuf, replies * REPLY_SIZE);
	}
}

/* The driver's side: batches of in_flight requests, each sent when the last is answered. */
struct driver {
	uint8_t batch[MAX_IN_FLIGHT * REQUEST_SIZE];
	size_t batch_len, batch_at;
	uint8_t rx[MAX_IN_FLIGHT * REPLY_SIZE];
	size_t rx_len;
	long issued;
	struct client_state answered;
};

/*
 * The event loop's turn (the bench's thread between ring polls): what fits of the batch
 * goes into the client's pipe, its replies are read, and when all are in (Promise.all)
 * the next batch is made. Never blocks.
 */
static void event_turn(struct driver *d)
{
	for (;;) {
		ssize_t r = read(rep_fd, d->rx + d->rx_len, sizeof(d->rx) - d->rx_len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != EAGAIN)
			die("read");
		if (r == 0)
			bad_frame("driver (the client left)");
		if (r < 0)
			break;
		d->rx_len += (size_t)r;
		frames_in(d->rx, &d->rx_len, "driver", reply_frame, &d->answered);
	}
	if (d->answered.done == d->issued && d->issued < calls) {
		long n = calls - d->issued < in_flight ? calls - d->issued : in_flight;
		for (long i = 0; i < n; i++)
			encode_request(d->batch + i * REQUEST_SIZE, (uint32_t)(d->issued + i + 1));
		d->issued += n;
		d->batch_len = (size_t)n * REQUEST_SIZE;
		d->batch_at = 0;
	}
	while (d->batch_at < d->batch_len) {
		ssize_t w = write(req_fd, d->batch + d->batch_at, d->batch_len - d->batch_at);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN)
			die("write");
		if (w < 0)
			break;
		d->batch_at += (size_t)w;
	}
}

/* Requests in, replies out, over the ring: whether any came. */
static int serve_ring(struct hsm_ring_end *in, struct hsm_ring_end *out)
{
	static uint8_t rx[MAX_IN_FLIGHT * REQUEST_SIZE];
	static size_t rx_len;
	static struct server_batch replies;
	int64_t got = hsm_ring_take(in, rx + rx_len, (uint32_t)(sizeof(rx) - rx_len));
	if (got < 0)
		bad_frame("server");
	if (got == 0)
		return 0;
	rx_len += (size_t)got;
	replies.len = 0;
	frames_in(rx, &rx_len, "server", serve_frame, &replies);
	if (replies.len)
		put_frames(out, replies.out, replies.len);
	return 1;
}

/*
 * The server and driver, one thread, waiting as RingPoller (ring.ts) does: while frames
 * come it polls the ring, spinning in slices of 10 µs within a window learned from how
 * long the ring stays quiet (at most 50 µs), and gives the event loop a turn after a
 * slice that found nothing and at least every 100 µs; past the window it says the server
 * is idle and sleeps until its doorbell, its event loop (the pipes) running meanwhile.
 */
static void piped_server(void)
{
	server_side = 1;
	struct hsm_ring_end in = hsm_ring_up(shared, shared->size, 0);
	struct hsm_ring_end out = hsm_ring_down(shared, shared->size, 1);
	static struct driver d;
	uint64_t window = SPIN_MAX_NS, last_active = hsm_now_ns(), turn_started = 0;
	int polling = 0;
	atomic_store(&shared->server_idle, 1);
	while (d.answered.done < calls) {
		uint64_t t = hsm_now_ns();
		if (polling && serve_ring(&in, &out)) {
			last_active = t = hsm_now_ns();
		} else if (polling && t - last_active < window && hsm_spin_allowed()) {
			uint64_t slice = last_active + window - t;
			uint64_t until = t + (slice < SERVER_SLICE_NS ? slice : SERVER_SLICE_NS);
			int found = 0;
			for (unsigned spins = 0; !(found = hsm_ring_has_input(&in)); spins++) {
				if ((spins & 15) == 0 && hsm_now_ns() >= until)
					break;
				hsm_ring_relax();
			}
			t = hsm_now_ns();
			if (found) {
				hsm_spin_learn(&window, t - last_active, SPIN_MAX_NS);
				last_active = t;
			} else {
				turn_started = 0; /* quiet: the event loop may have work */
			}
		} else if (polling && !hsm_ring_go_idle(&shared->server_idle, &in)) {
			last_active = hsm_now_ns();
			continue;
		} else if (polling) {
			polling = 0;
		} else {
			/* Asleep: the event loop waits on the doorbell and the pipes. */
			event_turn(&d);
			if (d.answered.done == calls)
				break;
			struct pollfd p[3] = { { .fd = sock, .events = POLLIN },
					       { .fd = rep_fd, .events = POLLIN },
					       { .fd = req_fd, .events = d.batch_at < d.batch_len ? POLLOUT : 0 } };
			while (poll(p, 3, -1) < 0)
				if (errno != EINTR)
					die("poll");
			if (p[0].revents & POLLIN) {
				drain_doorbells();
				atomic_store(&shared->server_idle, 0);
				t = hsm_now_ns();
				hsm_spin_learn(&window, t - last_active, SPIN_MAX_NS); /* kick() */
				last_active = t;
				polling = 1;
			} else if (p[0].revents & (POLLHUP | POLLERR)) {
				bad_frame("server (the client left)");
			}
			turn_started = 0;
		}
		if (polling && t - turn_started >= TURN_NS) {
			event_turn(&d);
			turn_started = hsm_now_ns();
		}
	}
	close(req_fd); /* the client's read ends: it exits */
}

/* ------------------------------------------------------------------------------------ */
/* ring-threads: the shim's waiting, in its own words (hsm-shim.c), minus what a floor    */
/* does not need (signals, SYNC/DIFF frames, the socket transport).                       */

/* A thread's request out and its reply (the shim's struct waiter). */
struct waiter {
	int used;
	uint32_t id;
	atomic_int done;
	/* Its thread sleeps on the ring's bell, not on wake_fd. */
	atomic_int on_bell;
	int wake_fd;
	int ok; /* the reply came and said 0 */
	long replies;
};
static struct waiter waiters[MAX_THREADS];
static long thread_count, per_thread;
/* Serialises frames into the ring (the shim's `lock`). */
static pthread_mutex_t send_lock = PTHREAD_MUTEX_INITIALIZER;
/* The waiter table: whoever drains the ring hands replies over under it. */
static pthread_mutex_t wlock = PTHREAD_MUTEX_INITIALIZER;
/* The consumer of the server's ring: a caller waiting for its reply, or the reader. */
static pthread_mutex_t rdlock = PTHREAD_MUTEX_INITIALIZER;
static struct hsm_ring_end t_out, t_in;
static uint8_t t_rx[MAX_THREADS * REPLY_SIZE + REPLY_SIZE];
static size_t t_rx_len;
static atomic_int lost;
static uint32_t next_id = 1;
static pthread_barrier_t start_line;
/* The waiter this thread polls the ring for (ring_lead): its reply needs no wake-up. */
static __thread struct waiter *leading_for;
static __thread pid_t bell_tid;
static __thread uint32_t bell_seq;
/* How long this thread has learned its replies are worth polling for (the most at first). */
static __thread uint64_t learned_spin = UINT64_MAX;

/* Finish a waiter (wlock held) and wake its thread, unless it is the one draining. */
static void complete_waiter(struct waiter *w, int ok)
{
	w->ok = ok;
	atomic_store(&w->done, 1);
	if (w != leading_for) {
		if (atomic_load(&w->on_bell)) {
			hsm_ring_ring_bell(shared);
		} else {
			uint64_t one = 1;
			(void)!write(w->wake_fd, &one, sizeof(one));
		}
	}
}

/* A reply from the ring: to the waiter of its id, which must be out (the shim's dispatch). */
static void dispatch(const struct hsmp_header *h, const uint8_t *payload, void *ctx)
{
	(void)payload;
	(void)ctx;
	if (h->op != HSMP_OP_IOCTL || h->length || h->result || h->error)
		bad_frame("client");
	pthread_mutex_lock(&wlock);
	struct waiter *found = NULL;
	for (long i = 0; i < thread_count; i++) {
		struct waiter *w = &waiters[i];
		if (w->used && w->id == h->id && !atomic_load(&w->done))
			found = w;
	}
	if (!found)
		bad_frame("client (a reply for no request out)");
	complete_waiter(found, 1);
	pthread_mutex_unlock(&wlock);
}

/* Take what the server has put in the ring and dispatch every whole frame (rdlock held). */
static void drain_ring(void)
{
	for (;;) {
		int64_t got = hsm_ring_take(&t_in, t_rx + t_rx_len, (uint32_t)(sizeof(t_rx) - t_rx_len));
		if (got < 0)
			bad_frame("client");
		t_rx_len += (size_t)got;
		frames_in(t_rx, &t_rx_len, "client", dispatch, NULL);
		if (got == 0)
			return;
	}
}

/* Consume the ring until it stays empty, then say so (rdlock held). */
static void drain_until_idle(void)
{
	do
		drain_ring();
	while (!hsm_ring_go_idle(&shared->shim_idle, &t_in));
}

static void fail_all_waiters(void)
{
	pthread_mutex_lock(&wlock);
	for (long i = 0; i < thread_count; i++)
		if (waiters[i].used && !atomic_load(&waiters[i].done))
			complete_waiter(&waiters[i], 0);
	pthread_mutex_unlock(&wlock);
}

/* Take the bell (one thread at a time sleeps on it); the count is read now. */
static int bell_take(struct waiter *w)
{
	static __thread pid_t tid;
	if (!tid)
		tid = (pid_t)syscall(SYS_gettid);
	uint32_t none = 0;
	if (!atomic_compare_exchange_strong(&shared->shim_sleeper, &none, (uint32_t)tid))
		return 0;
	bell_tid = tid;
	atomic_store(&w->on_bell, 1);
	bell_seq = atomic_load(&shared->shim_bell);
	return 1;
}

static void bell_release(struct waiter *w)
{
	atomic_store(&w->on_bell, 0);
	uint32_t mine = (uint32_t)bell_tid;
	atomic_compare_exchange_strong(&shared->shim_sleeper, &mine, 0);
	bell_tid = 0;
}

/* Poll the ring for w's reply for at most `budget`, consuming it for everyone. */
static void ring_lead(struct waiter *w, uint64_t budget)
{
	struct spin spin = spin_for(hsm_now_ns(), budget);
	while (!atomic_load(&w->done)) {
		if (pthread_mutex_trylock(&rdlock) == 0) {
			atomic_store(&shared->shim_idle, 0);
			leading_for = w;
			for (;;) {
				drain_ring();
				if (atomic_load(&w->done) || !spin_more(&spin))
					break;
			}
			/* Stopping without the reply: the server's next frames ring the bell this
			 * thread will sleep on, not the reader's socket. */
			if (!atomic_load(&w->done))
				bell_take(w);
			drain_until_idle();
			leading_for = NULL;
			pthread_mutex_unlock(&rdlock);
			return;
		}
		/* Another thread consumes the ring; it hands our reply over. */
		if (!spin_more(&spin))
			return;
	}
}

/* Drain the ring for w's thread; nothing when another thread holds it (it hands over). */
static void ring_drain_for(struct waiter *w)
{
	if (pthread_mutex_trylock(&rdlock) != 0)
		return;
	atomic_store(&shared->shim_idle, 0);
	leading_for = w;
	drain_until_idle();
	leading_for = NULL;
	pthread_mutex_unlock(&rdlock);
}

/* A hang guard on every sleep: a server that died never rings (the reader sees it too). */
static const struct timespec recheck = { 0, 100000000 };

static void check_alive(void)
{
	if (peer_gone() || atomic_load(&lost)) {
		atomic_store(&lost, 1);
		fail_all_waiters();
	}
}

/*
 * Sleep on the bell until the server, or a thread handing the reply over, rings it; then
 * drain the ring. 1 when woken (or the guard's timeout), 0 when another thread has the
 * bell: this one then sleeps on its wake_fd.
 */
static int ring_sleep(struct waiter *w)
{
	if (!bell_tid && !bell_take(w))
		return 0;
	if (!atomic_load(&w->done) &&
	    atomic_load(&shared->down_tail) == atomic_load(&shared->down_head) &&
	    syscall(SYS_futex, &shared->shim_bell, FUTEX_WAIT, bell_seq, &recheck, NULL, 0) < 0 &&
	    errno == ETIMEDOUT)
		check_alive();
	bell_release(w);
	/* Even with its own reply handed over: the server may have rung the bell (it saw this
	 * thread on it) for replies of other threads, which nobody else will drain. */
	ring_drain_for(w);
	return 1;
}

/* One request out (the shim's finish_call): send, then wait as a shim caller does. */
static int call(struct waiter *w)
{
	uint8_t request[REQUEST_SIZE];
	pthread_mutex_lock(&send_lock);
	uint32_t id = next_id++;
	pthread_mutex_lock(&wlock);
	w->used = 1;
	w->id = id;
	w->ok = 0;
	atomic_store(&w->done, 0);
	atomic_store(&w->on_bell, 0);
	pthread_mutex_unlock(&wlock);
	encode_request(request, id);
	put_frames(&t_out, request, REQUEST_SIZE);
	pthread_mutex_unlock(&send_lock);

	uint64_t most = SPIN_MAX_NS;
	uint64_t started = hsm_now_ns();
	ring_lead(w, !hsm_spin_allowed() ? 0 : learned_spin < most ? learned_spin : most);
	while (!atomic_load(&w->done)) {
		if (ring_sleep(w))
			continue;
		struct pollfd p = { .fd = w->wake_fd, .events = POLLIN };
		int r = poll(&p, 1, (int)(recheck.tv_nsec / 1000000));
		if (r > 0) {
			uint64_t v;
			(void)!read(w->wake_fd, &v, sizeof(v));
		} else if (r == 0) {
			check_alive();
		}
	}
	if (bell_tid)
		bell_release(w);
	if (learned_spin > most)
		learned_spin = most;
	hsm_spin_learn(&learned_spin, hsm_now_ns() - started, most);
	pthread_mutex_lock(&wlock);
	w->used = 0;
	pthread_mutex_unlock(&wlock);
	return w->ok;
}

static void *caller_main(void *arg)
{
	struct waiter *w = arg;
	pthread_barrier_wait(&start_line);
	for (long i = 0; i < per_thread && call(w); i++)
		w->replies++;
	return NULL;
}

/* Nobody polls the ring: the server's doorbell (a byte on the socket) wakes this thread. */
static void *reader_main(void *arg)
{
	(void)arg;
	for (;;) {
		uint8_t bells[64];
		ssize_t r = recv(sock, bells, sizeof(bells), 0);
		if (r < 0 && errno == EINTR)
			continue;
		pthread_mutex_lock(&rdlock);
		atomic_store(&shared->shim_idle, 0);
		drain_until_idle(); /* also on the way out: the server's last replies */
		pthread_mutex_unlock(&rdlock);
		if (r <= 0)
			break;
	}
	atomic_store(&lost, 1);
	fail_all_waiters();
	return NULL;
}

/* The client of ring-threads: the replies that came back (all, or it failed), and when. */
static long threaded_client(uint64_t *started, uint64_t *ended)
{
	t_out = hsm_ring_up(shared, shared->size, 1);
	t_in = hsm_ring_down(shared, shared->size, 0);
	pthread_t callers[MAX_THREADS], reader;
	if (pthread_barrier_init(&start_line, NULL, (unsigned)thread_count + 1) != 0)
		die("pthread_barrier_init");
	for (long i = 0; i < thread_count; i++) {
		waiters[i].wake_fd = eventfd(0, EFD_CLOEXEC);
		if (waiters[i].wake_fd < 0)
			die("eventfd");
		errno = pthread_create(&callers[i], NULL, caller_main, &waiters[i]);
		if (errno)
			die("pthread_create");
	}
	errno = pthread_create(&reader, NULL, reader_main, NULL);
	if (errno)
		die("pthread_create");
	pthread_barrier_wait(&start_line);
	*started = hsm_now_ns();
	long replies = 0;
	for (long i = 0; i < thread_count; i++) {
		pthread_join(callers[i], NULL);
		replies += waiters[i].replies;
	}
	*ended = hsm_now_ns();
	if (replies != thread_count * per_thread)
		shutdown(sock, SHUT_RDWR); /* a server still waiting for calls gives up */
	/* The reader ends when the server, having served every call, closes its socket. */
	pthread_join(reader, NULL);
	return replies;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: frame-floor ring|ring-poll|ring-piped|socket CALLS [IN_FLIGHT(1-%d)]\n"
		"       frame-floor ring-threads THREADS(1-%d) CALLS_PER_THREAD\n",
		MAX_IN_FLIGHT, MAX_THREADS);
	return 2;
}

int main(int argc, char **argv)
{
	int threaded = argc >= 2 && strcmp(argv[1], "ring-threads") == 0;
	if (threaded) {
		thread_count = argc == 4 ? strtol(argv[2], NULL, 10) : 0;
		per_thread = argc == 4 ? strtol(argv[3], NULL, 10) : 0;
		if (thread_count < 1 || thread_count > MAX_THREADS || per_thread < 1 ||
		    per_thread > (long)INT32_MAX / thread_count)
			return usage();
		ring_mode = 1;
		calls = thread_count * per_thread;
	} else {
		old_poll = argc >= 3 && strcmp(argv[1], "ring-poll") == 0;
		piped = argc >= 3 && strcmp(argv[1], "ring-piped") == 0;
		ring_mode = argc >= 3 && (old_poll || piped || strcmp(argv[1], "ring") == 0);
		calls = argc >= 3 ? strtol(argv[2], NULL, 10) : 0;
		in_flight = argc >= 4 ? strtol(argv[3], NULL, 10) : 1;
		if (argc < 3 || argc > 4 || (!ring_mode && strcmp(argv[1], "socket") != 0) ||
		    calls < 1 || calls > (long)INT32_MAX || in_flight < 1 || in_flight > MAX_IN_FLIGHT)
			return usage();
	}
	int pair[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
		die("socketpair");
	/* The ring file as the shim makes it: a memfd of the default size. */
	static struct hsm_ring_shared idle_words; /* the socket mode's: never set */
	shared = &idle_words;
	if (ring_mode) {
		int fd = memfd_create("frame-floor-ring", MFD_CLOEXEC);
		size_t length = hsm_ring_file_size(HSM_RING_DEFAULT_SIZE);
		if (fd < 0 || ftruncate(fd, (off_t)length) < 0)
			die("memfd");
		shared = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (shared == MAP_FAILED)
			die("mmap");
		close(fd);
		shared->magic = HSM_RING_MAGIC;
		shared->version = HSM_RING_VERSION;
		shared->size = HSM_RING_DEFAULT_SIZE;
	}
	int req[2], rep[2];
	if (piped && (pipe2(req, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0))
		die("pipe");
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		close(pair[0]);
		sock = pair[1];
		if (!piped)
			server();
		close(req[1]);
		close(rep[0]);
		req_fd = req[0];
		rep_fd = rep[1];
		send_all((const uint8_t *)"", 1);
		piped_client();
	}
	close(pair[1]);
	sock = pair[0];
	if (piped) {
		/* ring-piped: this process is the server, and drives the client (hsm-helper's role). */
		close(req[0]);
		close(rep[1]);
		req_fd = req[1];
		rep_fd = rep[0];
		if (fcntl(req_fd, F_SETFL, O_NONBLOCK) < 0 || fcntl(rep_fd, F_SETFL, O_NONBLOCK) < 0)
			die("fcntl");
	}
	uint8_t ready;
	if (read(sock, &ready, 1) != 1)
		die("the server did not start");

	long before = switches(RUSAGE_SELF);
	uint64_t start = hsm_now_ns(), end = 0;
	if (piped) {
		piped_server();
	} else if (threaded) {
		if (threaded_client(&start, &end) != calls)
			bad_frame("client (the server left)");
	} else {
		struct hsm_ring_end out = {0}, in = {0};
		if (ring_mode) {
			out = hsm_ring_up(shared, shared->size, 1);
			in = hsm_ring_down(shared, shared->size, 0);
		}
		static uint8_t requests[MAX_IN_FLIGHT * REQUEST_SIZE];
		static uint8_t rx[MAX_IN_FLIGHT * REPLY_SIZE];
		size_t rx_len = 0;
		struct client_state c = { 0 };
		long sent = 0;
		while (c.done < calls) {
			/* Top up to IN_FLIGHT outstanding requests, then wait for at least one reply. */
			size_t n = 0;
			while (sent < calls && sent - c.done < in_flight) {
				encode_request(requests + n, (uint32_t)(sent + 1));
				n += REQUEST_SIZE;
				sent++;
			}
			if (n)
				put_frames(&out, requests, n);
			if (!take_bytes(&in, rx, sizeof(rx), &rx_len))
				bad_frame("client (the server left)");
			frames_in(rx, &rx_len, "client", reply_frame, &c);
		}
	}
	double seconds = (double)((end ? end : hsm_now_ns()) - start) / 1e9;
	long own = switches(RUSAGE_SELF) - before;
	int status;
	if (waitpid(child, &status, 0) < 0)
		die("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "frame-floor: the server failed\n");
		return 1;
	}
	printf("calls %ld seconds %.6f per_second %.0f switches_per_call %.2f\n", calls, seconds,
	       (double)calls / seconds, (double)(own + switches(RUSAGE_CHILDREN)) / (double)calls);
	return 0;
}
