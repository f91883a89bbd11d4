/*
 * build/hsm_memory.node: real shared memory for the simulation's RAM (issue 10, ARCHITECTURE
 * "What lives inside the simulation"). A process mapping of the simulated Service VM is a
 * MAP_SHARED mapping of a memfd (or of a file a shimmed program handed over), seen from
 * JavaScript as an external ArrayBuffer, so that KVM (KVM_SET_USER_MEMORY_REGION takes
 * this process's virtual address), the model, hsmd and a shimmed program all read and
 * write the same bytes. Node.js cannot map files itself.
 *
 *   memfd(size, name)     a new zeroed memfd of `size` bytes, mapped shared:
 *                         { buffer, address, fd } (fd stays open, close-on-exec, so that
 *                         the file can be named as /proc/PID/fd/N)
 *   mapFile(path, offset, length, writable)
 *                         map `length` bytes of a regular file (a memfd, hugetlbfs file
 *                         or any shared file) from `offset`: { buffer, address }. The file
 *                         must hold the whole range (no SIGBUS later) and not be a link
 *                         other than /proc's fd links.
 *   discard(buffer, offset, length)
 *                         give the pages back to the host (MADV_REMOVE): they read as
 *                         zero afterwards. The mapping stays valid.
 *
 * A mapping lives as long as its ArrayBuffer: the finalizer unmaps it (and closes a
 * memfd's fd), so no JavaScript view can ever point into unmapped memory.
 */
#define NAPI_VERSION 8
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HSM_ADDON "hsm_memory"
#include "hsm-napi.h"

struct mapping {
	void *base;
	size_t length;
	int fd; /* -1 when the file was closed after mapping */
};

static void finalize(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)data;
	struct mapping *m = hint;
	munmap(m->base, m->length);
	if (m->fd >= 0)
		close(m->fd);
	free(m);
}

/* { buffer, address[, fd] } for a fresh mapping; on failure the mapping is undone. */
static napi_value wrap(napi_env env, void *base, size_t length, int fd, int with_fd)
{
	struct mapping *m = malloc(sizeof(*m));
	if (!m) {
		munmap(base, length);
		if (fd >= 0)
			close(fd);
		return throw_errno(env, ENOMEM, "hsm_memory");
	}
	m->base = base;
	m->length = length;
	m->fd = fd;
	napi_value result, buffer, address;
	if (napi_create_external_arraybuffer(env, base, length, finalize, m, &buffer) != napi_ok) {
		finalize(env, NULL, m);
		napi_throw_error(env, NULL, "hsm_memory: cannot make an external ArrayBuffer");
		return NULL;
	}
	CHECK(napi_create_object(env, &result));
	CHECK(napi_set_named_property(env, result, "buffer", buffer));
	CHECK(napi_create_bigint_uint64(env, (uint64_t)(uintptr_t)base, &address));
	CHECK(napi_set_named_property(env, result, "address", address));
	if (with_fd) {
		napi_value fdv;
		CHECK(napi_create_int32(env, fd, &fdv));
		CHECK(napi_set_named_property(env, result, "fd", fdv));
	}
	return result;
}

static int get_size(napi_env env, napi_value v, size_t *out)
{
	double d;
	if (napi_get_value_double(env, v, &d) != napi_ok || d < 0 || d > (double)(1ULL << 52) ||
	    d != (double)(uint64_t)d)
		return -1;
	*out = (size_t)d;
	return 0;
}

static napi_value memfd(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	size_t size;
	if (argc < 1 || get_size(env, argv[0], &size) || size == 0 || size % 4096) {
		napi_throw_range_error(env, NULL, "hsm_memory.memfd: size must be a page multiple");
		return NULL;
	}
	char name[64] = "hsmctl-ram";
	if (argc > 1) {
		size_t n;
		napi_get_value_string_utf8(env, argv[1], name, sizeof(name), &n);
	}
	int fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return throw_errno(env, errno, "memfd_create");
	if (ftruncate(fd, (off_t)size) < 0) {
		int e = errno;
		close(fd);
		return throw_errno(env, e, "ftruncate of the RAM memfd");
	}
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		int e = errno;
		close(fd);
		return throw_errno(env, e, "mmap of the RAM memfd");
	}
	return wrap(env, base, size, fd, 1);
}

static napi_value map_file(napi_env env, napi_callback_info info)
{
	size_t argc = 5;
	napi_value argv[5];
	CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	char path[4096];
	size_t n, offset, length;
	bool writable = true, sealed = false;
	if (argc < 3 ||
	    napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &n) != napi_ok ||
	    n == 0 || n >= sizeof(path) - 1 || get_size(env, argv[1], &offset) ||
	    get_size(env, argv[2], &length) || length == 0 || offset % 4096) {
		napi_throw_type_error(env, NULL,
				      "hsm_memory.mapFile(path, offset, length, writable, sealed): bad arguments");
		return NULL;
	}
	if (argc > 3)
		napi_get_value_bool(env, argv[3], &writable);
	if (argc > 4)
		napi_get_value_bool(env, argv[4], &sealed);
	/* /proc/PID/fd/N is a magic link that must be followed; any other link is refused. */
	int follow = strncmp(path, "/proc/", 6) == 0;
	int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK |
				    (follow ? 0 : O_NOFOLLOW));
	if (fd < 0)
		return throw_errno(env, errno, path);
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return throw_errno(env, S_ISREG(st.st_mode) ? errno : EINVAL, path);
	}
	if ((uint64_t)st.st_size < (uint64_t)offset + length) {
		close(fd);
		return throw_errno(env, EINVAL, "the file is shorter than the range to map");
	}
	/* `sealed`: the other process could shrink it under our mapping (SIGBUS here). */
	int seals = sealed ? fcntl(fd, F_GET_SEALS) : F_SEAL_SHRINK;
	if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
		close(fd);
		return throw_errno(env, EPERM, "the file is not sealed against shrinking (F_SEAL_SHRINK)");
	}
	void *base = mmap(NULL, length, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd,
			  (off_t)offset);
	int e = errno;
	close(fd);
	if (base == MAP_FAILED)
		return throw_errno(env, e, "mmap");
	return wrap(env, base, length, -1, 0);
}

static napi_value discard(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	void *data;
	size_t byte_length, offset, length;
	if (argc < 3 || napi_get_arraybuffer_info(env, argv[0], &data, &byte_length) != napi_ok ||
	    get_size(env, argv[1], &offset) || get_size(env, argv[2], &length) ||
	    offset % 4096 || length % 4096 || offset + length > byte_length) {
		napi_throw_type_error(env, NULL,
				      "hsm_memory.discard(buffer, offset, length): bad arguments");
		return NULL;
	}
	if (length && madvise((char *)data + offset, length, MADV_REMOVE) < 0)
		return throw_errno(env, errno, "madvise(MADV_REMOVE)");
	return NULL;
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{"memfd", NULL, memfd, NULL, NULL, NULL, napi_default, NULL},
		{"mapFile", NULL, map_file, NULL, NULL, NULL, napi_default, NULL},
		{"discard", NULL, discard, NULL, NULL, NULL, napi_default, NULL},
	};
	CHECK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
