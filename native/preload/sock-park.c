/*
 * Where the library's fds (its socket, its staging memfd, its channel's
 * doorbell) live: out of the program's range of fd numbers. The program gets
 * fds below its RLIMIT_NOFILE soft limit, so the library's k-th fd (the
 * socket 0, the stage 1, the doorbell 2) is parked at the soft limit + k
 * when the hard limit leaves room (the soft limit is raised for the F_DUPFD
 * and put back: an fd above the limit stays open), else at the top of the
 * range, soft limit - 1 - k. Parking is
 * capped at SOCK_PARK_CEIL: the kernel sizes a process's fd table to its
 * highest fd, and a program that raises its limit to the hard one (QEMU
 * does) should not pay megabytes for it. When the program changes its
 * RLIMIT_NOFILE the fds follow, so they stay out of the new range.
 */
#include "preload.h"

#include <sys/resource.h>

/* Highest parking place + 1: an fd table of 64 Ki entries, 512 KiB of kernel memory. */
#define SOCK_PARK_CEIL (1 << 16)

static int nofile(pid_t pid, const struct rlimit *set, struct rlimit *old)
{
	return syscall(SYS_prlimit64, pid, RLIMIT_NOFILE, set, old);
}

/* fd `s` duplicated at parking place `k` (close-on-exec), or -1. */
static int park_at_limit(int s, int k)
{
	struct rlimit rl, up;
	int n;

	if (nofile(0, NULL, &rl))
		return -1;
	if (rl.rlim_cur < (rlim_t)(SOCK_PARK_CEIL - k) && rl.rlim_cur + k < rl.rlim_max) {
		if ((rlim_t)s == rl.rlim_cur + k)
			return s;
		up = (struct rlimit){ rl.rlim_cur + k + 1, rl.rlim_max };
		if (nofile(0, &up, NULL))
			return -1;
		n = real.fcntl(s, F_DUPFD_CLOEXEC, (int)(rl.rlim_cur + k));
		nofile(0, &rl, NULL);
		return n;
	}
	n = (rl.rlim_cur < SOCK_PARK_CEIL ? (int)rl.rlim_cur : SOCK_PARK_CEIL) - 1 - k;
	return s == n ? s : real.fcntl(s, F_DUPFD_CLOEXEC, n);
}

int lib_park(int s, int k)
{
	int saved = errno, n = park_at_limit(s, k);

	if (n < 0 && s < UIOMMU_SOCK_FD_MIN)
		n = real.fcntl(s, F_DUPFD_CLOEXEC, UIOMMU_SOCK_FD_MIN);
	if (n >= 0 && n != s) {
		real.close(s);
		s = n;
	}
	errno = saved;
	return s;
}

int sock_park(int s)
{
	return lib_park(s, 0);
}

/* After the program changed its RLIMIT_NOFILE: the library's fds follow. */
static void limit_changed(void)
{
	struct guard g;

	enter(&g);
	if (g_sock >= 0 && g_conn_pid == getpid())
		g_sock = sock_park(g_sock);
	stage_repark();
	chan_repark();
	leave(&g);
}

/* prlimit on this process's RLIMIT_NOFILE and the setrlimit family, for `pid` 0 or ours. */
static int do_prlimit(pid_t pid, int resource, const struct rlimit *set, struct rlimit *old)
{
	int r;

	ensure_init();
	r = syscall(SYS_prlimit64, pid, resource, set, old);
	if (!r && set && resource == RLIMIT_NOFILE && g_active && (!pid || pid == getpid()))
		limit_changed();
	if (!r && set && resource == RLIMIT_FSIZE && (!pid || pid == getpid()))
		stage_fsize(set);
	return r;
}

EXPORT int setrlimit(__rlimit_resource_t resource, const struct rlimit *rl)
{
	return do_prlimit(0, resource, rl, NULL);
}

/* struct rlimit64 is struct rlimit on 64-bit. */
EXPORT int setrlimit64(__rlimit_resource_t resource, const struct rlimit64 *rl)
{
	return do_prlimit(0, resource, (const struct rlimit *)rl, NULL);
}

EXPORT int prlimit(pid_t pid, __rlimit_resource_t resource, const struct rlimit *set,
		   struct rlimit *old)
{
	return do_prlimit(pid, resource, set, old);
}

EXPORT int prlimit64(pid_t pid, __rlimit_resource_t resource, const struct rlimit64 *set,
		     struct rlimit64 *old)
{
	return do_prlimit(pid, resource, (const struct rlimit *)set, (struct rlimit *)old);
}
