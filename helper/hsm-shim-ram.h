/*
 * A shimmed program's RAM as a file the server can map (hsm-shim-ram.c, SHIM.md "Memory
 * the kernel pins"). Compiled into libhsm-shim.so with hidden visibility.
 */
#ifndef HSM_SHIM_RAM_H
#define HSM_SHIM_RAM_H

#include <stdint.h>

struct ram_file {
	/* An fd of the shim's (at or above PRIVATE_FD_MIN) naming the file. */
	int fd;
	/* The fd is a memfd the shim made for converted memory: keep it while the range lives. */
	int owned;
	/* The file, as /proc/self/maps and fstat name it. */
	uint64_t dev, ino;
	/* Where the range's first byte is in the file. */
	uint64_t offset;
	/* The file's page size: a hugetlbfs file maps in huge pages only. */
	uint32_t page_size;
};

/*
 * Make [address, address + length) (page-aligned, mapped writable) a MAP_SHARED mapping of
 * one file, and name that file: a shared file mapping stays as it is; anything else
 * (private anonymous memory, a heap buffer) is turned into a memfd mapped over the same
 * addresses with the same contents. 0 with `out` filled, or -errno.
 */
int ram_share_file(uint64_t address, uint64_t length, int private_fd_min, struct ram_file *out);

/* Close the fd of `f` unless the shim keeps it. */
void ram_file_release(struct ram_file *f);

#endif /* HSM_SHIM_RAM_H */
