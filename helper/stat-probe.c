/*
 * stat-probe: every stat- and access-like call a program can make on the HSM device, with
 * its result on one line, for test/core/native/shim-node.test.ts (run under
 * libhsm-shim.so).
 *
 *   stat-probe DIR [--drop]
 *
 * It asks about /dev/acrn_hsm (label `device`, and the fd it opens: `device-fd`) and
 * /dev/acrn_vhm (`legacy`). When it may (root), it also makes DIR/ref, a real character
 * device node with the mode, owner and numbers the shim reports, and asks the same of it
 * (`ref`, `ref-fd` through an O_PATH fd): there the kernel answers, and the shim's answers
 * must be the same. With --drop (root only) it asks everything again as nobody.
 *
 * Lines: `CALL LABEL rc=R errno=E [mode=... nlink= uid= gid= rdev=MAJ:MIN size= blksize=
 * blocks= dev=MAJ:MIN ino= mask=]`, then `dir dev=MAJ:MIN mask=M` for /dev as the kernel
 * reports it, then `done`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* glibc 2.33 dropped the declarations; binaries built before still call these. */
extern int __xstat(int, const char *, struct stat *);
extern int __lxstat(int, const char *, struct stat *);
extern int __fxstat(int, int, struct stat *);
extern int __fxstatat(int, int, const char *, struct stat *, int);

static const char *as = "";

static void rc_line(const char *call, const char *label, int rc)
{
	printf("%s%s %s rc=%d errno=%s", call, as, label, rc, rc < 0 ? strerrorname_np(errno) : "0");
}

static void stat_line(const char *call, const char *label, int rc, const struct stat *st)
{
	rc_line(call, label, rc);
	if (rc == 0)
		printf(" mode=%o nlink=%lu uid=%u gid=%u rdev=%u:%u size=%lld blksize=%ld blocks=%lld"
		       " dev=%u:%u ino=%llu",
		       st->st_mode, (unsigned long)st->st_nlink, st->st_uid, st->st_gid,
		       major(st->st_rdev), minor(st->st_rdev), (long long)st->st_size,
		       (long)st->st_blksize, (long long)st->st_blocks, major(st->st_dev),
		       minor(st->st_dev), (unsigned long long)st->st_ino);
	printf("\n");
}

static void statx_line(const char *call, const char *label, int rc, const struct statx *sx)
{
	rc_line(call, label, rc);
	if (rc == 0)
		printf(" mode=%o nlink=%u uid=%u gid=%u rdev=%u:%u size=%llu blksize=%u blocks=%llu"
		       " dev=%u:%u ino=%llu mask=%x",
		       sx->stx_mode, sx->stx_nlink, sx->stx_uid, sx->stx_gid, sx->stx_rdev_major,
		       sx->stx_rdev_minor, (unsigned long long)sx->stx_size, sx->stx_blksize,
		       (unsigned long long)sx->stx_blocks, sx->stx_dev_major, sx->stx_dev_minor,
		       (unsigned long long)sx->stx_ino, sx->stx_mask);
	printf("\n");
}

static void access_lines(const char *label, const char *path)
{
	static const struct {
		const char *name;
		int mode;
	} modes[] = { { "F", F_OK }, { "R", R_OK }, { "W", W_OK }, { "X", X_OK },
		      { "RW", R_OK | W_OK }, { "bad", 0x100 } };
	char call[64];
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		int m = modes[i].mode;
		snprintf(call, sizeof(call), "access-%s", modes[i].name);
		rc_line(call, label, access(path, m));
		printf("\n");
		snprintf(call, sizeof(call), "faccessat-%s", modes[i].name);
		rc_line(call, label, faccessat(AT_FDCWD, path, m, 0));
		printf("\n");
		snprintf(call, sizeof(call), "faccessat-eaccess-%s", modes[i].name);
		rc_line(call, label, faccessat(AT_FDCWD, path, m, AT_EACCESS));
		printf("\n");
		snprintf(call, sizeof(call), "euidaccess-%s", modes[i].name);
		rc_line(call, label, euidaccess(path, m));
		printf("\n");
		snprintf(call, sizeof(call), "eaccess-%s", modes[i].name);
		rc_line(call, label, eaccess(path, m));
		printf("\n");
	}
	rc_line("faccessat-badflags", label, faccessat(AT_FDCWD, path, R_OK, 0x8000000));
	printf("\n");
}

