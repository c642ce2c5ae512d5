/*
 * poll, ppoll, select and pselect with one of the library's fds (its socket,
 * its staging memfd) among theirs answer as Linux does for an fd that is not
 * open: poll reports POLLNVAL in that entry's revents and counts it (so it
 * does not wait); select fails with EBADF before waiting.
 */
#include "preload.h"

/* More entries than any RLIMIT_NOFILE allows: poll itself answers EINVAL. */
#define POLL_MAX_ENTRIES (1u << 20)

/*
 * How many entries of `fds` name the library's fds; 0 when the array is not
 * all readable (or longer than any fd table), which poll itself then refuses
 * (EFAULT, EINVAL) without the library touching it.
 */
static nfds_t hidden_entries(const struct pollfd *fds, nfds_t n)
{
	struct pollfd chunk[64];
	nfds_t i, k, m, hidden = 0;

	if ((g_sock < 0 && g_stage < 0 && g_bell < 0) || n > POLL_MAX_ENTRIES)
		return 0;
	for (i = 0; i < n; i += m) {
		m = n - i < 64 ? n - i : 64;
		if (read_own(chunk, (uintptr_t)(fds + i), m * sizeof(*fds)) != m * sizeof(*fds))
			return 0;
		for (k = 0; k < m; k++)
			hidden += lib_fd(chunk[k].fd);
	}
	return hidden;
}

/*
 * The library's fds' entries answer POLLNVAL: the others are polled without
 * waiting (by ppoll with `mask` when `with_mask`), on a copy where the
 * library's fds are -1, an entry poll skips.
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

/*
 * One of the library's fds is marked in one of select's sets (of `nfds`
 * bits). A set whose word for it is unreadable counts as unmarked: select
 * itself then answers EBADF or EFAULT.
 */
static int selects_lib(int nfds, fd_set *r, fd_set *w, fd_set *e)
{
	int lib[LIB_FDS], i, j;
	fd_set *sets[3] = { r, w, e };
	unsigned long word;

	lib_fds(lib);
	for (j = 0; j < LIB_FDS; j++) {
		int s = lib[j];

		if (s < 0 || s >= nfds)
			continue;
		for (i = 0; i < 3; i++) {
			uintptr_t at = (uintptr_t)((unsigned long *)sets[i] + s / LONG_BITS);

			if (sets[i] && read_own(&word, at, sizeof(word)) == sizeof(word) &&
			    (word >> (s % LONG_BITS) & 1))
				return 1;
		}
	}
	return 0;
}

EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout)
{
	ensure_init();
	if (selects_lib(nfds, r, w, e))
		return ebadf();
	return real.select(nfds, r, w, e, timeout);
}

EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *timeout,
		   const sigset_t *mask)
{
	ensure_init();
	if (selects_lib(nfds, r, w, e))
		return ebadf();
	return real.pselect(nfds, r, w, e, timeout, mask);
}
