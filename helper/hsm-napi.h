/*
 * What the Node-API addons (hsm-ring-addon.c, hsm-memory-addon.c, hsm-kvm-addon.c) share:
 * a failed napi_* call thrown as an Error, and an errno thrown as an Error carrying
 * `.errno`. Define HSM_ADDON (the addon's name, a string literal) before including it.
 */
#ifndef HSM_NAPI_H
#define HSM_NAPI_H

#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define CHECK(call)                                                                        \
	do {                                                                               \
		if ((call) != napi_ok) {                                                   \
			napi_throw_error(env, NULL, HSM_ADDON ": " #call " failed");      \
			return NULL;                                                       \
		}                                                                          \
	} while (0)

/* Throws Error("WHAT: strerror(e)") with .errno = e; returns NULL for `return throw_errno(...)`. */
static inline napi_value throw_errno(napi_env env, int e, const char *what)
{
	char message[512];
	/* a path as long as PATH_MAX is cut, not the reason */
	snprintf(message, sizeof(message), "%.400s: %s", what, strerror(e));
	napi_value msg, error, code;
	napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
	napi_create_error(env, NULL, msg, &error);
	napi_create_int32(env, e, &code);
	napi_set_named_property(env, error, "errno", code);
	napi_throw(env, error);
	return NULL;
}

/* The bytes a Uint8Array argument covers, and how many (NULL for anything else). */
static inline uint8_t *hsm_uint8_array(napi_env env, napi_value v, size_t *length)
{
	napi_typedarray_type type;
	size_t offset;
	void *data;
	napi_value buffer;
	if (napi_get_typedarray_info(env, v, &type, length, &data, &buffer, &offset) != napi_ok ||
	    type != napi_uint8_array)
		return NULL;
	return data;
}

#endif
