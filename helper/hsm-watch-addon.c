/*
 * build/hsm_watch.node: what changed in a directory since it was last asked, read
 * synchronously (src/core/vmm/journal-watch.ts). hsmd lists its journal at every
 * `vm list`; instead of reading the directory and stat'ing every file each time, it
 * keeps the listing and asks an inotify descriptor, without blocking, whether anything
 * in the directory changed. inotify queues an event before the write, rename or unlink
 * that caused it returns, so a change another process finished before a request was sent
 * is always seen by that request (Node.js's fs.watch delivers events on a later turn of
 * the event loop, possibly after the request).
 *
 *   watch(path)    an inotify descriptor watching the directory `path` (not followed if a
 *                  link; not a directory: ENOTDIR), wrapped: closed when collected
 *   changes(w)     the names changed since the last call, [] when none; '' stands for the
 *                  directory itself (moved, removed, its mode changed) or for events lost
 *                  (the queue overflowed): the caller then reads everything again
 *   close(w)       close the descriptor now (changes() then throws EBADF)
 */
#define NAPI_VERSION 8
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <unistd.h>

#define HSM_ADDON "hsm_watch"
#include "hsm-napi.h"

struct watch {
	int fd;
};

/* Every event that can change what a file of the directory holds or which files it has. */
#define EVENTS                                                                             \
	(IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE |   \
	 IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_DONT_FOLLOW | IN_ONLYDIR)

static void finalize(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	struct watch *w = data;
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}

static struct watch *unwrap(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	void *data = NULL;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
	    napi_get_value_external(env, argv[0], &data) != napi_ok) {
		napi_throw_type_error(env, NULL, "hsm_watch: expected a watch");
		return NULL;
	}
	return data;
}

static napi_value watch(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	char path[4096];
	size_t len = 0;
	if (argc < 1 ||
	    napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &len) != napi_ok ||
	    len >= sizeof(path) - 1) {
		napi_throw_type_error(env, NULL, "hsm_watch: watch(path): expected a path");
		return NULL;
	}
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return throw_errno(env, errno, "inotify_init1");
	if (inotify_add_watch(fd, path, EVENTS) < 0) {
		int e = errno;
		close(fd);
		return throw_errno(env, e, path);
	}
	struct watch *w = malloc(sizeof(*w));
	if (!w) {
		close(fd);
		return throw_errno(env, ENOMEM, "hsm_watch");
	}
	w->fd = fd;
	napi_value result;
	if (napi_create_external(env, w, finalize, NULL, &result) != napi_ok) {
		finalize(env, w, NULL);
		napi_throw_error(env, NULL, "hsm_watch: cannot make an external");
		return NULL;
	}
	return result;
}

static napi_value changes(napi_env env, napi_callback_info info)
{
	struct watch *w = unwrap(env, info);
	if (!w)
		return NULL;
	if (w->fd < 0)
		return throw_errno(env, EBADF, "hsm_watch: changes");
	napi_value names;
	CHECK(napi_create_array(env, &names));
	uint32_t count = 0;
	/* room for many events with names up to NAME_MAX; the queue is read until empty */
	char buf[16 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return throw_errno(env, errno, "hsm_watch: read");
		}
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			/* the directory itself, or events lost: '' (read everything again) */
			const char *name = ev->len && !(ev->mask & IN_Q_OVERFLOW) ? ev->name : "";
			napi_value v;
			CHECK(napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &v));
			CHECK(napi_set_element(env, names, count++, v));
		}
	}
	return names;
}

static napi_value close_watch(napi_env env, napi_callback_info info)
{
	struct watch *w = unwrap(env, info);
	if (!w)
		return NULL;
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	return NULL;
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{"watch", NULL, watch, NULL, NULL, NULL, napi_default, NULL},
		{"changes", NULL, changes, NULL, NULL, NULL, napi_default, NULL},
		{"close", NULL, close_watch, NULL, NULL, NULL, napi_default, NULL},
	};
	CHECK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
