/*
 * The framed binary protocol between hsmctl and hsm-helper (helper/PROTOCOL.md).
 *
 * Header-only on purpose: hsm-helper speaks it on stdin/stdout, and the device shim
 * (hsm-shim.c, SHIM.md) forwards open/ioctl/close over a unix socket with the very same
 * frames. src/core/native/protocol.ts is the TypeScript twin of this file; the
 * constants must stay equal (test/core/native/protocol.test.ts compares them).
 *
 * Every integer is little-endian; the accessors below read and write bytes one at a
 * time so the frames do not depend on the host's byte order or alignment.
 */
#ifndef HSM_PROTOCOL_H
#define HSM_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

/* "HSMP" as bytes on the wire. */
#define HSMP_MAGIC 0x504d5348u
#define HSMP_VERSION 1u
#define HSMP_HEADER_SIZE 32u
/* The largest payload either side sends or accepts (bigger frames are refused). */
#define HSMP_MAX_PAYLOAD (1u << 20)
/* Longest path the open op carries (PATH_MAX - 1). */
#define HSMP_MAX_PATH 4095u

/* Header field offsets. */
#define HSMP_OFF_MAGIC 0
#define HSMP_OFF_VERSION 4
#define HSMP_OFF_FLAGS 5
#define HSMP_OFF_OP 6
#define HSMP_OFF_ID 8
#define HSMP_OFF_LENGTH 12
#define HSMP_OFF_RESULT 16
#define HSMP_OFF_ERRNO 24
#define HSMP_OFF_CHECK 28

enum hsmp_op {
	HSMP_OP_HELLO = 0,
	HSMP_OP_OPEN = 1,
	HSMP_OP_CLOSE = 2,
	HSMP_OP_IOCTL = 3,
	HSMP_OP_MMAP = 4,
	HSMP_OP_READ = 5,
	HSMP_OP_WRITE = 6,
	HSMP_OP_EVENTFD = 7,
	HSMP_OP_EVENTFD_READ = 8,
	HSMP_OP_EVENTFD_WRITE = 9,
	HSMP_OP_MUNMAP = 10,
	/* Only in the test build (-DHSM_HELPER_TESTING); unknown op elsewhere. */
	HSMP_OP_TEST_WAIT = 0x7f00,
	/* Unsolicited, id 0: the input stream was not a frame (bad magic or check). */
	HSMP_OP_PROTOCOL_ERROR = 0xffff,
};

/* Reply flag: the helper refused the frame itself; the payload is a UTF-8 message. */
#define HSMP_FLAG_REFUSED 0x01u

/* How an ioctl's argument travels (the `kind` field of an ioctl request). */
enum hsmp_arg {
	HSMP_ARG_NONE = 0,    /* the kernel ignores the argument */
	HSMP_ARG_VALUE = 1,   /* the u64 is the argument (SET_IRQLINE, VM_INTR_MONITOR) */
	HSMP_ARG_BUFFER = 2,  /* the bytes that follow are what the pointer points at */
	HSMP_ARG_POINTER = 3, /* the u64 is an address inside the helper's own mappings */
};

/* Fixed part of each request payload, in bytes (PROTOCOL.md, "Payloads"). */
#define HSMP_CLOSE_SIZE 8u
#define HSMP_IOCTL_FIXED_SIZE 24u
#define HSMP_MMAP_SIZE 8u
#define HSMP_READ_SIZE 16u
#define HSMP_WRITE_FIXED_SIZE 8u
#define HSMP_EVENTFD_SIZE 8u
#define HSMP_EVENTFD_READ_SIZE 8u
#define HSMP_EVENTFD_WRITE_SIZE 16u
#define HSMP_MUNMAP_SIZE 16u
#define HSMP_TEST_WAIT_SIZE 8u
#define HSMP_HELLO_FIXED_SIZE 16u

/* HELLO reply feature bits. */
#define HSMP_FEATURE_TESTING 0x01u

struct hsmp_header {
	uint8_t version;
	uint8_t flags;
	uint16_t op;
	uint32_t id;
	uint32_t length;
	int64_t result;
	int32_t error;
};

static inline uint16_t hsmp_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t hsmp_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static inline uint64_t hsmp_get64(const uint8_t *p)
{
	return (uint64_t)hsmp_get32(p) | ((uint64_t)hsmp_get32(p + 4) << 32);
}

static inline void hsmp_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void hsmp_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void hsmp_put64(uint8_t *p, uint64_t v)
{
	hsmp_put32(p, (uint32_t)v);
	hsmp_put32(p + 4, (uint32_t)(v >> 32));
}

/*
 * FNV-1a over header bytes 0..27. It lets a reader tell a real header from payload
 * bytes that happen to contain the magic, so resynchronising after garbage is safe.
 */
static inline uint32_t hsmp_header_check(const uint8_t *h)
{
	uint32_t x = 0x811c9dc5u;
	for (size_t i = 0; i < HSMP_OFF_CHECK; i++) {
		x ^= h[i];
		x *= 0x01000193u;
	}
	return x;
}

static inline void hsmp_encode_header(uint8_t *b, const struct hsmp_header *h)
{
	hsmp_put32(b + HSMP_OFF_MAGIC, HSMP_MAGIC);
	b[HSMP_OFF_VERSION] = h->version;
	b[HSMP_OFF_FLAGS] = h->flags;
	hsmp_put16(b + HSMP_OFF_OP, h->op);
	hsmp_put32(b + HSMP_OFF_ID, h->id);
	hsmp_put32(b + HSMP_OFF_LENGTH, h->length);
	hsmp_put64(b + HSMP_OFF_RESULT, (uint64_t)h->result);
	hsmp_put32(b + HSMP_OFF_ERRNO, (uint32_t)h->error);
	hsmp_put32(b + HSMP_OFF_CHECK, hsmp_header_check(b));
}

enum hsmp_header_status {
	HSMP_HEADER_OK = 0,
	HSMP_HEADER_BAD_MAGIC = -1,
	HSMP_HEADER_BAD_CHECK = -2,
};

/* Decode HSMP_HEADER_SIZE bytes; the version is left for the caller to judge. */
static inline enum hsmp_header_status hsmp_decode_header(const uint8_t *b, struct hsmp_header *h)
{
	if (hsmp_get32(b + HSMP_OFF_MAGIC) != HSMP_MAGIC)
		return HSMP_HEADER_BAD_MAGIC;
	if (hsmp_get32(b + HSMP_OFF_CHECK) != hsmp_header_check(b))
		return HSMP_HEADER_BAD_CHECK;
	h->version = b[HSMP_OFF_VERSION];
	h->flags = b[HSMP_OFF_FLAGS];
	h->op = hsmp_get16(b + HSMP_OFF_OP);
	h->id = hsmp_get32(b + HSMP_OFF_ID);
	h->length = hsmp_get32(b + HSMP_OFF_LENGTH);
	h->result = (int64_t)hsmp_get64(b + HSMP_OFF_RESULT);
	h->error = (int32_t)hsmp_get32(b + HSMP_OFF_ERRNO);
	return HSMP_HEADER_OK;
}

#endif /* HSM_PROTOCOL_H */
