/*
 * build/hsm_ring.node: the server side of the shim's shared-memory ring (hsm-ring.h,
 * SHIM.md "The ring") for Node.js, which cannot map a shared file or poll memory by
 * itself. A Node-API module, so it loads in any Node.js of the same ABI version.
 * src/core/native/ring.ts wraps it; nothing else uses it.
 *
 *   open(path, size)   map a ring file the shim made (a sealed memfd, named by its
 *                      /proc/PID/fd/N); a handle (throws with .errno)
 *   close(h)           unmap (also done when the handle is collected)
 *   readInto(h, into)  copy what the shim has sent into a Uint8Array: how many bytes
 *   write(h, bytes, offset)  copy bytes[offset..] in as far as they fit: how many did
 *   peerIdle(h)        is the shim not polling (so it needs the doorbell)?
 *   wake(h)            after frames went in: 0 the shim polls, 1 a caller asleep on the
 *                      ring's bell was woken (a futex), 2 the socket doorbell is needed
 *   goIdle(h)          stop polling: false if input came meanwhile (still polling)
 *   busy(h)            polling again: the shim needs no doorbell
 *   wait(handles, ns)  spin until one of the rings has input, at most ns: its index, or -1
 *   createRingFile(size)  a ring file as the shim makes it, an fd of this process: for
 *                      tests and tools that play the shim's side
 *
 * The peer is not trusted: its index is checked at every read and write (EPROTO when it
 * could not be), the file must be sealed against shrinking, and our own indices are
 * never read back from the file.
 */
#define NAPI_VERSION 8
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/futex.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hsm-ring.h"

#define HSM_ADDON "hsm_ring"
#include "hsm-napi.h"

struct ring {
	struct hsm_ring_shared *shared;
	size_t length;
	struct hsm_ring_end up;   /* we consume */
	struct hsm_ring_end down; /* we produce */
};

static void unmap(struct ring *r)
{
	if (r->shared) {
		munmap(r->shared, r->length);
		r->shared = NULL;
	}
}

static void finalize(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	unmap(data);
	free(data);
}

/* The ring behind a handle; NULL (with an exception) when it is not one, or closed. */
static struct ring *ring_of(napi_env env, napi_value v)
{
	napi_valuetype t;
	void *data = NULL;
	if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
	    napi_get_value_external(env, v, &data) != napi_ok || !data) {
		napi_throw_type_error(env, NULL, "hsm_ring: not a ring handle");
		return NULL;
	}
	struct ring *r = data;
	if (!r->shared) {
		napi_throw_error(env, NULL, "hsm_ring: the ring is closed");
		return NULL;
	}
	return r;
}

static napi_value args(napi_env env, napi_callback_info info, size_t want, napi_value *argv)
{
	size_t argc = want;
	CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < want) {
		napi_throw_type_error(env, NULL, "hsm_ring: too few arguments");
		return NULL;
	}
	return argv[0];
}

static napi_value boolean(napi_env env, int b)
{
	napi_value v;
	CHECK(napi_get_boolean(env, b != 0, &v));
	return v;
}

