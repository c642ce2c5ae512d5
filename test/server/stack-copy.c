/*
 * The library's copies of the caller's own stack without a system call
 * (native/preload/stack-copy.c), under `uiommu run`. Whether a call staged
 * its copies shows in the thread's read and write system call counts
 * (/proc/thread-self/io: the staging pwrite and preadv count there, the
 * channel's futex and doorbell do not). IOMMU_IOAS_IOVA_RANGES, which
 * reads its struct and writes it and its array back:
 * - from the main thread's stack, each thread's, a fork child's, a vfork
 *   child's and an exec'd program's: the kernel's answer, with no staging;
 * - from a signal handler on an alternate stack, a coroutine's stack, or
 *   pointing into the interrupted frames from there: the answer, staged;
 * - a struct across the main stack's top, in the guard page below a
 *   thread's: EFAULT; just below the main stack's start: the stack grows
 *   down to it, as for the kernel's copy_from_user;
 * - a page of a thread's stack made read-only, unmapped, moved away or a
 *   guard page through libc (in a fork child each): EFAULT and nothing
 *   written, no signal; after that that stack's copies stage;
 * - a thread whose first call ran on a coroutine: later calls on its own
 *   stack are not staged (it looks its stack up again).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>

#include "../../test/server/hostile-check.h"
#include "uiommu-uapi.h"

enum { CALLS = 200 };

static int g_fd;
static uint32_t g_ioas;

/* This thread's I/O counts so far (/proc/thread-self/io): read calls, write calls, bytes written. */
struct io {
	long syscr, syscw, wchar;
};

static struct io io_now(void)
{
	char buf[512], *at;
	struct io io = { -1, -1, -1 };
	int fd = open("/proc/thread-self/io", O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return io;
	buf[n] = 0;
	if ((at = strstr(buf, "syscr: ")))
		io.syscr = atol(at + 7);
	if ((at = strstr(buf, "syscw: ")))
		io.syscw = atol(at + 7);
	if ((at = strstr(buf, "wchar: ")))
		io.wchar = atol(at + 7);
	return io;
}

/*
 * The staged copies between two io_now(): the reads (a write-back's
 * preadv; the first io_now's own read is one) plus the writes of more than
 * the doorbell's 8 bytes (an argument's pwrite), counted by their bytes
 * over 32.
 */
static long staged_between(struct io a, struct io b)
{
	long reads = b.syscr - a.syscr - 1, big = b.wchar - a.wchar - 8 * (b.syscw - a.syscw);

	return a.syscr < 0 || b.syscr < 0 ? -1 : reads + big / 32;
}

/* One IOVA_RANGES through `q` (its array at `ranges`, 2 entries): 1 when the answer is the kernel's. */
static int ranges_once(struct iommu_ioas_iova_ranges *q, struct iommu_iova_range *ranges)
{
	memset(ranges, 0xee, 2 * sizeof(*ranges));
	*q = (struct iommu_ioas_iova_ranges){ .size = sizeof(*q),
					      .ioas_id = g_ioas,
					      .num_iovas = 2,
					      .allowed_iovas = (uintptr_t)ranges };
	return !ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, q) && q->num_iovas == 1 &&
	       ranges[0].start == 0 && ranges[0].last == UINT64_MAX && q->out_iova_alignment == 1 &&
	       ranges[1].start == 0xeeeeeeeeeeeeeeeeULL;
}

/*
 * One IOVA_RANGES through `q` and `ranges` (a thread's first looks its
 * stack up), then CALLS more: 1 when every answer is the kernel's;
 * *staged gets the staged copies of the CALLS (staged_between).
 */
static int ranges_at(struct iommu_ioas_iova_ranges *q, struct iommu_iova_range *ranges,
		     long *staged)
{
	int ok = ranges_once(q, ranges);
	struct io before = io_now();

	for (int i = 0; i < CALLS && ok; i++)
		ok = ranges_once(q, ranges);
	*staged = staged_between(before, io_now());
	return ok;
}

/* ranges_at() with the struct and array in this frame. */
static int ranges_here(long *staged)
{
	struct iommu_ioas_iova_ranges q;
	struct iommu_iova_range ranges[2];

	return ranges_at(&q, ranges, staged);
}

