/*
 * The device node as stat(2) and access(2) see it, for libhsm-shim.so (SHIM.md, "The
 * device node"). Real programs look before they open: acrn-dm stat()s /dev/acrn_vhm, then
 * /dev/acrn_hsm, and opens the first that exists. Under the shim there is no file on the
 * host, so these calls answer for the node the kernel would have made: the misc device
 * `acrn_hsm` with a dynamic minor, 0600 root:root (spec §1.1 step 3, §1.3), on the
 * devtmpfs of its directory. The legacy name /dev/acrn_vhm is answered as missing, so a
 * program falls through to the simulated device. fstat() of a placeholder fd (a /dev/null
 * underneath) answers for the node too.
 *
 * Covered: stat, lstat, fstat, fstatat and their *64 names, statx, access, faccessat
 * (which glibc issues as faccessat2), euidaccess/eaccess (glibc's own, from stat), and the
 * __xstat family that
 * binaries built against glibc before 2.33 call (Debian 12's glibc still exports it).
 * Calls on other paths, and calls with flags or modes the kernel rejects (it does so
 * before the lookup: EINVAL), go to the real function.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/capability.h>

#include "hsm-shim-node.h"

#define EXPORT __attribute__((visibility("default")))

/* Misc devices are major 10 (include/linux/miscdevice.h). */
#define MISC_MAJOR 10
/* Linux allocates dynamic misc minors from here up (older kernels: from 127 down). */
#define DYNAMIC_MINOR_FIRST 256
#define MINOR_MAX 0xfffff
/*
 * devtmpfs numbers its inodes upwards from 1 (get_next_ino); one this high is not taken
 * by another node in practice, so (st_dev, st_ino) names the device alone.
 */
#define NODE_INO 0xac000000u

_Static_assert(sizeof(struct stat) == sizeof(struct stat64), "x86-64: one stat layout");

static int (*real_stat)(const char *, struct stat *);
static int (*real_stat64)(const char *, struct stat64 *);
static int (*real_lstat)(const char *, struct stat *);
static int (*real_lstat64)(const char *, struct stat64 *);
static int (*real_fstat)(int, struct stat *);
static int (*real_fstat64)(int, struct stat64 *);
static int (*real_fstatat)(int, const char *, struct stat *, int);
static int (*real_fstatat64)(int, const char *, struct stat64 *, int);
static int (*real_statx)(int, const char *, int, unsigned, struct statx *);
static int (*real_access)(const char *, int);
static int (*real_faccessat)(int, const char *, int, int);
static int (*real_euidaccess)(const char *, int);
static int (*real_eaccess)(const char *, int);
static int (*real___xstat)(int, const char *, struct stat *);
static int (*real___xstat64)(int, const char *, struct stat64 *);
static int (*real___lxstat)(int, const char *, struct stat *);
static int (*real___lxstat64)(int, const char *, struct stat64 *);
static int (*real___fxstat)(int, int, struct stat *);
static int (*real___fxstat64)(int, int, struct stat64 *);
static int (*real___fxstatat)(int, int, const char *, struct stat *, int);
static int (*real___fxstatat64)(int, int, const char *, struct stat64 *, int);

