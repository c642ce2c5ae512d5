/* The fd table: close, close_range, dup*, fcntl(F_DUPFD*) keep the engine's view in step. */
#include "preload.h"

EXPORT int close(int fd)
{
	int r, e;
	struct guard g;

	ensure_init();
	if (lib_fd(fd))
		return ebadf();
	if (!bit_test(fd))
		return real.close(fd);
	enter(&g);
	if (bit_test(fd))
		engine_forget(fd);
	r = real.close(fd);
	e = errno;
	leave(&g);
	errno = e;
	return r;
}

int lib_move(int fd)
{
	int n = real.fcntl(fd, F_DUPFD_CLOEXEC, UIOMMU_SOCK_FD_MIN);

	if (n < 0)
		n = real.fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (n >= 0)
		real.close(fd);
	return n;
}

/* Moves our socket out of the way of a dup onto its number (caller holds the lock). */
static void move_sock(void)
{
	int n = lib_move(g_sock);

	if (n >= 0)
		g_sock = n;
}

/* The real close_range over [first, last] but for the library's fds (caller holds the lock). */
static int close_around(unsigned int first, unsigned int last, int flags)
{
	int keep[LIB_FDS], i, r;

	lib_fds(keep);
	for (i = 0; i < LIB_FDS; i++) {
		unsigned int k = (unsigned int)keep[i];

		if (keep[i] < 0 || k < first || k > last)
			continue;
		if (k > first && (r = real.close_range(first, k - 1, flags)))
			return r;
		if (k == last)
			return 0;
		first = k + 1;
	}
	return real.close_range(first, last, flags);
}

EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	struct guard g;
	unsigned int fd, end;
	int r, e;

	ensure_init();
	if (!g_active || first > last || (flags & CLOSE_RANGE_CLOEXEC))
		return real.close_range(first, last, flags);
	enter(&g);
	end = last < MAX_FDS - 1 ? last : MAX_FDS - 1;
	for (fd = first; fd <= end && fd < MAX_FDS; fd++) {
		if (!g_bits[fd / LONG_BITS]) {
			fd |= LONG_BITS - 1;
			continue;
		}
		if (bit_test(fd))
			engine_forget(fd);
	}
	r = close_around(first, last, flags);
	e = errno;
	leave(&g);
	errno = e;
	return r;
}

EXPORT void closefrom(int lowfd)
{
	if (lowfd >= 0)
		close_range(lowfd, ~0U, 0);
}

EXPORT int dup(int oldfd)
{
	struct guard g;
	int r, e;

	if (lib_fd(oldfd))
		return ebadf();
	if (!bit_test(oldfd)) {
		ensure_init();
		return real.dup(oldfd);
	}
	enter(&g);
	r = real.dup(oldfd);
	e = errno;
	if (r >= 0 && bit_test(oldfd))
		engine_dup(oldfd, r);
	leave(&g);
	errno = e;
	return r;
}

/* dup2 (flags < 0) and dup3 with the engine's view kept in step. */
static int do_dup3(int oldfd, int newfd, int flags)
{
	struct guard g;
	int r, e;

	ensure_init();
#define REAL_DUP() (flags < 0 ? real.dup2(oldfd, newfd) : real.dup3(oldfd, newfd, flags))
	if (lib_fd(oldfd))
		return ebadf();
	if (oldfd == newfd || (flags > 0 && (flags & ~O_CLOEXEC)))
		return REAL_DUP();
	if (lib_fd(newfd)) {
		enter(&g);
		if (newfd == g_sock)
			move_sock();
		else if (newfd == g_stage)
			stage_move();
		else
			chan_move_bell();
		leave(&g);
	}
	if (!bit_test(oldfd) && !bit_test(newfd))
		return REAL_DUP();
	enter(&g);
	if (bit_test(newfd) && !bit_test(oldfd)) {
		if (real.fcntl(oldfd, F_GETFD) < 0) {
			e = errno;
			leave(&g);
			errno = e;
			return -1;
		}
		engine_forget(newfd);
	}
	r = REAL_DUP();
	e = errno;
	if (r >= 0 && bit_test(oldfd))
		engine_dup(oldfd, newfd);
	leave(&g);
	errno = e;
	return r;
#undef REAL_DUP
}

EXPORT int dup2(int oldfd, int newfd)
{
	return do_dup3(oldfd, newfd, -1);
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
	return do_dup3(oldfd, newfd, flags);
}

static int do_fcntl(int (*fn)(int, int, ...), int fd, int cmd, void *arg)
{
	struct guard g;
	int r, e;

	if (lib_fd(fd))
		return ebadf();
	if ((cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC) || !bit_test(fd))
		return fn(fd, cmd, arg);
	enter(&g);
	r = fn(fd, cmd, arg);
	e = errno;
	if (r >= 0 && bit_test(fd))
		engine_dup(fd, r);
	leave(&g);
	errno = e;
	return r;
}

/* fcntl and fcntl64: one variadic entry each, passing the argument word on to do_fcntl. */
#define FCNTL_ENTRY(name)                                 \
	EXPORT int name(int fd, int cmd, ...)             \
	{                                                 \
		va_list ap;                               \
		void *arg;                                \
                                                          \
		va_start(ap, cmd);                        \
		arg = va_arg(ap, void *);                 \
		va_end(ap);                               \
		ensure_init();                            \
		return do_fcntl(real.name, fd, cmd, arg); \
	}

FCNTL_ENTRY(fcntl)
FCNTL_ENTRY(fcntl64)
