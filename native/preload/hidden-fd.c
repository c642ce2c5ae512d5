/*
 * The library's socket hidden from the program: calls that only need that
 * guard (vector and positioned I/O, the socket calls, epoll) answer EBADF on its
 * number, as for an fd that is not open, and go to libc otherwise. The
 * entry points that also route engine fds check lib_fd() themselves.
 */
#include "preload.h"

#include <sys/epoll.h>

/* Call libc's `fn` unless `fd` is the library's socket. */
#define GUARDED(fd, fn, ...)                 \
	do {                                 \
		if (lib_fd(fd))              \
			return ebadf();      \
		ensure_init();               \
		return real.fn(__VA_ARGS__); \
	} while (0)

EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
	GUARDED(fd, readv, fd, iov, n);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
	GUARDED(fd, writev, fd, iov, n);
}

EXPORT off_t lseek(int fd, off_t off, int whence)
{
	GUARDED(fd, lseek, fd, off, whence);
}

EXPORT off64_t lseek64(int fd, off64_t off, int whence)
{
	GUARDED(fd, lseek, fd, off, whence);
}

EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	GUARDED(fd, send, fd, buf, len, flags);
}

EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	GUARDED(fd, recv, fd, buf, len, flags);
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
		      socklen_t tolen)
{
	GUARDED(fd, sendto, fd, buf, len, flags, to, tolen);
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
			socklen_t *fromlen)
{
	GUARDED(fd, recvfrom, fd, buf, len, flags, from, fromlen);
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	GUARDED(fd, sendmsg, fd, msg, flags);
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	GUARDED(fd, recvmsg, fd, msg, flags);
}

EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	GUARDED(fd, getsockopt, fd, level, name, val, len);
}

EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	GUARDED(fd, setsockopt, fd, level, name, val, len);
}

EXPORT int shutdown(int fd, int how)
{
	GUARDED(fd, shutdown, fd, how);
}

EXPORT int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	GUARDED(fd, getsockname, fd, addr, len);
}

EXPORT int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	GUARDED(fd, getpeername, fd, addr, len);
}

EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	if (lib_fd(fd))
		return ebadf();
	GUARDED(epfd, epoll_ctl, epfd, op, fd, ev);
}

EXPORT int epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
	GUARDED(epfd, epoll_wait, epfd, evs, max, timeout);
}

EXPORT int epoll_pwait(int epfd, struct epoll_event *evs, int max, int timeout,
		       const sigset_t *mask)
{
	GUARDED(epfd, epoll_pwait, epfd, evs, max, timeout, mask);
}

EXPORT int epoll_pwait2(int epfd, struct epoll_event *evs, int max, const struct timespec *timeout,
			const sigset_t *mask)
{
	GUARDED(epfd, epoll_pwait2, epfd, evs, max, timeout, mask);
}