/* The real function, looked up once; a libc without it (no statx, say): ENOSYS. */
#define REAL(name, ...)                                                                   \
	((real_##name || (*(void **)(&real_##name) = dlsym(RTLD_NEXT, #name)))            \
		 ? real_##name(__VA_ARGS__)                                                \
		 : (errno = ENOSYS, -1))

/* ------------------------------------------------------------------------------------ */
/* The node.                                                                             */

struct node_facts {
	char dir[256];
	uint32_t minor;
	/* Of the device's directory: the node lives on its file system... */
	dev_t dev;
	/* ...and was made when the module registered it; the directory's ctime stands in. */
	struct timespec made;
};
static struct node_facts facts;
static pthread_once_t facts_once = PTHREAD_ONCE_INIT;

/*
 * The minor the kernel gives acrn_hsm: its own if the host has the module loaded, else
 * the first dynamic one free (/proc/misc lists those taken).
 */
static uint32_t choose_minor(void)
{
	static uint8_t taken[4096];
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/misc", O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return DYNAMIC_MINOR_FIRST;
	char buf[8192];
	size_t have = 0;
	ssize_t n;
	while (have < sizeof(buf) - 1 && (n = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0)
		have += (size_t)n;
	close(fd);
	buf[have] = 0;
	for (char *line = buf; line && *line;) {
		char *next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		unsigned minor;
		char name[64];
		if (sscanf(line, "%u %63s", &minor, name) == 2) {
			if (strcmp(name, "acrn_hsm") == 0)
				return minor;
			if (minor >= DYNAMIC_MINOR_FIRST && minor - DYNAMIC_MINOR_FIRST < sizeof(taken))
				taken[minor - DYNAMIC_MINOR_FIRST] = 1;
		}
		line = next;
	}
	for (uint32_t i = 0; i < sizeof(taken); i++)
		if (!taken[i])
			return DYNAMIC_MINOR_FIRST + i;
	return DYNAMIC_MINOR_FIRST;
}

static void learn_facts(void)
{
	/* The device's directory: "/dev" for /dev/acrn_hsm. */
	snprintf(facts.dir, sizeof(facts.dir), "%s", shim_device_path());
	char *slash = strrchr(facts.dir, '/');
	if (!slash)
		strcpy(facts.dir, ".");
	else
		slash[slash == facts.dir ? 1 : 0] = 0;
	facts.minor = choose_minor();
	struct stat d;
	if (syscall(SYS_newfstatat, AT_FDCWD, facts.dir, &d, 0) == 0) {
		facts.dev = d.st_dev;
		facts.made = d.st_ctim;
	}
}

static const struct node_facts *node(void)
{
	pthread_once(&facts_once, learn_facts);
	return &facts;
}

static void fill_stat(struct stat *st)
{
	const struct node_facts *f = node();
	memset(st, 0, sizeof(*st));
	st->st_dev = f->dev;
	st->st_ino = NODE_INO;
	st->st_nlink = 1;
	st->st_mode = S_IFCHR | 0600;
	st->st_uid = 0;
	st->st_gid = 0;
	st->st_rdev = makedev(MISC_MAJOR, f->minor);
	st->st_size = 0;
	st->st_blksize = 4096;
	st->st_blocks = 0;
	st->st_atim = st->st_mtim = st->st_ctim = f->made;
}

static struct statx_timestamp stx_time(struct timespec t)
{
	return (struct statx_timestamp){ .tv_sec = t.tv_sec, .tv_nsec = (uint32_t)t.tv_nsec };
}

/*
 * statx of the node: what the kernel reports for a file of the directory's file system
 * (the mask it fills, the device, the mount id) asked the same way, with the node's own
 * fields. 0, or -1 with errno as the directory's statx failed.
 */
static int fill_statx(int flags, unsigned mask, struct statx *sx)
{
	const struct node_facts *f = node();
	struct statx d;
	int sync = flags & AT_STATX_SYNC_TYPE;
	if (syscall(SYS_statx, AT_FDCWD, f->dir, sync, mask, &d) != 0)
		return -1;
	memset(sx, 0, sizeof(*sx));
	/* A directory answers for its contents only: what a char device has not, it drops. */
	sx->stx_mask = d.stx_mask & ~(unsigned)(STATX_DIOALIGN);
	sx->stx_blksize = 4096;
	sx->stx_attributes_mask = d.stx_attributes_mask;
	sx->stx_nlink = 1;
	sx->stx_uid = 0;
	sx->stx_gid = 0;
	sx->stx_mode = S_IFCHR | 0600;
	sx->stx_ino = NODE_INO;
	sx->stx_size = 0;
	sx->stx_blocks = 0;
	sx->stx_atime = sx->stx_mtime = sx->stx_ctime = stx_time(f->made);
	if (d.stx_mask & STATX_BTIME)
		sx->stx_btime = stx_time(f->made);
	sx->stx_rdev_major = MISC_MAJOR;
	sx->stx_rdev_minor = f->minor;
	sx->stx_dev_major = d.stx_dev_major;
	sx->stx_dev_minor = d.stx_dev_minor;
	sx->stx_mnt_id = d.stx_mnt_id;
	return 0;
}

/* The capability sets the kernel checks with (capget). */
static uint32_t capabilities(int effective)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) != 0)
		return 0;
	return effective ? d[0].effective : d[0].permitted;
}

/*
 * access(2) on the node, as do_faccessat decides it: with the real ids (or the effective
 * ones for AT_EACCESS); a real uid other than 0 checks with no capabilities, root with its
 * permitted set. Only the owner (root) has rw-; CAP_DAC_OVERRIDE grants read and write but
 * not execute (no x bit is set), CAP_DAC_READ_SEARCH grants read.
 */
