/* Names: access, readlink, realpath, and opendir (scandir: proc-fd.c). */
#include "preload.h"

static int do_faccessat(int dirfd, const char *path, int how, int flags)
{
	char norm[PATH_MAX], fake[PATH_MAX];
	struct uiommu_stat ps;

	switch (classify(path, norm, fake)) {
	case ROUTE_ENGINE:
		/* the engine's nodes are accessible to the program */
		return engine_node(norm, &ps);
	case ROUTE_FAKE:
		return real.faccessat(AT_FDCWD, fake, how, flags);
	default:
		return real.faccessat(dirfd, path, how, flags);
	}
}

EXPORT int access(const char *path, int how)
{
	return do_faccessat(AT_FDCWD, path, how, 0);
}

EXPORT int faccessat(int dirfd, const char *path, int how, int flags)
{
	return do_faccessat(dirfd, path, how, flags);
}

EXPORT int euidaccess(const char *path, int how)
{
	return do_faccessat(AT_FDCWD, path, how, AT_EACCESS);
}

EXPORT int eaccess(const char *path, int how)
{
	return do_faccessat(AT_FDCWD, path, how, AT_EACCESS);
}

static ssize_t do_readlinkat(int dirfd, const char *path, char *buf, size_t size)
{
	char fake[PATH_MAX];

	path = fake_or_real(path, &dirfd, fake);
	return real.readlinkat(dirfd, path, buf, size);
}

EXPORT ssize_t readlink(const char *path, char *buf, size_t size)
{
	return do_readlinkat(AT_FDCWD, path, buf, size);
}

EXPORT ssize_t readlinkat(int dirfd, const char *path, char *buf, size_t size)
{
	return do_readlinkat(dirfd, path, buf, size);
}

EXPORT ssize_t __readlink_chk(const char *path, char *buf, size_t size, size_t buflen)
{
	if (size > buflen)
		__chk_fail();
	return do_readlinkat(AT_FDCWD, path, buf, size);
}

EXPORT ssize_t __readlinkat_chk(int dirfd, const char *path, char *buf, size_t size, size_t buflen)
{
	if (size > buflen)
		__chk_fail();
	return do_readlinkat(dirfd, path, buf, size);
}

EXPORT char *realpath(const char *path, char *resolved)
{
	char norm[PATH_MAX], fake[PATH_MAX];
	struct uiommu_stat ps;
	char *r;

	switch (classify(path, norm, fake)) {
	case ROUTE_ENGINE:
		if (engine_stat(norm, -1, &ps) < 0)
			return NULL;
		if (resolved)
			return strcpy(resolved, norm);
		r = strdup(norm);
		if (!r)
			errno = ENOMEM;
		return r;
	case ROUTE_FAKE:
		r = real.realpath(fake, resolved);
		if (r)
			strip_root(r);
		return r;
	default:
		return real.realpath(path, resolved);
	}
}

EXPORT char *__realpath_chk(const char *path, char *resolved, size_t resolvedlen)
{
	if (resolvedlen < PATH_MAX)
		__chk_fail();
	return realpath(path, resolved);
}

EXPORT char *canonicalize_file_name(const char *path)
{
	return realpath(path, NULL);
}

EXPORT DIR *opendir(const char *path)
{
	char fake[PATH_MAX];

	return real.opendir(fake_or_real(path, NULL, fake));
}
