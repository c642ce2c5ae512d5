/*
 * Writes into the program's memory as the kernel's copy_to_user makes them:
 * an address that cannot be written ends the copy there, the bytes before it
 * written, and the program gets no signal. The bytes go into a staging
 * memfd that the library keeps mapped, and one preadv() from it into the
 * program's memory makes every piece: cheaper than a process_vm_writev of
 * ourselves, which looks our task up, checks ptrace access and pins each
 * page (an IOMMU_IOAS_IOVA_RANGES write-back of two pieces here: 1.5 against
 * 2.8 us). Reads keep process_vm_readv: a pwrite() into the file would be
 * subject to the program's RLIMIT_FSIZE (SIGXFSZ).
 *
 * The memfd is one of the library's fds, hidden from the program like its
 * socket (lib_fd): parked above the program's range of fd numbers,
 * close-on-exec, left out of close_range, moved by a dup2 onto it. A fork
 * child inherits its parent's file and makes its own on first use. Callers
 * hold the library's lock, as do the calls that move the fd. The file has a
 * few regions claimed atomically, so a nested call (from a signal handler)
 * stages in its own. Without a stage (no memfd, or every region taken),
 * process_vm_writev does the write.
 */
#include "preload.h"

#define REGIONS 4
#define REGION UIOMMU_WRITEBACK_MAX_BYTES
#define STAGE_BYTES (REGIONS * REGION)

int g_stage = -1;		 /* the memfd, -1 when none */
static uint8_t *g_stage_map;	 /* its mapping */
static pid_t g_stage_pid;	 /* the process that made it (a fork child did not) */
static uint32_t g_stage_claimed; /* regions in use, a bit each */
static int g_stage_off;		 /* it could not be made: no more tries */

/* Drops the stage (caller holds the lock): the mapping and the fd. */
static void stage_drop(void)
{
	if (g_stage_map)
		syscall(SYS_munmap, g_stage_map, STAGE_BYTES);
	if (g_stage >= 0)
		real.close(g_stage);
	g_stage_map = NULL;
	g_stage = -1;
	g_stage_claimed = 0;
}

/* This process's stage, made on first use; NULL when there is none. */
static uint8_t *stage(void)
{
	pid_t me = self_pid();
	uint8_t *map;
	int fd;

	if (g_stage_map && g_stage_pid == me)
		return g_stage_map;
	if (g_stage_map) /* a fork child: the file is its parent's */
		stage_drop();
	if (g_stage_off)
		return NULL;
	fd = (int)syscall(SYS_memfd_create, "uiommu-stage", MFD_CLOEXEC);
	if (fd < 0)
		goto off;
	if (syscall(SYS_ftruncate, fd, STAGE_BYTES))
		goto close;
	map = (uint8_t *)syscall(SYS_mmap, NULL, STAGE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
				 fd, 0);
	if (map == MAP_FAILED)
		goto close;
	g_stage = lib_park(fd, 1);
	g_stage_map = map;
	g_stage_pid = me;
	return map;
close:
	real.close(fd);
off:
	g_stage_off = 1;
	return NULL;
}

/* A free region's index, now claimed; -1 when all are taken. */
static int claim(void)
{
	uint32_t used = __atomic_load_n(&g_stage_claimed, __ATOMIC_RELAXED);
	int i;

	do {
		if (used == (1u << REGIONS) - 1)
			return -1;
		i = __builtin_ctz(~used);
	} while (!__atomic_compare_exchange_n(&g_stage_claimed, &used, used | (1u << i), 1,
					      __ATOMIC_ACQUIRE, __ATOMIC_RELAXED));
	return i;
}

ssize_t write_own(const struct iovec *to, int n, const void *bytes, size_t len)
{
	uint8_t *map = stage();
	struct iovec from = { .iov_base = (void *)bytes, .iov_len = len };
	ssize_t done;
	int r;

	if (!map || len > REGION || (r = claim()) < 0)
		return process_vm_writev(self_pid(), &from, 1, to, n, 0);
	memcpy(map + (size_t)r * REGION, bytes, len);
	done = syscall(SYS_preadv, g_stage, to, n, (long)((size_t)r * REGION), 0L);
	__atomic_fetch_and(&g_stage_claimed, ~(1u << r), __ATOMIC_RELEASE);
	return done;
}

void stage_move(void)
{
	int n;

	if (g_stage < 0)
		return;
	n = real.fcntl(g_stage, F_DUPFD_CLOEXEC, UIOMMU_SOCK_FD_MIN);
	if (n < 0)
		n = real.fcntl(g_stage, F_DUPFD_CLOEXEC, 3);
	if (n < 0) {
		stage_drop();
		return;
	}
	real.close(g_stage);
	g_stage = n;
}

void stage_repark(void)
{
	if (g_stage >= 0 && g_stage_pid == self_pid())
		g_stage = lib_park(g_stage, 1);
}