static int node_access(int mode, int effective)
{
	if (mode == F_OK)
		return 0;
	uid_t uid = effective ? geteuid() : getuid();
	uint32_t caps = effective ? capabilities(1) : uid == 0 ? capabilities(0) : 0;
	int granted = uid == 0 ? R_OK | W_OK : 0;
	if (caps & (1u << CAP_DAC_OVERRIDE))
		granted |= R_OK | W_OK;
	if (caps & (1u << CAP_DAC_READ_SEARCH))
		granted |= R_OK;
	if ((mode & ~granted) == 0)
		return 0;
	errno = EACCES;
	return -1;
}

/* The flags vfs_statx / do_faccessat accept; others are EINVAL from the real call. */
#define STAT_FLAGS (AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH | AT_STATX_SYNC_TYPE)
#define ACCESS_FLAGS (AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)
/* _STAT_VER_KERNEL and _STAT_VER_LINUX: the versions glibc's __xstat accepts on x86-64. */
#define STAT_VERSION_OK(v) ((v) == 0 || (v) == 1)

enum answer { REAL_CALL, NODE, MISSING };

/* Who answers for `path` (relative to `dirfd`) with `flags`. */
static enum answer answer_for(int dirfd, const char *path, int flags, int valid_flags)
{
	if (!shim_active() || (flags & ~valid_flags))
		return REAL_CALL;
	if ((!path || !*path) && (flags & AT_EMPTY_PATH))
		return shim_is_placeholder(dirfd) ? NODE : REAL_CALL;
	/* A relative path is resolved from dirfd (or the cwd): only an absolute one is known. */
	int absolute = dirfd != AT_FDCWD;
	if (shim_is_device_path(path, absolute))
		return NODE;
	if (shim_is_hidden_path(path, absolute))
		return MISSING;
	return REAL_CALL;
}

static int missing(void)
{
	errno = ENOENT;
	return -1;
}

static int stat_node(enum answer a, struct stat *st)
{
	if (a == MISSING)
		return missing();
	fill_stat(st);
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* The interposed functions.                                                             */

EXPORT int stat(const char *path, struct stat *st)
{
	enum answer a = answer_for(AT_FDCWD, path, 0, 0);
	return a == REAL_CALL ? REAL(stat, path, st) : stat_node(a, st);
}

EXPORT int stat64(const char *path, struct stat64 *st)
{
	enum answer a = answer_for(AT_FDCWD, path, 0, 0);
	return a == REAL_CALL ? REAL(stat64, path, st) : stat_node(a, (struct stat *)st);
}

/* The device is a node, not a link: lstat says what stat says. */
EXPORT int lstat(const char *path, struct stat *st)
{
	enum answer a = answer_for(AT_FDCWD, path, 0, 0);
	return a == REAL_CALL ? REAL(lstat, path, st) : stat_node(a, st);
}

EXPORT int lstat64(const char *path, struct stat64 *st)
{
	enum answer a = answer_for(AT_FDCWD, path, 0, 0);
	return a == REAL_CALL ? REAL(lstat64, path, st) : stat_node(a, (struct stat *)st);
}

EXPORT int fstat(int fd, struct stat *st)
{
	if (shim_active() && shim_is_placeholder(fd))
		return stat_node(NODE, st);
	return REAL(fstat, fd, st);
}

EXPORT int fstat64(int fd, struct stat64 *st)
{
	if (shim_active() && shim_is_placeholder(fd))
		return stat_node(NODE, (struct stat *)st);
	return REAL(fstat64, fd, st);
}

EXPORT int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	enum answer a = answer_for(dirfd, path, flags, STAT_FLAGS);
	return a == REAL_CALL ? REAL(fstatat, dirfd, path, st, flags) : stat_node(a, st);
}

EXPORT int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
	enum answer a = answer_for(dirfd, path, flags, STAT_FLAGS);
	return a == REAL_CALL ? REAL(fstatat64, dirfd, path, st, flags)
			      : stat_node(a, (struct stat *)st);
}

EXPORT int statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *sx)
{
	enum answer a = answer_for(dirfd, path, flags, STAT_FLAGS);
	/* STATX__RESERVED in the mask is EINVAL, from the kernel. */
	if (a == REAL_CALL || (mask & STATX__RESERVED))
		return REAL(statx, dirfd, path, flags, mask, sx);
	if (a == MISSING)
		return missing();
	return fill_statx(flags, mask, sx);
}

/* Modes other than F_OK and R_OK|W_OK|X_OK bits are EINVAL, from the kernel. */
static enum answer access_answer(int dirfd, const char *path, int mode, int flags)
{
	return mode & ~(R_OK | W_OK | X_OK) ? REAL_CALL
					    : answer_for(dirfd, path, flags, ACCESS_FLAGS);
}

