/* The open family: open*, creat*, fopen* and their _FORTIFY_SOURCE entry points. */
#include "preload.h"

/*
 * Routes an open: the engine's view of a status file, a fail-nth file (the
 * engine's), an engine node, the fake tree, or libc.
 */
static int do_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	char norm[PATH_MAX], fake[PATH_MAX];
	pid_t pid = status_pid(path);

	if (pid > 0) {
		int fd = status_open(pid, flags);

		if (fd >= 0)
			return fd;
	}
	if (fail_nth_path(path, norm))
		return engine_open(norm, flags);
	switch (classify(path, norm, fake)) {
	case ROUTE_ENGINE:
		return engine_open(norm, flags);
	case ROUTE_FAKE:
		/* a generated file: a snapshot to read, the engine's file to write */
		if (engine_attr(norm))
			return (flags & O_ACCMODE) == O_RDONLY ? attr_open(norm, flags)
							       : engine_open(norm, flags);
		return real.openat(AT_FDCWD, fake, flags, mode);
	default:
		return real.openat(dirfd, path, flags, mode);
	}
}

#define OPEN_MODE(flags, mode)                                               \
	do {                                                                 \
		if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) { \
			va_list ap;                                          \
			va_start(ap, flags);                                 \
			mode = va_arg(ap, int);                              \
			va_end(ap);                                          \
		}                                                            \
	} while (0)

EXPORT int open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return do_openat(AT_FDCWD, path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return do_openat(AT_FDCWD, path, flags, mode);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return do_openat(dirfd, path, flags, mode);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return do_openat(dirfd, path, flags, mode);
}

/* The _FORTIFY_SOURCE entry points (no mode: O_CREAT is refused by the compiler). */
EXPORT int __open_2(const char *path, int flags)
{
	return do_openat(AT_FDCWD, path, flags, 0);
}

EXPORT int __open64_2(const char *path, int flags)
{
	return do_openat(AT_FDCWD, path, flags, 0);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	return do_openat(dirfd, path, flags, 0);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	return do_openat(dirfd, path, flags, 0);
}

EXPORT int creat(const char *path, mode_t mode)
{
	return do_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

EXPORT int creat64(const char *path, mode_t mode)
{
	return do_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

/*
 * stdio streams on the fake tree, and on the engine's view of a status file
 * (read-only modes); an engine path is not rewritten (stdio would not reach
 * the engine).
 */
static FILE *do_fopen(const char *path, const char *how)
{
	char fake[PATH_MAX], norm[PATH_MAX];
	pid_t pid = status_pid(path);
	int reading = how && how[0] == 'r' && !strchr(how, '+');
	int cloexec = how && strchr(how, 'e') ? O_CLOEXEC : 0;

	/* a generated file read through stdio: a snapshot (stdio would not reach the engine) */
	if (reading && classify(path, norm, fake) == ROUTE_FAKE && engine_attr(norm)) {
		int fd = attr_open(norm, O_RDONLY | cloexec);
		FILE *f = fd < 0 ? NULL : fdopen(fd, how);
		int e = errno;

		if (!f && fd >= 0)
			real.close(fd);
		errno = e;
		return f;
	}
	if (pid > 0 && reading) {
		int fd = status_open(pid, O_RDONLY | cloexec);

		if (fd >= 0) {
			FILE *f = fdopen(fd, how);
			int e = errno;

			if (!f)
				real.close(fd);
			errno = e;
			return f;
		}
	}
	return real.fopen(fake_or_real(path, NULL, fake), how);
}

EXPORT FILE *fopen(const char *path, const char *how)
{
	return do_fopen(path, how);
}

EXPORT FILE *fopen64(const char *path, const char *how)
{
	return do_fopen(path, how);
}
