/* The real functions: libc's definitions behind ours, with system-call fallbacks. */
#include "preload.h"

struct real_fns real;

/* fstatat through the kernel, for a libc without an fstatat symbol. */
static int sys_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
#ifdef SYS_newfstatat
	return syscall(SYS_newfstatat, dirfd, path, st, flags);
#else
	return syscall(SYS_fstatat64, dirfd, path, st, flags);
#endif
}

int sys_statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *stx)
{
	return syscall(SYS_statx, dirfd, path, flags, mask, stx);
}

static int sys_close_range(unsigned int first, unsigned int last, int flags)
{
	return syscall(SYS_close_range, first, last, flags);
}

static void *next(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

void resolve(void)
{
	real.openat = next("openat");
	real.fopen = next("fopen");
	real.close = next("close");
	real.close_range = next("close_range");
	real.ioctl = next("ioctl");
	real.read = next("read");
	real.write = next("write");
	real.pread = next("pread64");
	real.pwrite = next("pwrite64");
	real.dup = next("dup");
	real.dup2 = next("dup2");
	real.dup3 = next("dup3");
	real.fcntl = next("fcntl");
	real.fcntl64 = next("fcntl64");
	real.fork = next("fork");
	real.execve = next("execve");
	real.execvpe = next("execvpe");
	real.fexecve = next("fexecve");
	real.fstatat = next("fstatat");
	real.statx = next("statx");
	real.faccessat = next("faccessat");
	real.readlinkat = next("readlinkat");
	real.realpath = next("realpath");
	real.opendir = next("opendir");
	real.scandir = next("scandir");
	real.readdir = next("readdir");
	real.readdir_r = next("readdir_r");
	real.readv = next("readv");
	real.writev = next("writev");
	real.lseek = next("lseek64");
	real.send = next("send");
	real.recv = next("recv");
	real.sendto = next("sendto");
	real.recvfrom = next("recvfrom");
	real.sendmsg = next("sendmsg");
	real.recvmsg = next("recvmsg");
	real.getsockopt = next("getsockopt");
	real.setsockopt = next("setsockopt");
	real.shutdown = next("shutdown");
	real.getsockname = next("getsockname");
	real.getpeername = next("getpeername");
	real.epoll_ctl = next("epoll_ctl");
	real.epoll_wait = next("epoll_wait");
	real.epoll_pwait = next("epoll_pwait");
	real.epoll_pwait2 = next("epoll_pwait2");
	real.poll = next("poll");
	real.ppoll = next("ppoll");
	real.select = next("select");
	real.pselect = next("pselect");
	if (!real.fcntl64)
		real.fcntl64 = real.fcntl;
	if (!real.fstatat)
		real.fstatat = sys_fstatat;
	if (!real.statx)
		real.statx = sys_statx;
	if (!real.close_range)
		real.close_range = sys_close_range;
}