static int access_node(enum answer a, int mode, int effective)
{
	return a == MISSING ? missing() : node_access(mode, effective);
}

EXPORT int access(const char *path, int mode)
{
	enum answer a = access_answer(AT_FDCWD, path, mode, 0);
	return a == REAL_CALL ? REAL(access, path, mode) : access_node(a, mode, 0);
}

EXPORT int faccessat(int dirfd, const char *path, int mode, int flags)
{
	enum answer a = access_answer(dirfd, path, mode, flags);
	return a == REAL_CALL ? REAL(faccessat, dirfd, path, mode, flags)
			      : access_node(a, mode, flags & AT_EACCESS);
}

/*
 * glibc's euidaccess (Debian 12) decides in user space, from stat: bits other than
 * R_OK|W_OK|X_OK are dropped; without set-id it asks access(); an effective root may
 * read and write anything; else the mode bits for the effective ids (no capabilities).
 */
static int node_euidaccess(enum answer a, int mode)
{
	if (a == MISSING)
		return missing();
	mode &= R_OK | W_OK | X_OK;
	if (mode == F_OK)
		return 0;
	if (getuid() == geteuid() && getgid() == getegid())
		return node_access(mode, 0);
	/* Only the owner, root, has any bit: rw-. */
	if (geteuid() == 0 && !(mode & X_OK))
		return 0;
	errno = EACCES;
	return -1;
}

EXPORT int euidaccess(const char *path, int mode)
{
	enum answer a = answer_for(AT_FDCWD, path, 0, 0);
	return a == REAL_CALL ? REAL(euidaccess, path, mode) : node_euidaccess(a, mode);
}

EXPORT int eaccess(const char *path, int mode)
{
	enum answer a = answer_for(AT_FDCWD, path, 0, 0);
	return a == REAL_CALL ? REAL(eaccess, path, mode) : node_euidaccess(a, mode);
}

/* glibc before 2.33 compiled stat() into these; old binaries still call them. */
EXPORT int __xstat(int ver, const char *path, struct stat *st)
{
	enum answer a = STAT_VERSION_OK(ver) ? answer_for(AT_FDCWD, path, 0, 0) : REAL_CALL;
	return a == REAL_CALL ? REAL(__xstat, ver, path, st) : stat_node(a, st);
}

EXPORT int __xstat64(int ver, const char *path, struct stat64 *st)
{
	enum answer a = STAT_VERSION_OK(ver) ? answer_for(AT_FDCWD, path, 0, 0) : REAL_CALL;
	return a == REAL_CALL ? REAL(__xstat64, ver, path, st) : stat_node(a, (struct stat *)st);
}

EXPORT int __lxstat(int ver, const char *path, struct stat *st)
{
	enum answer a = STAT_VERSION_OK(ver) ? answer_for(AT_FDCWD, path, 0, 0) : REAL_CALL;
	return a == REAL_CALL ? REAL(__lxstat, ver, path, st) : stat_node(a, st);
}

EXPORT int __lxstat64(int ver, const char *path, struct stat64 *st)
{
	enum answer a = STAT_VERSION_OK(ver) ? answer_for(AT_FDCWD, path, 0, 0) : REAL_CALL;
	return a == REAL_CALL ? REAL(__lxstat64, ver, path, st) : stat_node(a, (struct stat *)st);
}

EXPORT int __fxstat(int ver, int fd, struct stat *st)
{
	if (STAT_VERSION_OK(ver) && shim_active() && shim_is_placeholder(fd))
		return stat_node(NODE, st);
	return REAL(__fxstat, ver, fd, st);
}

EXPORT int __fxstat64(int ver, int fd, struct stat64 *st)
{
	if (STAT_VERSION_OK(ver) && shim_active() && shim_is_placeholder(fd))
		return stat_node(NODE, (struct stat *)st);
	return REAL(__fxstat64, ver, fd, st);
}

EXPORT int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags)
{
	enum answer a =
		STAT_VERSION_OK(ver) ? answer_for(dirfd, path, flags, STAT_FLAGS) : REAL_CALL;
	return a == REAL_CALL ? REAL(__fxstatat, ver, dirfd, path, st, flags) : stat_node(a, st);
}

EXPORT int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags)
{
	enum answer a =
		STAT_VERSION_OK(ver) ? answer_for(dirfd, path, flags, STAT_FLAGS) : REAL_CALL;
	return a == REAL_CALL ? REAL(__fxstatat64, ver, dirfd, path, st, flags)
			      : stat_node(a, (struct stat *)st);
}
