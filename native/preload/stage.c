/*
 * Copies between the program's memory and the library's as the kernel's
 * copy_from_user and copy_to_user make them: an address that cannot be read
 * (written) ends the copy there, the bytes before it copied, and the
 * program gets no signal. Through a staging memfd that the library keeps
 * mapped: one preadv() from it into the program's memory makes every piece
 * of a write, one pwrite() from the program's memory into it a read. Both
 * are cheaper than a process_vm_writev/readv of ourselves, which looks our
 * task up, checks ptrace access and pins each page (an IOMMU_IOAS_IOVA_RANGES
 * write-back of two pieces here: 1.5 against 2.8 us).
 *
 * A pwrite() into a file is bounded by the program's RLIMIT_FSIZE, and one
 * at or past the limit sends SIGXFSZ: reads are staged at offset 0 only,
 * and only while the limit (read when the stage is made, followed through
 * setrlimit and prlimit) is not 0; one cut short by it is made again by
 * process_vm_readv. Not covered: a limit of 0 set behind the library's back
 * (a raw prlimit system call, or another process's prlimit on us), which
 * would bring SIGXFSZ on the next staged read.
 *
 * The memfd is one of the library's fds, hidden from the program like its
 * socket (lib_fd): parked above the program's range of fd numbers,
 * close-on-exec, left out of close_range, moved by a dup2 onto it. A fork
 * child inherits its parent's file and makes its own on first use. Callers
 * hold the library's lock, as do the calls that move the fd. The file has a
 * few regions claimed atomically (the read region is the first), so a
 * nested call (from a signal handler) stages in its own. Without a stage
 * (no memfd, or the regions taken), process_vm_writev/readv do the copy.
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
static int g_fsize_zero;	 /* RLIMIT_FSIZE is 0: no staged reads */

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

/* Makes this process's stage (signals blocked), replacing one inherited over fork. */
static void stage_make(pid_t me)
{
	uint8_t *map;
	int fd;

	if (g_stage_map) /* a fork child: the file is its parent's */
		stage_drop();
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
	stage_fsize(NULL);
	return;
close:
	real.close(fd);
off:
	g_stage_off = 1;
}

/*
 * This process's stage, made on first use; NULL when there is none. It is
 * made with signals blocked, so a signal handler's call never finds it half
 * made.
 */
static uint8_t *stage(void)
{
	pid_t me = self_pid();
	sigset_t all, old;

	if (g_stage_map && g_stage_pid == me)
		return g_stage_map;
	if (g_stage_off)
		return NULL;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (!g_stage_map || g_stage_pid != me)
		stage_make(me);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return g_stage_map && g_stage_pid == me ? g_stage_map : NULL;
}

/* A region's index among those of `mask`, now claimed; -1 when all of them are taken. */
static int claim(uint32_t mask)
{
	uint32_t used = __atomic_load_n(&g_stage_claimed, __ATOMIC_RELAXED);
	int i;

	do {
		if (!(~used & mask))
			return -1;
		i = __builtin_ctz(~used & mask);
	} while (!__atomic_compare_exchange_n(&g_stage_claimed, &used, used | (1u << i), 1,
					      __ATOMIC_ACQUIRE, __ATOMIC_RELAXED));
	return i;
}

static void release(int i)
{
	__atomic_fetch_and(&g_stage_claimed, ~(1u << i), __ATOMIC_RELEASE);
}

ssize_t write_own(const struct iovec *to, int n, const void *bytes, size_t len)
{
	uint8_t *map;
	struct iovec from = { .iov_base = (void *)bytes, .iov_len = len };
	ssize_t done;
	int r, i;

	for (i = 0; i < n && stack_holds((uintptr_t)to[i].iov_base, to[i].iov_len); i++)
		;
	if (i == n) {
		for (i = 0, done = 0; i < n; done += (ssize_t)to[i++].iov_len)
			memcpy(to[i].iov_base, (const uint8_t *)bytes + done, to[i].iov_len);
		return done;
	}
	map = stage();
	if (!map || len > REGION || (r = claim(~1u & ((1u << REGIONS) - 1))) < 0)
		return process_vm_writev(self_pid(), &from, 1, to, n, 0);
	memcpy(map + (size_t)r * REGION, bytes, len);
	done = syscall(SYS_preadv, g_stage, to, n, (long)((size_t)r * REGION), 0L);
	release(r);
	return done;
}

size_t read_user(void *dst, uintptr_t src, size_t len)
{
	uint8_t *map;
	ssize_t done;

	if (stack_holds(src, len)) {
		memcpy(dst, (const void *)src, len);
		return len;
	}
	map = stage();
	if (!map || !len || len > REGION || __atomic_load_n(&g_fsize_zero, __ATOMIC_RELAXED) ||
	    claim(1u) < 0)
		return read_own(dst, src, len);
	done = syscall(SYS_pwrite64, g_stage, (void *)src, len, 0L);
	if (done == (ssize_t)len)
		memcpy(dst, map, len);
	release(0);
	/* short (a fault, or a small RLIMIT_FSIZE): process_vm_readv says how far it reads */
	return done == (ssize_t)len ? len : read_own(dst, src, len);
}

void stage_fsize(const struct rlimit *set)
{
	struct rlimit rl;

	if (!set && syscall(SYS_prlimit64, 0, RLIMIT_FSIZE, NULL, &rl))
		return;
	__atomic_store_n(&g_fsize_zero, (set ? set : &rl)->rlim_cur == 0, __ATOMIC_RELAXED);
}

void stage_move(void)
{
	int n;

	if (g_stage < 0)
		return;
	n = lib_move(g_stage);
	if (n < 0)
		stage_drop();
	else
		g_stage = n;
}

void stage_repark(void)
{
	if (g_stage >= 0 && g_stage_pid == self_pid())
		g_stage = lib_park(g_stage, 1);
}
