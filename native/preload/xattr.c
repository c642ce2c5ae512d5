/*
 * The xattr family on routed /sys and /dev paths (and engine fds), answered
 * as the file systems behind them answer when nothing is set:
 *
 * - sysfs (kernfs: trusted., security. and user. handlers, no ACLs):
 *   trusted. and security. attributes are stored (in the fake tree's file,
 *   so root may set them as on Linux), a user. name reads ENODATA and
 *   cannot be set (EOPNOTSUPP), any other name EOPNOTSUPP; list shows the
 *   stored ones.
 * - debugfs (/sys/kernel/debug: no xattr handlers): get EOPNOTSUPP; list 0.
 * - devtmpfs (/dev, the engine's nodes): get of a trusted., security.,
 *   user. name or a POSIX ACL ENODATA, any other name EOPNOTSUPP; list 0.
 *
 * A missing path is ENOENT (owned folders included, see paths.c). Setting
 * or removing any other attribute on a routed path is EOPNOTSUPP (devtmpfs
 * would store them for root).
 */
#include "preload.h"

#include <sys/xattr.h>

/* Where a path's attributes live: not routed, missing (errno set), or one of the emulated trees. */
enum xfs { XFS_NONE, XFS_MISSING, XFS_SYSFS, XFS_DEBUGFS, XFS_DEVTMPFS };

static int has_prefix(const char *name, const char *prefix)
{
	return !strncmp(name, prefix, strlen(prefix));
}

/* The file system a routed path lives on: XFS_NONE when not routed, XFS_MISSING with errno. */
static enum xfs route_xfs(const char *path, int follow, char *fake)
{
	char norm[PATH_MAX];
	struct statx stx;
	enum route r = classify(path, norm, fake);

	if (r == ROUTE_REAL)
		return XFS_NONE;
	if (r == ROUTE_FAKE &&
	    sys_statx(AT_FDCWD, fake, follow ? 0 : AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx)) {
		errno = ENOENT;
		return XFS_MISSING;
	}
	if (r == ROUTE_ENGINE) {
		struct uiommu_stat ps;

		if (engine_node(norm, &ps))
			return XFS_MISSING;
		return XFS_DEVTMPFS;
	}
	if (starts(norm, "/dev/"))
		return XFS_DEVTMPFS;
	if (!strcmp(norm, "/sys/kernel/debug") || starts(norm, "/sys/kernel/debug/"))
		return XFS_DEBUGFS;
	return XFS_SYSFS;
}

/* sysfs keeps trusted. and security. attributes: they live on the fake tree's file. */
static int stored(enum xfs fs, const char *name)
{
	return fs == XFS_SYSFS && (has_prefix(name, "security.") || has_prefix(name, "trusted."));
}

static ssize_t get_answer(enum xfs fs, const char *name)
{
	int known = has_prefix(name, "security.") || has_prefix(name, "trusted.") ||
		    has_prefix(name, "user.");

	if (fs == XFS_DEVTMPFS &&
	    (!strcmp(name, "system.posix_acl_access") || !strcmp(name, "system.posix_acl_default")))
		known = 1;
	errno = fs != XFS_DEBUGFS && known ? ENODATA : EOPNOTSUPP;
	return -1;
}

static ssize_t do_getxattr(const char *path, const char *name, void *value, size_t size, int follow)
{
	char fake[PATH_MAX];
	enum xfs fs = route_xfs(path, follow, fake);
	ssize_t (*fn)(const char *, const char *, void *,
		      size_t) = dlsym(RTLD_NEXT, follow ? "getxattr" : "lgetxattr");

	if (fs == XFS_MISSING)
		return -1;
	if (fs == XFS_NONE)
		return fn(path, name, value, size);
	if (stored(fs, name))
		return fn(fake, name, value, size);
	return get_answer(fs, name);
}