/* Checks CALLS calls from the current stack: right, and staged or not. */
static void check_here(const char *name, int want_staged)
{
	char detail[80];
	long staged;
	int ok = ranges_here(&staged);

	snprintf(detail, sizeof(detail), "answers right %d, staged copies %ld", ok, staged);
	check(name, ok && (want_staged ? staged >= CALLS : staged >= 0 && staged < CALLS / 10),
	      detail);
}

static void *thread_main(void *arg)
{
	long *staged = arg;

	return (void *)(intptr_t)ranges_here(staged);
}

/* Four threads at once, and one on a stack of the program's own: each its own bounds. */
static void threads(void)
{
	enum { N = 4 };
	pthread_t t[N + 1];
	pthread_attr_t attr;
	long staged[N + 1];
	size_t size = 256 * 1024;
	void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int ok = 1, direct = 1;
	char detail[120];
	void *r;

	pthread_attr_init(&attr);
	pthread_attr_setstack(&attr, stack, size);
	for (int i = 0; i <= N; i++)
		pthread_create(&t[i], i < N ? NULL : &attr, thread_main, &staged[i]);
	for (int i = 0; i <= N; i++) {
		pthread_join(t[i], &r);
		ok &= r != NULL;
		direct &= staged[i] >= 0 && staged[i] < CALLS / 10;
	}
	snprintf(detail, sizeof(detail), "answers right %d, staged copies %ld %ld %ld %ld %ld", ok,
		 staged[0], staged[1], staged[2], staged[3], staged[4]);
	check("5 threads at once (one on a stack of its own): right, not staged", ok && direct,
	      detail);
}

static struct iommu_ioas_iova_ranges *g_interrupted_q;
static struct iommu_iova_range *g_interrupted_ranges;
static int g_alt_ok, g_alt_into_ok;
static long g_alt_staged, g_alt_into_staged;

static void on_signal(int sig)
{
	(void)sig;
	g_alt_ok = ranges_here(&g_alt_staged);
	g_alt_into_ok = ranges_at(g_interrupted_q, g_interrupted_ranges, &g_alt_into_staged);
}

/* A handler on an alternate stack: its own frames and the interrupted ones are staged. */
static void alt_stack(void)
{
	stack_t ss = { .ss_size = 64 * 1024 };
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_ONSTACK };
	struct iommu_ioas_iova_ranges q;
	struct iommu_iova_range ranges[2];
	char detail[80];

	ss.ss_sp = malloc(ss.ss_size);
	sigaltstack(&ss, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	g_interrupted_q = &q;
	g_interrupted_ranges = ranges;
	raise(SIGUSR1);
	snprintf(detail, sizeof(detail), "right %d, staged copies %ld", g_alt_ok, g_alt_staged);
	check("a handler on a sigaltstack, its own frames: right, staged",
	      g_alt_ok && g_alt_staged >= CALLS, detail);
	snprintf(detail, sizeof(detail), "right %d, staged copies %ld", g_alt_into_ok,
		 g_alt_into_staged);
	check("a handler on a sigaltstack, into the interrupted frames: right, staged",
	      g_alt_into_ok && g_alt_into_staged >= CALLS, detail);
}

static ucontext_t g_main_ctx, g_co_ctx;

static void coroutine(void)
{
	check_here("a coroutine on a stack of the program's (makecontext): right, staged", 1);
}

static void coroutine_stack(void)
{
	size_t size = 128 * 1024;

	getcontext(&g_co_ctx);
	g_co_ctx.uc_stack.ss_sp = mmap(NULL, size, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	g_co_ctx.uc_stack.ss_size = size;
	g_co_ctx.uc_link = &g_main_ctx;
	makecontext(&g_co_ctx, coroutine, 0);
	swapcontext(&g_main_ctx, &g_co_ctx);
}

static void *coroutine_first(void *arg)
{
	(void)arg;
	coroutine_stack();
	check_here("a thread whose first call ran on a coroutine: its own stack, not staged", 0);
	return NULL;
}

/*
 * The main thread's [stack] mapping from /proc/self/maps, where the one
 * before it ends and where the next one starts.
 */
static int main_stack(uintptr_t *lo, uintptr_t *hi, uintptr_t *prev, uintptr_t *next)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long a, b;
	int found = 0;

	*prev = 0;
	*next = UINTPTR_MAX;
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx", &a, &b) != 2)
			continue;
		if (found) {
			*next = a;
			break;
		}
		if (!strstr(line, "[stack]"))
			*prev = b;
		if (strstr(line, "[stack]")) {
			*lo = a;
			*hi = b;
			found = 1;
		}
	}
	if (f)
		fclose(f);
	return found;
}

