/*
 * A shimmed program's RAM segment as a file the server maps too (SHIM.md, "Memory the
 * kernel pins"). With the kernel, SET_MEMSEG pins the program's pages and the guest uses
 * those very pages (§3.4 B); here the server maps the same file into the simulated
 * process, so the program, hsmd and the guest share every byte, with no copy:
 *
 *  - a range the program maps MAP_SHARED from one file (acrn-dm's hugetlb memfd) is that
 *    file, at the offset the mapping has, named by an fd of the program that holds it or
 *    else by /proc/self/map_files (root);
 *  - anything else (private anonymous memory: vm-sample's posix_memalign buffer, the
 *    heap) is turned into a shared mapping first, in place: a memfd gets the range's
 *    contents and is mapped over the same addresses (MAP_FIXED), so pointers into it stay
 *    valid and the program sees no change. Pages that read as zero are not copied (the
 *    memfd reads zero there), so an untouched buffer costs no memory.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "hsm-shim-ram.h"

#define PAGE 4096ull
/* A range over more mappings than this is turned into one memfd. */
#define MAX_VMAS 64

struct vma {
	uint64_t start, end, offset, ino;
	unsigned major, minor;
	char perms[5];
};

static int sys_close(int fd)
{
	return (int)syscall(SYS_close, fd);
}

/* fd moved out of the program's way (as the shim's other fds), close-on-exec. */
static int high(int fd, int min)
{
	int h = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, min);
	sys_close(fd);
	return h;
}

/* The mappings over [address, end), in order; -1 when a hole or too many. */
static int vmas_over(uint64_t address, uint64_t end, struct vma *out)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return -1;
	char line[4352];
	int n = 0;
	uint64_t covered = address;
	while (covered < end && fgets(line, sizeof(line), f)) {
		struct vma v = { 0 };
		if (sscanf(line, "%lx-%lx %4s %lx %x:%x %lu", &v.start, &v.end, v.perms, &v.offset,
			   &v.major, &v.minor, &v.ino) != 7)
			continue;
		if (v.end <= covered)
			continue;
		if (v.start > covered || n == MAX_VMAS)
			break;
		out[n++] = v;
		covered = v.end;
	}
	fclose(f);
	return covered >= end ? n : -1;
}

/* One file, mapped shared at consistent offsets over the whole range. */
static int one_shared_file(const struct vma *v, int n)
{
	for (int i = 0; i < n; i++) {
		if (v[i].perms[3] != 's' || v[i].ino == 0 || v[i].ino != v[0].ino ||
		    v[i].major != v[0].major || v[i].minor != v[0].minor ||
		    v[i].offset - v[i].start != v[0].offset - v[0].start)
			return 0;
	}
	return 1;
}

/* An fd of the program's that is the file (by device and inode), duplicated; or -1. */
static int fd_of_file(dev_t dev, uint64_t ino, int min)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int found = -1;
	struct dirent *e;
	while (found < 0 && (e = readdir(d))) {
		int fd = atoi(e->d_name);
		struct stat st;
		if (e->d_name[0] == '.' || fd == dirfd(d) || syscall(SYS_fstat, fd, &st) != 0)
			continue;
		if (st.st_dev == dev && st.st_ino == ino)
			found = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, min);
	}
	closedir(d);
	return found;
}

static int describe(int fd, struct ram_file *out)
{
	struct stat st;
	if (syscall(SYS_fstat, fd, &st) != 0)
		return -errno;
	out->fd = fd;
	out->dev = st.st_dev;
	out->ino = st.st_ino;
	/* hugetlbfs reports its huge page size as the block size */
	out->page_size = st.st_blksize > (blksize_t)PAGE ? (uint32_t)st.st_blksize : (uint32_t)PAGE;
	return 0;
}

/* Turn the range into a memfd mapped over it, contents kept. */
static int convert(uint64_t address, uint64_t length, int prot, int min, struct ram_file *out)
{
	static const uint8_t zero[PAGE];
	int fd = memfd_create("hsm-shim-ram", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)length) != 0) {
		int e = errno;
		sys_close(fd);
		return -e;
	}
	uint8_t *copy = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (copy == MAP_FAILED) {
		int e = errno;
		sys_close(fd);
		return -e;
	}
	const uint8_t *from = (const uint8_t *)(uintptr_t)address;
	for (uint64_t at = 0; at < length; at += PAGE)
		if (memcmp(from + at, zero, PAGE) != 0)
			memcpy(copy + at, from + at, PAGE);
	/* One step: the old pages go and the memfd's take their place at the same addresses. */
	void *p = mmap((void *)(uintptr_t)address, length, prot, MAP_SHARED | MAP_FIXED, fd, 0);
	int e = errno;
	munmap(copy, length);
	if (p == MAP_FAILED) {
		sys_close(fd);
		return -e;
	}
	fd = high(fd, min);
	if (fd < 0)
		return -errno;
	out->owned = 1;
	out->offset = 0;
	return describe(fd, out);
}

int ram_share_file(uint64_t address, uint64_t length, int min, struct ram_file *out)
{
	struct vma v[MAX_VMAS];
	*out = (struct ram_file){ .fd = -1 };
	if (length == 0 || address % PAGE || length % PAGE || address + length < address)
		return -EINVAL;
	int n = vmas_over(address, address + length, v);
	if (n <= 0)
		return -EFAULT;
	if (one_shared_file(v, n)) {
		dev_t dev = makedev(v[0].major, v[0].minor);
		int fd = fd_of_file(dev, v[0].ino, min);
		if (fd < 0) {
			/* The program closed it: /proc/self/map_files names it (for root). */
			char path[64];
			snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", v[0].start,
				 v[0].end);
			int opened = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDWR | O_CLOEXEC, 0);
			fd = opened < 0 ? -1 : high(opened, min);
		}
		if (fd >= 0) {
			int r = describe(fd, out);
			if (r == 0 && out->dev == dev && out->ino == v[0].ino) {
				out->offset = v[0].offset + (address - v[0].start);
				return 0;
			}
			sys_close(fd);
		}
		/* No way to name the file: the range becomes a memfd of its own, as below. */
	}
	int prot = PROT_READ | PROT_WRITE;
	for (int i = 0; i < n; i++)
		if (v[i].perms[2] == 'x')
			prot |= PROT_EXEC;
	return convert(address, length, prot, min, out);
}

void ram_file_release(struct ram_file *f)
{
	if (f->fd >= 0 && !f->owned)
		sys_close(f->fd);
	f->fd = -1;
}