static void path_lines(const char *label, const char *path)
{
	struct stat st;
	struct stat64 st64;
	struct statx sx;
	int dir = open("/", O_PATH | O_DIRECTORY);
	stat_line("stat", label, stat(path, &st), &st);
	stat_line("stat64", label, stat64(path, &st64), (struct stat *)&st64);
	stat_line("lstat", label, lstat(path, &st), &st);
	stat_line("lstat64", label, lstat64(path, &st64), (struct stat *)&st64);
	stat_line("fstatat", label, fstatat(AT_FDCWD, path, &st, 0), &st);
	stat_line("fstatat-nofollow", label, fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW), &st);
	stat_line("fstatat-dirfd", label, fstatat(dir, path, &st, 0), &st);
	stat_line("fstatat64", label, fstatat64(AT_FDCWD, path, &st64, 0), (struct stat *)&st64);
	stat_line("fstatat-badflags", label, fstatat(AT_FDCWD, path, &st, 0x8000000), &st);
	stat_line("__xstat", label, __xstat(1, path, &st), &st);
	stat_line("__lxstat", label, __lxstat(1, path, &st), &st);
	stat_line("__fxstatat", label, __fxstatat(1, AT_FDCWD, path, &st, 0), &st);
	statx_line("statx", label, statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, &sx), &sx);
	statx_line("statx-nofollow", label,
		   statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx), &sx);
	statx_line("statx-reserved", label, statx(AT_FDCWD, path, 0, STATX__RESERVED, &sx), &sx);
	close(dir);
	access_lines(label, path);
}

static void fd_lines(const char *label, int fd)
{
	struct stat st;
	struct stat64 st64;
	struct statx sx;
	stat_line("fstat", label, fstat(fd, &st), &st);
	stat_line("fstat64", label, fstat64(fd, &st64), (struct stat *)&st64);
	stat_line("__fxstat", label, __fxstat(1, fd, &st), &st);
	stat_line("fstatat-empty", label, fstatat(fd, "", &st, AT_EMPTY_PATH), &st);
	statx_line("statx-empty", label, statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx), &sx);
	rc_line("faccessat-empty-R", label, faccessat(fd, "", R_OK, AT_EMPTY_PATH));
	printf("\n");
	rc_line("faccessat-empty-X", label, faccessat(fd, "", X_OK, AT_EMPTY_PATH));
	printf("\n");
}

static void everything(const char *ref, int device_fd)
{
	path_lines("device", "/dev/acrn_hsm");
	path_lines("legacy", "/dev/acrn_vhm");
	fd_lines("device-fd", device_fd);
	if (ref) {
		path_lines("ref", ref);
		int fd = open(ref, O_PATH);
		fd_lines("ref-fd", fd);
		close(fd);
	}
	/* Another path passes through: the shim's answer is the kernel's. */
	struct stat a, b;
	int ra = stat("/etc/passwd", &a);
	int rb = (int)syscall(SYS_newfstatat, AT_FDCWD, "/etc/passwd", &b, 0);
	printf("passthrough%s rc=%d ino=%llu kernel-rc=%d kernel-ino=%llu\n", as, ra,
	       (unsigned long long)a.st_ino, rb, (unsigned long long)b.st_ino);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: stat-probe DIR [--drop]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	int drop = argc > 2 && strcmp(argv[2], "--drop") == 0;
	int fd = open("/dev/acrn_hsm", O_RDWR | O_CLOEXEC);
	rc_line("open", "device", fd < 0 ? -1 : 0);
	printf("\n");
	rc_line("open", "legacy", open("/dev/acrn_vhm", O_RDWR | O_CLOEXEC));
	printf("\n");
	struct stat dev;
	char ref[4096];
	const char *refp = NULL;
	snprintf(ref, sizeof(ref), "%s/ref", argv[1]);
	if (stat("/dev/acrn_hsm", &dev) == 0 && mknod(ref, dev.st_mode, dev.st_rdev) == 0 &&
	    chown(ref, dev.st_uid, dev.st_gid) == 0)
		refp = ref;
	else
		printf("ref unavailable %s\n", strerrorname_np(errno));
	everything(refp, fd);
	if (drop && getuid() == 0) {
		as = "@nobody";
		if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534)) {
			perror("stat-probe: dropping to nobody");
			return 1;
		}
		everything(refp, fd);
	}
	struct stat d;
	struct statx dx;
	syscall(SYS_newfstatat, AT_FDCWD, "/dev", &d, 0);
	syscall(SYS_statx, AT_FDCWD, "/dev", 0, STATX_BASIC_STATS, &dx);
	printf("dir dev=%u:%u mask=%x\n", major(d.st_dev), minor(d.st_dev), dx.stx_mask);
	printf("done\n");
	return 0;
}
