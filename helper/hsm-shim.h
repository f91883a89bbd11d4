/*
 * The device shim's extension of the hsm-helper frame protocol (helper/SHIM.md).
 *
 * libhsm-shim.so speaks the frames of hsm-protocol.h to a simulated platform (`hsmctl
 * sim serve --socket PATH`, `hsmctl daemon run --serve-sim PATH`): on its unix socket, or
 * after a RING offer the server took, in a shared-memory ring (hsm-ring.h). It
 * uses the helper's ops OPEN, CLOSE and IOCTL as they are, and these extra ops for what a
 * real process shares with the kernel by pointer or by fd. src/core/native/shim-protocol.ts
 * is the TypeScript twin; test/core/native/shim-protocol.test.ts compares the two.
 */
#ifndef HSM_SHIM_H
#define HSM_SHIM_H

/* Ops 0x0100..0x01ff belong to the shim. "no reply" ops carry id 0. */
enum hsm_shim_op {
	/* shim -> server, reply: u32 pid, u32 0, then the program name (<= 255 bytes). */
	HSM_SHIM_OP_HELLO = 0x100,
	/* shim -> server, no reply: u32 region, u32 role, u64 address, u64 length. */
	HSM_SHIM_OP_MIRROR = 0x101,
	/* both ways, no reply: u32 region, u32 count, count x {u32 offset, u32 length, bytes}. */
	HSM_SHIM_OP_DIFF = 0x102,
	/* shim -> server, no reply: i32 fd, u32 kind, u64 id, u64 eventfd count. */
	HSM_SHIM_OP_FD = 0x103,
	/* shim -> server, reply: u64 eventfd id, u64 value (a write(2) of the process). */
	HSM_SHIM_OP_EFD_WRITE = 0x104,
	/* shim -> server, no reply: u64 eventfd id (the process read, and so reset, it). */
	HSM_SHIM_OP_EFD_READ = 0x105,
	/* shim -> server, no reply: u64 eventfd id (the process closed its last fd of it). */
	HSM_SHIM_OP_EFD_RELEASE = 0x106,
	/* shim -> server, no reply, empty: a signal arrived during a blocking ioctl. */
	HSM_SHIM_OP_INTERRUPT = 0x107,
	/* server -> shim, no reply: u64 eventfd id, u64 value to add (an ioeventfd signal). */
	HSM_SHIM_OP_SIGNAL = 0x108,
	/* server -> shim, the shim replies with the same op and id: u32 mode, u32 0. */
	HSM_SHIM_OP_SYNC = 0x109,
	/*
	 * shim -> server, right after HELLO, reply result 0 or refused: u32 ring size, u32 0,
	 * the path of a ring file (hsm-ring.h). Accepted: every later frame, both ways, goes
	 * on the ring, and the socket carries only doorbell bytes.
	 */
	HSM_SHIM_OP_RING = 0x10a,
	/*
	 * shim -> server, reply result 0 or -1 with an errno: u32 region, u32 role (RAM),
	 * u64 address, u64 length, u64 file offset of `address`, u32 the file's page size,
	 * u32 0, then the path of the file (/proc/PID/fd/N). A RAM range the process maps
	 * MAP_SHARED from that file: the server maps the same file, so both share the bytes.
	 */
	HSM_SHIM_OP_SHARE = 0x10b,
	/* shim -> server, reply: i32 HSM fd (the server's), u32 0, the path of a lane page's
	 * file (hsm-lane.h). Result 0: the fd's VM is served through the lane. */
	HSM_SHIM_OP_LANE = 0x10c,
};

/* Memory the kernel pins (SHIM.md, "Memory the kernel pins"). */
enum hsm_shim_role {
	HSM_SHIM_ROLE_IOREQ = 1,   /* the ioreq page of CREATE_VM (§2.2): synced at every call */
	HSM_SHIM_ROLE_RAM = 2,     /* a RAM segment (§3.4 B): shared (SHARE), never mirrored */
	HSM_SHIM_ROLE_MONITOR = 3, /* the interrupt-monitor page (§7.3): synced at every call */
};

/* What an fd inside an IOEVENTFD/IRQFD argument is, in the shimmed process. */
enum hsm_shim_fd_kind {
	HSM_SHIM_FD_NOT_OPEN = 0,
	HSM_SHIM_FD_EVENTFD = 1, /* id: the shim's name for the eventfd object */
	HSM_SHIM_FD_HSM = 2,     /* id: the server's fd behind this HSM fd */
	HSM_SHIM_FD_OTHER = 3,   /* an open file that is not an eventfd */
};

/* SYNC modes: 1 = send your changed bytes (DIFF frames) first, then reply; 0 = reply. */
#define HSM_SHIM_SYNC_ACK 0u
#define HSM_SHIM_SYNC_PULL 1u

#define HSM_SHIM_HELLO_FIXED_SIZE 8u
#define HSM_SHIM_MIRROR_SIZE 24u
#define HSM_SHIM_DIFF_FIXED_SIZE 8u
#define HSM_SHIM_RANGE_HEADER_SIZE 8u
#define HSM_SHIM_FD_SIZE 24u
#define HSM_SHIM_EFD_WRITE_SIZE 16u
#define HSM_SHIM_EFD_ID_SIZE 8u
#define HSM_SHIM_SIGNAL_SIZE 16u
#define HSM_SHIM_SYNC_SIZE 8u
#define HSM_SHIM_RING_FIXED_SIZE 8u
#define HSM_SHIM_SHARE_FIXED_SIZE 40u
#define HSM_SHIM_LANE_FIXED_SIZE 8u
#define HSM_SHIM_MAX_PROGRAM 255u

#endif /* HSM_SHIM_H */