/* The stored names of a sysfs entry: the fake file's security. and trusted. ones. */
static ssize_t sysfs_list(const char *fake, char *list, size_t size, int follow)
{
	ssize_t (*fn)(const char *, char *, size_t) = dlsym(RTLD_NEXT,
							    follow ? "listxattr" : "llistxattr");
	char all[4096];
	size_t out = 0;
	ssize_t n = fn(fake, all, sizeof(all));
	char *p;

	for (p = all; n > 0 && p < all + n; p += strlen(p) + 1) {
		size_t len = strlen(p) + 1;

		if (!stored(XFS_SYSFS, p))
			continue;
		if (size && out + len > size) {
			errno = ERANGE;
			return -1;
		}
		if (size)
			memcpy(list + out, p, len);
		out += len;
	}
	return (ssize_t)out;
}

static ssize_t do_listxattr(const char *path, char *list, size_t size, int follow)
{
	char fake[PATH_MAX];
	enum xfs fs = route_xfs(path, follow, fake);
	ssize_t (*fn)(const char *, char *, size_t);

	if (fs == XFS_MISSING)
		return -1;
	if (fs == XFS_SYSFS)
		return sysfs_list(fake, list, size, follow);
	if (fs != XFS_NONE)
		return 0;
	fn = dlsym(RTLD_NEXT, follow ? "listxattr" : "llistxattr");
	return fn(path, list, size);
}

static int do_setxattr(const char *path, const char *name, const void *value, size_t size,
		       int flags, int follow)
{
	char fake[PATH_MAX];
	enum xfs fs = route_xfs(path, follow, fake);
	int (*fn)(const char *, const char *, const void *, size_t,
		  int) = dlsym(RTLD_NEXT, follow ? "setxattr" : "lsetxattr");

	if (fs == XFS_MISSING)
		return -1;
	if (fs == XFS_NONE)
		return fn(path, name, value, size, flags);
	if (stored(fs, name))
		return fn(fake, name, value, size, flags);
	errno = EOPNOTSUPP;
	return -1;
}

static int do_removexattr(const char *path, const char *name, int follow)
{
	char fake[PATH_MAX];
	enum xfs fs = route_xfs(path, follow, fake);
	int (*fn)(const char *, const char *) = dlsym(RTLD_NEXT,
						      follow ? "removexattr" : "lremovexattr");

	if (fs == XFS_MISSING)
		return -1;
	if (fs == XFS_NONE)
		return fn(path, name);
	if (stored(fs, name))
		return fn(fake, name);
	errno = EOPNOTSUPP;
	return -1;
}

EXPORT ssize_t getxattr(const char *path, const char *name, void *value, size_t size)
{
	return do_getxattr(path, name, value, size, 1);
}

EXPORT ssize_t lgetxattr(const char *path, const char *name, void *value, size_t size)
{
	return do_getxattr(path, name, value, size, 0);
}

EXPORT ssize_t listxattr(const char *path, char *list, size_t size)
{
	return do_listxattr(path, list, size, 1);
}

EXPORT ssize_t llistxattr(const char *path, char *list, size_t size)
{
	return do_listxattr(path, list, size, 0);
}

EXPORT int setxattr(const char *path, const char *name, const void *value, size_t size, int flags)
{
	return do_setxattr(path, name, value, size, flags, 1);
}

EXPORT int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)
{
	return do_setxattr(path, name, value, size, flags, 0);
}

EXPORT int removexattr(const char *path, const char *name)
{
	return do_removexattr(path, name, 1);
}

EXPORT int lremovexattr(const char *path, const char *name)
{
	return do_removexattr(path, name, 0);
}

/* An engine fd is a device node of devtmpfs; every other fd goes to libc. */
EXPORT ssize_t fgetxattr(int fd, const char *name, void *value, size_t size)
{
	ssize_t (*fn)(int, const char *, void *, size_t);

	if (bit_test(fd))
		return get_answer(XFS_DEVTMPFS, name);
	fn = dlsym(RTLD_NEXT, "fgetxattr");
	return fn(fd, name, value, size);
}

EXPORT ssize_t flistxattr(int fd, char *list, size_t size)
{
	ssize_t (*fn)(int, char *, size_t);

	if (bit_test(fd))
		return 0;
	fn = dlsym(RTLD_NEXT, "flistxattr");
	return fn(fd, list, size);
}