/*
 * A struct below the main stack's start; one across its top, an array
 * across its top: EFAULT. Each needs the address space around the stack
 * free (a vdso just above it skips the last two, with the reason).
 */
static void wild(void)
{
	uintptr_t lo = 0, hi = 0, prev, next;
	struct iommu_ioas_iova_ranges *q;
	char detail[96], top[48];
	int found = main_stack(&lo, &hi, &prev, &next), r, e;

	snprintf(detail, sizeof(detail), "[stack] found %d", found);
	check("the main stack's mapping in /proc/self/maps", found, detail);
	if (!found)
		return;
	/* the kernel's copy_from_user grows the stack down to it: a struct of zeros */
	errno = 0;
	r = ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, (void *)(lo - 64));
	if (prev < lo - (8u << 20))
		check("a struct just below the main stack's start: the stack grows, size 0: EINVAL",
		      r == -1 && errno == EINVAL, strerror(errno));
	else
		check("a struct just below the main stack's start: skipped, a mapping near it", 1,
		      "");
	if (next <= hi + 4096) {
		check("a struct across the stack's top: skipped, a mapping just above it", 1, "");
		check("an array across the stack's top: skipped, a mapping just above it", 1, "");
		return;
	}
	errno = 0;
	r = ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, (void *)(hi - 16));
	check("a struct across the stack's top: EFAULT", r == -1 && errno == EFAULT,
	      strerror(errno));
	/* the struct in the top's last 48 bytes (the exec'd file's name: kept), its array across the top */
	q = (void *)(hi - 48);
	memcpy(top, q, sizeof(top));
	*q = (struct iommu_ioas_iova_ranges){
		.size = sizeof(*q), .ioas_id = g_ioas, .num_iovas = 2, .allowed_iovas = hi - 8
	};
	errno = 0;
	r = ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, q);
	e = errno;
	snprintf(detail, sizeof(detail), "%d %s, num_iovas %u", r, strerror(e), q->num_iovas);
	memcpy(q, top, sizeof(top));
	check("an array across the stack's top: EFAULT, the struct not written",
	      r == -1 && e == EFAULT && strstr(detail, "num_iovas 2"), detail);
}

enum change { PROTECT, UNMAP, MOVE, GUARD };

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/*
 * On a thread's stack (no growing down into a hole, unlike the main
 * thread's): a page of this frame made read-only (PROTECT), unmapped
 * (UNMAP) or moved away (MOVE) through libc, a struct in it: EFAULT and
 * nothing written; restored, it answers again, staged from now on.
 */
static void changed_stack_page(enum change how, const char *name)
{
	char area[3 * 4096], detail[96];
	char *page = (char *)(((uintptr_t)area + 4095) & ~(uintptr_t)4095);
	struct iommu_ioas_iova_ranges *q = (void *)page;
	struct iommu_iova_range *ranges = (void *)(page + 64);
	void *away = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long staged;
	int r, e, ok, intact;

	ranges_at(q, ranges, &staged); /* copied directly until now */
	*q = (struct iommu_ioas_iova_ranges){ .size = sizeof(*q),
					      .ioas_id = g_ioas,
					      .num_iovas = 2,
					      .allowed_iovas = (uintptr_t)ranges };
	ranges[0].start = 0xeeeeeeeeeeeeeeeeULL;
	if (how == PROTECT)
		mprotect(page, 4096, PROT_READ);
	else if (how == UNMAP)
		munmap(page, 4096);
	else if (how == MOVE)
		mremap(page, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, away);
	else if (madvise(page, 4096, MADV_GUARD_INSTALL)) {
		check("  guard pages: skipped, the kernel has no MADV_GUARD_INSTALL (Linux 6.13)",
		      1, "");
		check(name, 1, "");
		return;
	}
	errno = 0;
	r = ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, q);
	e = errno;
	if (how == PROTECT) {
		intact = q->num_iovas == 2 && ranges[0].start == 0xeeeeeeeeeeeeeeeeULL;
		mprotect(page, 4096, PROT_READ | PROT_WRITE);
	} else if (how == UNMAP || how == GUARD) {
		intact = 1;
		mmap(page, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		     -1, 0);
	} else {
		intact = ((struct iommu_ioas_iova_ranges *)away)->num_iovas == 2; /* MOVE */
		mremap(away, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, page);
	}
	snprintf(detail, sizeof(detail), "%d %s, nothing written %d", r, strerror(e), intact);
	check(name, r == -1 && e == EFAULT && intact, detail);
	ok = ranges_at(q, ranges, &staged);
	snprintf(detail, sizeof(detail), "right %d, staged copies %ld", ok, staged);
	check("  restored: right, and this stack's copies staged from now on",
	      ok && staged >= CALLS, detail);
}