static napi_value ring_open(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	if (!args(env, info, 2, argv))
		return NULL;
	char path[4096];
	size_t len;
	uint32_t size;
	if (napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &len) != napi_ok ||
	    napi_get_value_uint32(env, argv[1], &size) != napi_ok) {
		napi_throw_type_error(env, NULL, "hsm_ring.open(path: string, size: number)");
		return NULL;
	}
	if (!hsm_ring_size_ok(size))
		return throw_errno(env, EINVAL, "ring size");
	/* O_NONBLOCK: a FIFO named here must not hang the server. */
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return throw_errno(env, errno, "open");
	struct stat st;
	size_t length = hsm_ring_file_size(size);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size != length) {
		close(fd);
		return throw_errno(env, EINVAL, "ring file size");
	}
	/* Shrunk under our mapping, it would kill us with SIGBUS. */
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
		close(fd);
		return throw_errno(env, EPERM, "ring file not sealed against shrinking (F_SEAL_SHRINK)");
	}
	void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int e = errno;
	close(fd);
	if (p == MAP_FAILED)
		return throw_errno(env, e, "mmap");
	struct hsm_ring_shared *s = p;
	if (s->magic != HSM_RING_MAGIC || s->version != HSM_RING_VERSION || s->size != size) {
		munmap(p, length);
		return throw_errno(env, EPROTO, "ring header");
	}
	struct ring *r = calloc(1, sizeof(*r));
	if (!r) {
		munmap(p, length);
		return throw_errno(env, ENOMEM, "ring");
	}
	r->shared = s;
	r->length = length;
	r->up = hsm_ring_up(s, size, 0);
	r->down = hsm_ring_down(s, size, 1);
	napi_value handle;
	if (napi_create_external(env, r, finalize, NULL, &handle) != napi_ok) {
		unmap(r);
		free(r);
		napi_throw_error(env, NULL, "hsm_ring: napi_create_external failed");
		return NULL;
	}
	return handle;
}

static napi_value ring_close(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	void *data = NULL;
	if (!args(env, info, 1, argv))
		return NULL;
	if (napi_get_value_external(env, argv[0], &data) == napi_ok && data)
		unmap(data);
	return NULL;
}

static napi_value ring_read_into(napi_env env, napi_callback_info info)
{
	napi_value argv[2], out;
	if (!args(env, info, 2, argv))
		return NULL;
	struct ring *r = ring_of(env, argv[0]);
	if (!r)
		return NULL;
	size_t length;
	uint8_t *into = hsm_uint8_array(env, argv[1], &length);
	if (!into && length != 0) {
		napi_throw_type_error(env, NULL, "hsm_ring.readInto(ring, into: Uint8Array)");
		return NULL;
	}
	int64_t n = into ? hsm_ring_take(&r->up, into,
					 length > UINT32_MAX ? UINT32_MAX : (uint32_t)length)
			 : 0;
	if (n < 0)
		return throw_errno(env, EPROTO, "the peer's ring tail");
	CHECK(napi_create_uint32(env, (uint32_t)n, &out));
	return out;
}

static napi_value ring_write(napi_env env, napi_callback_info info)
{
	napi_value argv[3], out;
	if (!args(env, info, 3, argv))
		return NULL;
	struct ring *r = ring_of(env, argv[0]);
	if (!r)
		return NULL;
	size_t length;
	uint32_t from;
	const uint8_t *data = hsm_uint8_array(env, argv[1], &length);
	if ((!data && length != 0) || napi_get_value_uint32(env, argv[2], &from) != napi_ok ||
	    from > length) {
		napi_throw_type_error(env, NULL, "hsm_ring.write(ring, bytes: Uint8Array, offset)");
		return NULL;
	}
	size_t left = length - from;
	int64_t n = hsm_ring_put(&r->down, data + from, left > UINT32_MAX ? UINT32_MAX : (uint32_t)left);
	if (n < 0)
		return throw_errno(env, EPROTO, "the peer's ring head");
	CHECK(napi_create_uint32(env, (uint32_t)n, &out));
	return out;
}

static napi_value ring_peer_idle(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	if (!args(env, info, 1, argv))
		return NULL;
	struct ring *r = ring_of(env, argv[0]);
	return r ? boolean(env, hsm_ring_peer_idle(&r->shared->shim_idle)) : NULL;
}

static napi_value ring_wake(napi_env env, napi_callback_info info)
{
	napi_value argv[1], out;
	if (!args(env, info, 1, argv))
		return NULL;
	struct ring *r = ring_of(env, argv[0]);
	if (!r)
		return NULL;
	CHECK(napi_create_int32(env, hsm_ring_wake_shim(r->shared), &out));
	return out;
}

static napi_value ring_go_idle(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	if (!args(env, info, 1, argv))
		return NULL;
	struct ring *r = ring_of(env, argv[0]);
	return r ? boolean(env, hsm_ring_go_idle(&r->shared->server_idle, &r->up)) : NULL;
}

