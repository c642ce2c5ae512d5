/* The stat family: stat*, lstat*, fstat*, fstatat*, the old __xstat* and statx. */
#include "preload.h"

static void node_stat(struct stat *st, const struct uiommu_stat *ps, int fresh)
{
	if (fresh) {
		memset(st, 0, sizeof(*st));
		st->st_nlink = 1;
		st->st_blksize = 4096;
		st->st_ino = makedev(ps->major, ps->minor) + 1;
	}
	st->st_mode = S_IFCHR | (ps->mode & 07777);
	st->st_rdev = makedev(ps->major, ps->minor);
	st->st_size = 0;
}

static void node_statx(struct statx *stx, const struct uiommu_stat *ps, int fresh)
{
	if (fresh) {
		memset(stx, 0, sizeof(*stx));
		stx->stx_mask = STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_INO | STATX_SIZE;
		stx->stx_nlink = 1;
		stx->stx_blksize = 4096;
		stx->stx_ino = makedev(ps->major, ps->minor) + 1;
	}
	stx->stx_mask |= STATX_TYPE | STATX_MODE;
	stx->stx_mode = S_IFCHR | (ps->mode & 07777);
	stx->stx_rdev_major = ps->major;
	stx->stx_rdev_minor = ps->minor;
	stx->stx_size = 0;
}

/* "" (or NULL, which Linux 6.11+ accepts) with AT_EMPTY_PATH names dirfd itself. */
static int empty_path(const char *path)
{
	return !path || !path[0];
}

/*
 * One stat-family call: `call` runs libc's variant on (dirfd, path, flags)
 * into `buf`; `fill` writes an engine node into `buf` (fresh: over nothing).
 */
struct stat_call {
	int (*call)(const struct stat_call *c, int dirfd, const char *path, int flags);
	void (*fill)(const struct stat_call *c, const struct uiommu_stat *ps, int fresh);
	void *buf;
	unsigned int mask;
};

/*
 * Routes a stat-family call: an engine fd by AT_EMPTY_PATH gets the real
 * placeholder's answer with the node's type and number on top; an engine
 * path gets the node alone; a fake-tree path is stat'ed there.
 */
static int stat_routed(const struct stat_call *c, int dirfd, const char *path, int flags)
{
	char norm[PATH_MAX], fake[PATH_MAX];
	struct uiommu_stat ps;
	int r;

	ensure_init();
	if (lib_fd(dirfd) && (empty_path(path) || path[0] != '/'))
		return ebadf();
	if (empty_path(path) && (flags & AT_EMPTY_PATH) && bit_test(dirfd)) {
		r = c->call(c, dirfd, path, flags);
		if (r == 0 && engine_stat(NULL, dirfd, &ps) > 0)
			c->fill(c, &ps, 0);
		return r;
	}
	switch (classify(path, norm, fake)) {
	case ROUTE_ENGINE:
		if (engine_node(norm, &ps))
			return -1;
		c->fill(c, &ps, 1);
		return 0;
	case ROUTE_FAKE:
		return c->call(c, AT_FDCWD, fake, flags);
	default:
		return c->call(c, dirfd, path, flags);
	}
}

static int call_fstatat(const struct stat_call *c, int dirfd, const char *path, int flags)
{
	return real.fstatat(dirfd, path, c->buf, flags);
}

static void fill_stat(const struct stat_call *c, const struct uiommu_stat *ps, int fresh)
{
	node_stat(c->buf, ps, fresh);
}

static int do_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	struct stat_call c = { call_fstatat, fill_stat, st, 0 };

	return stat_routed(&c, dirfd, path, flags);
}

EXPORT int stat(const char *path, struct stat *st)
{
	return do_fstatat(AT_FDCWD, path, st, 0);
}

EXPORT int stat64(const char *path, struct stat64 *st)
{
	return do_fstatat(AT_FDCWD, path, (struct stat *)st, 0);
}

EXPORT int lstat(const char *path, struct stat *st)
{
	return do_fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}

EXPORT int lstat64(const char *path, struct stat64 *st)
{
	return do_fstatat(AT_FDCWD, path, (struct stat *)st, AT_SYMLINK_NOFOLLOW);
}

EXPORT int fstat(int fd, struct stat *st)
{
	return do_fstatat(fd, "", st, AT_EMPTY_PATH);
}

EXPORT int fstat64(int fd, struct stat64 *st)
{
	return do_fstatat(fd, "", (struct stat *)st, AT_EMPTY_PATH);
}

EXPORT int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	return do_fstatat(dirfd, path, st, flags);
}

EXPORT int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
	return do_fstatat(dirfd, path, (struct stat *)st, flags);
}

/*
 * The pre-2.33 glibc entry points that older binaries call; `ver` is assumed
 * to name the current struct stat layout (_STAT_VER).
 */
EXPORT int __xstat(int ver, const char *path, struct stat *st)
{
	(void)ver;
	return do_fstatat(AT_FDCWD, path, st, 0);
}

EXPORT int __xstat64(int ver, const char *path, struct stat64 *st)
{
	(void)ver;
	return do_fstatat(AT_FDCWD, path, (struct stat *)st, 0);
}

EXPORT int __lxstat(int ver, const char *path, struct stat *st)
{
	(void)ver;
	return do_fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}

EXPORT int __lxstat64(int ver, const char *path, struct stat64 *st)
{
	(void)ver;
	return do_fstatat(AT_FDCWD, path, (struct stat *)st, AT_SYMLINK_NOFOLLOW);
}

EXPORT int __fxstat(int ver, int fd, struct stat *st)
{
	(void)ver;
	return do_fstatat(fd, "", st, AT_EMPTY_PATH);
}

EXPORT int __fxstat64(int ver, int fd, struct stat64 *st)
{
	(void)ver;
	return do_fstatat(fd, "", (struct stat *)st, AT_EMPTY_PATH);
}

EXPORT int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags)
{
	(void)ver;
	return do_fstatat(dirfd, path, st, flags);
}

EXPORT int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags)
{
	(void)ver;
	return do_fstatat(dirfd, path, (struct stat *)st, flags);
}

static int call_statx(const struct stat_call *c, int dirfd, const char *path, int flags)
{
	return real.statx(dirfd, path, flags, c->mask, c->buf);
}

static void fill_statx(const struct stat_call *c, const struct uiommu_stat *ps, int fresh)
{
	node_statx(c->buf, ps, fresh);
}

EXPORT int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *stx)
{
	struct stat_call c = { call_statx, fill_statx, stx, mask };

	return stat_routed(&c, dirfd, path, flags);
}