static void *changed_thread(void *arg)
{
	static const char *const names[] = {
		"a thread's stack page made read-only through libc: EFAULT, nothing written",
		"a thread's stack page unmapped through libc: EFAULT",
		"a thread's stack page moved away through libc (mremap): EFAULT, nothing written",
		"a thread's stack page made a guard page through libc (madvise): EFAULT",
	};
	enum change how = (enum change)(intptr_t)arg;

	changed_stack_page(how, names[how]);
	return NULL;
}

/* changed_stack_page() on a thread of a fork child; its checks print there. */
static void in_child(enum change how)
{
	int status = -1;
	pthread_t t;
	pid_t pid = fork();

	if (pid == 0) {
		pthread_create(&t, NULL, changed_thread, (void *)(intptr_t)how);
		pthread_join(t, NULL);
		_exit(failures);
	}
	waitpid(pid, &status, 0);
	check("  the child ran to its end, no signal", WIFEXITED(status) && !WEXITSTATUS(status),
	      "killed or failed");
}

static void *below_thread_stack(void *arg)
{
	pthread_attr_t attr;
	void *lo = NULL;
	size_t size = 0;
	int r;

	(void)arg;
	pthread_getattr_np(pthread_self(), &attr);
	pthread_attr_getstack(&attr, &lo, &size);
	errno = 0;
	r = ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, (char *)lo - 64);
	check("a struct in the guard page below a thread's stack: EFAULT",
	      lo && r == -1 && errno == EFAULT, strerror(errno));
	return NULL;
}

int main(int argc, char **argv)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	int status = -1;
	pthread_t t;
	pid_t pid;

	g_fd = open("/dev/iommu", O_RDWR);
	if (g_fd < 0 || ioctl(g_fd, IOMMU_IOAS_ALLOC, &alloc))
		return 1;
	g_ioas = alloc.out_ioas_id;
	if (argc > 1) { /* the exec'd copy */
		check_here("after exec: the main stack's copies are not staged", 0);
		return failures != 0;
	}
	check_here("the main stack: right, not staged", 0);
	{
		struct iommu_ioas_iova_ranges *q = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
							MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		long staged;
		int ok = ranges_at(q, (void *)(q + 1), &staged);
		char detail[80];

		snprintf(detail, sizeof(detail), "right %d, staged copies %ld", ok, staged);
		check("mapped memory off the stack: right, staged (2 per call)",
		      ok && staged >= 2 * CALLS, detail);
	}
	threads();
	alt_stack();
	coroutine_stack();
	pthread_create(&t, NULL, coroutine_first, NULL);
	pthread_join(t, NULL);
	wild();
	pthread_create(&t, NULL, below_thread_stack, NULL);
	pthread_join(t, NULL);
	pid = fork();
	if (pid == 0) {
		check_here("a fork child's stack: right, not staged", 0);
		fflush(stdout);
		execl("/proc/self/exe", argv[0], "exec", (char *)NULL);
		_exit(1);
	}
	waitpid(pid, &status, 0);
	check("  the fork child and its exec ran to their end",
	      WIFEXITED(status) && !WEXITSTATUS(status), "failed");
	/* the library's vfork is a fork: the child has a copy of this stack */
	pid = vfork();
	if (pid == 0) {
		long staged;
		int ok = ranges_here(&staged);

		_exit(ok && staged >= 0 && staged < CALLS / 10 ? 0 : 1);
	}
	status = -1;
	waitpid(pid, &status, 0);
	check("a vfork child's stack: right, not staged", WIFEXITED(status) && !WEXITSTATUS(status),
	      "wrong or staged");
	in_child(PROTECT);
	in_child(UNMAP);
	in_child(MOVE);
	in_child(GUARD);
	check_here("the parent's stack: still not staged", 0);
	return failures != 0;
}