static napi_value ring_busy(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	if (!args(env, info, 1, argv))
		return NULL;
	struct ring *r = ring_of(env, argv[0]);
	if (r)
		atomic_store_explicit(&r->shared->server_idle, 0, memory_order_seq_cst);
	return NULL;
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

#define MAX_WAIT_RINGS 256

static napi_value ring_wait(napi_env env, napi_callback_info info)
{
	napi_value argv[2], out;
	if (!args(env, info, 2, argv))
		return NULL;
	uint32_t count;
	double ns;
	if (napi_get_array_length(env, argv[0], &count) != napi_ok ||
	    napi_get_value_double(env, argv[1], &ns) != napi_ok) {
		napi_throw_type_error(env, NULL, "hsm_ring.wait(rings: handle[], ns: number)");
		return NULL;
	}
	if (count > MAX_WAIT_RINGS)
		count = MAX_WAIT_RINGS;
	struct ring *rings[MAX_WAIT_RINGS];
	for (uint32_t i = 0; i < count; i++) {
		napi_value v;
		CHECK(napi_get_element(env, argv[0], i, &v));
		if (!(rings[i] = ring_of(env, v)))
			return NULL;
	}
	int32_t found = -1;
	uint64_t deadline = now_ns() + (ns > 0 ? (uint64_t)ns : 0);
	for (unsigned spins = 0;; spins++) {
		for (uint32_t i = 0; i < count && found < 0; i++)
			if (hsm_ring_has_input(&rings[i]->up))
				found = (int32_t)i;
		if (found >= 0)
			break;
		/* The clock costs more than a look at the rings: read it every few rounds. */
		if ((spins & 15) == 0 && now_ns() >= deadline)
			break;
		hsm_ring_relax();
	}
	CHECK(napi_create_int32(env, found, &out));
	return out;
}

static napi_value ring_create_file(napi_env env, napi_callback_info info)
{
	napi_value argv[1], out;
	if (!args(env, info, 1, argv))
		return NULL;
	uint32_t size;
	if (napi_get_value_uint32(env, argv[0], &size) != napi_ok || !hsm_ring_size_ok(size))
		return throw_errno(env, EINVAL, "ring size");
	int fd = memfd_create("hsm-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return throw_errno(env, errno, "memfd_create");
	struct hsm_ring_shared header = { .magic = HSM_RING_MAGIC,
					  .version = HSM_RING_VERSION,
					  .size = size };
	atomic_store(&header.server_idle, 1);
	atomic_store(&header.shim_idle, 1);
	if (ftruncate(fd, (off_t)hsm_ring_file_size(size)) < 0 ||
	    pwrite(fd, &header, sizeof(header), 0) != (ssize_t)sizeof(header) ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		int e = errno;
		close(fd);
		return throw_errno(env, e, "ring file");
	}
	CHECK(napi_create_int32(env, fd, &out));
	return out;
}

static napi_value init(napi_env env, napi_value exports)
{
	static const struct {
		const char *name;
		napi_callback fn;
	} fns[] = {
		{ "open", ring_open },		{ "close", ring_close },
		{ "readInto", ring_read_into },		{ "write", ring_write },
		{ "peerIdle", ring_peer_idle }, { "goIdle", ring_go_idle },
		{ "wake", ring_wake },
		{ "busy", ring_busy },		{ "wait", ring_wait },
		{ "createRingFile", ring_create_file },
	};
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		napi_value f;
		CHECK(napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f));
		CHECK(napi_set_named_property(env, exports, fns[i].name, f));
	}
	napi_value v;
	CHECK(napi_create_uint32(env, HSM_RING_DEFAULT_SIZE, &v));
	CHECK(napi_set_named_property(env, exports, "defaultSize", v));
	CHECK(napi_create_uint32(env, HSM_RING_DATA_OFFSET, &v));
	CHECK(napi_set_named_property(env, exports, "dataOffset", v));
	return exports;
}

NAPI_MODULE(hsm_ring, init)
