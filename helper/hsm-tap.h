/*
 * The tap's record stream (helper/TAP.md): what libhsm-tap.so sends hsmd on its unix
 * socket. A byte stream of records, each 8-byte aligned, little-endian, starting with one
 * HELLO. Nothing is decoded here: an IOCTL record carries the raw argument bytes and hsmd
 * decodes them with the project's ABI tables (src/core/abi). src/core/native/tap-protocol.ts
 * is the TypeScript twin; test/core/native/tap-protocol.test.ts compares the two.
 */
#ifndef HSM_TAP_H
#define HSM_TAP_H

/* Every record starts with: u16 type, u16 length (the whole record, a multiple of 8), u32 tid. */
enum hsm_tap_record {
	/*
	 * First, once: u32 magic, u32 version, u32 pid, u32 ring bytes, u64 clock (CLOCK_MONOTONIC
	 * ns when sent), u64 records dropped before this connection, char program[16] (NUL-padded).
	 */
	HSM_TAP_HELLO = 1,
	/*
	 * One HSM ioctl: u64 start (ns), u32 duration (ns), i32 fd, u32 request, i32 result,
	 * i32 errno (0 on success), u16 argument bytes, u8 flags, u8 0, u64 the argument as
	 * passed (a pointer or a value), then the argument bytes, zero-padded to 8.
	 */
	HSM_TAP_IOCTL = 2,
	/*
	 * One I/O request the program completed: u64 when ATTACH returned it (ns, 0 when the
	 * program did not ATTACH: polling), u64 NOTIFY's start (ns), u32 NOTIFY's duration
	 * (ns), i32 fd, u16 vmid, u16 vcpu, u32 flags, u64 the 8 bytes at the request's value
	 * offset (reqs + 24 for every type) when NOTIFY was called, then the slot's first 128
	 * bytes (type ... reqs) as ATTACH returned it.
	 */
	HSM_TAP_IOREQ = 3,
	/* Totals so far: u64 ioctls, u64 I/O requests, u64 records dropped (the ring was full). */
	HSM_TAP_TOTALS = 4,
};

#define HSM_TAP_MAGIC 0x50415448u /* "HTAP" */
#define HSM_TAP_VERSION 1u

#define HSM_TAP_HEADER_SIZE 8u
#define HSM_TAP_HELLO_SIZE 56u
#define HSM_TAP_IOCTL_FIXED_SIZE 48u
#define HSM_TAP_IOREQ_SIZE 176u
#define HSM_TAP_TOTALS_SIZE 32u
/* Bytes of a slot an IOREQ record carries: type, completion_polling, reserved0, reqs. */
#define HSM_TAP_SLOT_BYTES 128u
/* Offset of the value in every member of the reqs union (pio, mmio, pci: §4.1). */
#define HSM_TAP_VALUE_OFFSET 88u
/* An argument longer than this is cut (the largest, acrn_vcpu_regs, is 296 bytes). */
#define HSM_TAP_MAX_ARG 512u
#define HSM_TAP_PROGRAM_SIZE 16u

/* IOCTL flags. */
#define HSM_TAP_ARG_UNREADABLE 1u /* fewer argument bytes than the kernel reads: a bad pointer */
/* IOREQ flags. */
#define HSM_TAP_SEEN_AT_ATTACH 1u /* the slot was PROCESSING when ATTACH returned */

#endif /* HSM_TAP_H */
