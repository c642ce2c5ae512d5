/*
 * poll, ppoll, select and pselect with the library's socket among their
 * fds answer as Linux does for an fd that is not open: poll reports
 * POLLNVAL in that entry's revents and counts it (so it does not wait);
 * select fails with EBADF before waiting.
 */
#include "preload.h"

/* How many entries of `fds` name the socket. */
static nfds_t hidden_entries(const struct pollfd *fds, nfds_t n)
{
	nfds_t i, hidden = 0;

	if (g_sock < 0)
		return 0;
	for (i = 0; i < n; i++)
		hidden += lib_fd(fds[i].fd);
	return hidden;
}

/*
 * The socket's entries answer POLLNVAL: the others are polled without
 * waiting (by ppoll with `mask` when `with_mask`), on a copy where the
 * socket's fd is -1, an entry poll skips.
 */
static int poll_around(struct pollfd *fds, nfds_t n, nfds_t hidden, int with_mask,
		       const sigset_t *mask)
{
	struct pollfd *copy = malloc(n * sizeof(*fds));
	struct timespec zero = { 0, 0 };
	nfds_t i;
	int r;

	if (!copy) {
		errno = ENOMEM;
		return -1;
	}
	for (i = 0; i < n; i++)
		copy[i] = (struct pollfd){ lib_fd(fds[i].fd) ? -1 : fds[i].fd, fds[i].events, 0 };
	r = with_mask ? real.ppoll(copy, n, &zero, mask) : real.poll(copy, n, 0);
	if (r >= 0) {
		for (i = 0; i < n; i++)
			fds[i].revents = lib_fd(fds[i].fd) ? POLLNVAL : copy[i].revents;
		r += hidden;
	}
	free(copy);
	return r;
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	nfds_t hidden;

	ensure_init();
	hidden = hidden_entries(fds, n);
	return hidden ? poll_around(fds, n, hidden, 0, NULL) : real.poll(fds, n, timeout);
}

EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask)
{
	nfds_t hidden;

	ensure_init();
	hidden = hidden_entries(fds, n);
	return hidden ? poll_around(fds, n, hidden, 1, mask) : real.ppoll(fds, n, timeout, mask);
}

EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		__chk_fail();
	return poll(fds, n, timeout);
}

EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
		       const sigset_t *mask, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		__chk_fail();
	return ppoll(fds, n, timeout, mask);
}

/* The socket is marked in one of select's sets (of `nfds` bits). */
static int selects_sock(int nfds, fd_set *r, fd_set *w, fd_set *e)
{
	int s = g_sock;
	unsigned long bit;
	fd_set *sets[3] = { r, w, e };
	int i;

	if (s < 0 || s >= nfds)
		return 0;
	bit = 1UL << (s % LONG_BITS);
	for (i = 0; i < 3; i++)
		if (sets[i] && (((unsigned long *)sets[i])[s / LONG_BITS] & bit))
			return 1;
	return 0;
}

EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout)
{
	ensure_init();
	if (selects_sock(nfds, r, w, e))
		return ebadf();
	return real.select(nfds, r, w, e, timeout);
}

EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *timeout,
		   const sigset_t *mask)
{
	ensure_init();
	if (selects_sock(nfds, r, w, e))
		return ebadf();
	return real.pselect(nfds, r, w, e, timeout, mask);
}
