/*
 * The channel between the library and the engine (docs/engine-protocol.md,
 * *Channel*), from a real process under `uiommu run`:
 *
 *   channel answers        a fixed sequence of iommufd ioctls (EFAULT, EINVAL,
 *                          EEXIST, ENOENT, ENOTTY, write-backs), read and write;
 *                          one line per answer, to compare with the channel off
 *   channel signals N      N checked calls while three signal handlers, which
 *                          nest in each other, make checked calls of their own
 *   channel threads N      two threads of N checked calls each
 *   channel fork N         a fork child and its parent, N checked calls each
 *   channel scribble N     a child scribbles over its own channel while calling;
 *                          its sibling's N checked calls all answer right
 *   channel kill N         N children killed at random points of their calls;
 *                          the parent's calls answer right after each
 *   channel bell N         N checked calls, then N more after the library's
 *                          doorbell was closed behind its back (DOORBELL frames)
 *
 * Prints "channel mapped" or "channel none" first (whether this process has
 * one), "ok ..." per mode that passed, "FAIL ..." for any wrong answer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"
#include "uiommu-uapi.h"

#define BUF_BYTES (64 * 1024)
#define LEVELS 4 /* the main flow and three nested signal handlers */

static int g_fd;
static uint32_t g_ioas[LEVELS];
static struct iommu_iova_range g_expect[8];
static uint32_t g_nexpect;
static uint8_t *g_buf[LEVELS];
static volatile long g_bad;

static void fail(const char *what)
{
	/* async-signal-safe: called from handlers too */
	static const char head[] = "FAIL ";

	__atomic_add_fetch(&g_bad, 1, __ATOMIC_RELAXED);
	if (write(1, head, sizeof(head) - 1) < 0 || write(1, what, strlen(what)) < 0 ||
	    write(1, "\n", 1) < 0)
		_exit(3);
}

/* IOVA_RANGES of `ioas`: answers 0 with the ranges seen at start. */
static int ranges_ok(uint32_t ioas)
{
	struct iommu_iova_range r[8];
	struct iommu_ioas_iova_ranges q = {
		.size = sizeof(q),
		.ioas_id = ioas,
		.num_iovas = 8,
		.allowed_iovas = (uintptr_t)r,
	};

	return ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, &q) == 0 && q.num_iovas == g_nexpect &&
	       !memcmp(r, g_expect, g_nexpect * sizeof(r[0]));
}

/* MAP at a fixed iova, a second MAP there (EEXIST), UNMAP (the length written back), UNMAP (ENOENT). */
static int map_ok(uint32_t ioas, void *buf, uint64_t iova)
{
	struct iommu_ioas_map m = {
		.size = sizeof(m),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = ioas,
		.user_va = (uintptr_t)buf,
		.length = BUF_BYTES,
		.iova = iova,
	};
	struct iommu_ioas_unmap u = {
		.size = sizeof(u), .ioas_id = ioas, .iova = iova, .length = BUF_BYTES
	};
	int ok = ioctl(g_fd, IOMMU_IOAS_MAP, &m) == 0;

	ok = ok && ioctl(g_fd, IOMMU_IOAS_MAP, &m) == -1 && errno == EEXIST;
	ok = ok && ioctl(g_fd, IOMMU_IOAS_UNMAP, &u) == 0 && u.length == BUF_BYTES;
	u.length = BUF_BYTES;
	return ok && ioctl(g_fd, IOMMU_IOAS_UNMAP, &u) == -1 && errno == ENOENT;
}

/* A wild argument pointer answers EFAULT (and the program goes on). */
static int efault_ok(void)
{
	return ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, (void *)16) == -1 && errno == EFAULT;
}

/* One checked round of level `l` (its own IOAS and buffer); errno is kept. */
static int round_ok(int l)
{
	int saved = errno;
	int ok = ranges_ok(g_ioas[l]) && map_ok(g_ioas[l], g_buf[l], 0x1000000) && efault_ok();

	errno = saved;
	return ok;
}

/* BUF_BYTES at a 2 MiB boundary: where IOAS_MAP puts it does not depend on where mmap did. */
static uint8_t *aligned_buffer(void)
{
	uintptr_t p = (uintptr_t)mmap(NULL, BUF_BYTES + (2 << 20), PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return (uint8_t *)((p + (2 << 20) - 1) & ~(uintptr_t)((2 << 20) - 1));
}

static void setup(void)
{
	struct iommu_ioas_iova_ranges q = { .size = sizeof(q), .num_iovas = 8 };

	g_fd = open("/dev/iommu", O_RDWR);
	if (g_fd < 0) {
		perror("open /dev/iommu");
		exit(2);
	}
	for (int l = 0; l < LEVELS; l++) {
		struct iommu_ioas_alloc a = { .size = sizeof(a) };

		if (ioctl(g_fd, IOMMU_IOAS_ALLOC, &a)) {
			perror("IOAS_ALLOC");
			exit(2);
		}
		g_ioas[l] = a.out_ioas_id;
		g_buf[l] = aligned_buffer();
		memset(g_buf[l], l, BUF_BYTES);
	}
	q.ioas_id = g_ioas[0];
	q.allowed_iovas = (uintptr_t)g_expect;
	if (ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, &q) || !q.num_iovas || q.num_iovas > 8) {
		perror("IOVA_RANGES");
		exit(2);
	}
	g_nexpect = q.num_iovas;
}

/* The channels mapped here (by their memfd name in /proc/self/maps); the last in `*at`. */
static int channels(struct uiommu_chan **at)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	*at = NULL;
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, "memfd:uiommu-channel") && sscanf(line, "%p", (void **)at) == 1)
			n++;
	if (f)
		fclose(f);
	return n;
}

/* This process's channel; NULL if none. */
static struct uiommu_chan *my_channel(void)
{
	struct uiommu_chan *at;

	return channels(&at) == 1 ? at : NULL;
}

static void say_(const char *what, long ret, int err, const char *fields)
{
	printf("%s = %ld errno %d%s%s\n", what, ret, ret < 0 ? err : 0, *fields ? " " : "", fields);
}

/* The answer of `call`, its errno read after it. */
#define SAY(what, call, fields)                      \
	do {                                         \
		long ret_ = (call);                  \
		say_((what), ret_, errno, (fields)); \
	} while (0)

static void mode_answers(void)
{
	struct iommu_iova_range r[8];
	struct iommu_ioas_iova_ranges q = { .size = sizeof(q), .ioas_id = g_ioas[0] };
	struct iommu_ioas_map m = { .size = sizeof(m), .ioas_id = g_ioas[1] };
	struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = g_ioas[1] };
	struct iommu_destroy d = { .size = sizeof(d), .id = 9999 };
	char fields[256], b[16];
	long ret;
	int err;

	/* too small an array: EMSGSIZE with the count written back */
	ret = ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, &q);
	err = errno;
	snprintf(fields, sizeof(fields), "num %u align %llu", q.num_iovas,
		 (unsigned long long)q.out_iova_alignment);
	say_("IOVA_RANGES num 0", ret, err, fields);
	q.num_iovas = 8;
	q.allowed_iovas = (uintptr_t)r;
	ret = ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, &q);
	err = errno;
	snprintf(fields, sizeof(fields), "num %u first %llx-%llx", q.num_iovas,
		 (unsigned long long)r[0].start, (unsigned long long)r[0].last);
	say_("IOVA_RANGES num 8", ret, err, fields);
	q.allowed_iovas = 0xdead0000;
	SAY("IOVA_RANGES wild array", ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, &q), "");
	SAY("IOVA_RANGES NULL", ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, NULL), "");
	SAY("IOVA_RANGES arg 16", ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, (void *)16), "");
	SAY("IOVA_RANGES wild arg", ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, (void *)0xdead0000), "");
	/* the argument's last bytes run into an unmapped page */
	{
		uint8_t *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				    -1, 0);
		struct iommu_ioas_iova_ranges *edge = (void *)(two + 4096 - 16);

		munmap(two + 4096, 4096);
		memcpy(edge, &q, 16);
		SAY("IOVA_RANGES across a hole", ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, edge), "");
	}
	q.size = 4;
	SAY("IOVA_RANGES size 4", ioctl(g_fd, IOMMU_IOAS_IOVA_RANGES, &q), "");
	m.flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	m.user_va = (uintptr_t)g_buf[1];
	m.length = BUF_BYTES;
	ret = ioctl(g_fd, IOMMU_IOAS_MAP, &m);
	err = errno;
	snprintf(fields, sizeof(fields), "iova %llx", (unsigned long long)m.iova);
	say_("IOAS_MAP", ret, err, fields);
	m.flags |= IOMMU_IOAS_MAP_FIXED_IOVA;
	SAY("IOAS_MAP again fixed", ioctl(g_fd, IOMMU_IOAS_MAP, &m), "");
	m.length = 12345;
	SAY("IOAS_MAP unaligned", ioctl(g_fd, IOMMU_IOAS_MAP, &m), "");
	u.iova = m.iova;
	u.length = BUF_BYTES;
	ret = ioctl(g_fd, IOMMU_IOAS_UNMAP, &u);
	err = errno;
	snprintf(fields, sizeof(fields), "length %llx", (unsigned long long)u.length);
	say_("IOAS_UNMAP", ret, err, fields);
	SAY("IOAS_UNMAP again", ioctl(g_fd, IOMMU_IOAS_UNMAP, &u), "");
	SAY("DESTROY 9999", ioctl(g_fd, IOMMU_DESTROY, &d), "");
	SAY("unknown ioctl", ioctl(g_fd, _IO(';', 0x7f), 0), "");
	SAY("read", read(g_fd, b, sizeof(b)), "");
	SAY("write", write(g_fd, b, sizeof(b)), "");
	SAY("pread", pread(g_fd, b, sizeof(b), 0), "");
}

/* ---- signals ------------------------------------------------------------ */

static const int g_sigs[LEVELS - 1] = { SIGUSR1, SIGUSR2, SIGPROF };
static long g_handled[LEVELS];
static volatile int g_stop;
static pid_t g_main_tid;

static void handler(int sig)
{
	int l = 1;

	while (l < LEVELS && g_sigs[l - 1] != sig)
		l++;
	if (!round_ok(l))
		fail("a call from a signal handler");
	g_handled[l]++;
}

static void *pinger(void *arg)
{
	unsigned seed = 1;

	(void)arg;
	while (!g_stop) {
		struct timespec ts = { 0, 100000 + rand_r(&seed) % 500000 };

		syscall(SYS_tgkill, getpid(), g_main_tid, g_sigs[rand_r(&seed) % (LEVELS - 1)]);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void mode_signals(long n)
{
	struct sigaction sa = { .sa_handler = handler, .sa_flags = SA_RESTART };
	struct uiommu_chan *chan = my_channel();
	pthread_t th;
	long i, rounds, nested = 0;

	/* each handler may be interrupted by the others (but not by its own signal) */
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < LEVELS - 1; i++)
		sigaction(g_sigs[i], &sa, NULL);
	g_main_tid = syscall(SYS_gettid);
	pthread_create(&th, NULL, pinger, NULL);
	for (i = 0; i < n || g_handled[1] + g_handled[2] + g_handled[3] < n; i++)
		if (!round_ok(0))
			fail("a call of the main flow");
	g_stop = 1;
	rounds = i;
	pthread_join(th, NULL);
	for (i = 1; chan && i < UIOMMU_CHAN_SLOTS; i++)
		nested += chan->slot[i].done;
	printf("handled %ld %ld %ld, main rounds %ld, nested slot calls %s\n", g_handled[1],
	       g_handled[2], g_handled[3], rounds, nested ? "some" : "none");
	if (chan && !nested)
		fail("no call nested in a deeper slot");
	if (!g_bad)
		printf("ok signals\n");
}

/* ---- threads, fork, scribble, kill --------------------------------------- */

static void *thread_rounds(void *arg)
{
	long n = (long)arg;

	for (long i = 0; i < n; i++)
		if (!round_ok(2))
			fail("a call of the second thread");
	return NULL;
}

static void mode_threads(long n)
{
	pthread_t th;

	pthread_create(&th, NULL, thread_rounds, (void *)n);
	for (long i = 0; i < n; i++)
		if (!round_ok(0))
			fail("a call of the first thread");
	pthread_join(th, NULL);
	if (!g_bad)
		printf("ok threads\n");
}

/* Waits for `pid`; 1 when it exited 0. */
static int exited_ok(pid_t pid)
{
	int st;

	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void mode_fork(long n)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct uiommu_chan *at;
		int inherited = channels(&at);

		for (long i = 0; i < n; i++)
			if (!round_ok(1))
				fail("a call of the fork child");
		/* the child's own channel: a mapping besides the one it inherited */
		printf("child channels %d then %d\n", inherited, channels(&at));
		_exit(g_bad != 0);
	}
	for (long i = 0; i < n; i++)
		if (!round_ok(0))
			fail("a call of the parent");
	if (!exited_ok(pid))
		fail("the fork child");
	if (!g_bad)
		printf("ok fork\n");
}

static void *scribbler(void *arg)
{
	uint32_t *words = arg;
	unsigned seed = 7;

	for (;;) {
		size_t i = rand_r(&seed) % (sizeof(struct uiommu_chan) / 4);

		words[i] = rand_r(&seed) % 3 == 0 ? 0xffffffffu : (uint32_t)rand_r(&seed);
		if (rand_r(&seed) % 64 == 0)
			sched_yield();
	}
	return NULL;
}

static void mode_scribble(long n)
{
	struct uiommu_chan *parent = my_channel();
	pid_t pid = fork();

	if (pid == 0) {
		/* its own connection and channel (the first call maps it), then garbage */
		struct uiommu_chan *chan;
		pthread_t th;

		if (parent)
			munmap(parent,
			       UIOMMU_CHAN_BYTES); /* the parent's, inherited: never used here */
		round_ok(1);
		chan = my_channel();
		if (!chan)
			_exit(0);
		alarm(3);
		pthread_create(&th, NULL, scribbler, chan);
		for (long i = 0; i < 4 * n; i++)
			round_ok(1);
		_exit(0);
	}
	for (long i = 0; i < n; i++)
		if (!round_ok(0))
			fail("a call beside a scribbling process");
	waitpid(pid, NULL, 0);
	for (long i = 0; i < n / 4 + 1; i++)
		if (!round_ok(0))
			fail("a call after a scribbling process");
	if (!g_bad)
		printf("ok scribble\n");
}

static void mode_kill(long n)
{
	unsigned seed = 3;

	for (long k = 0; k < n; k++) {
		struct timespec ts = { 0, 100000 + rand_r(&seed) % 2000000 };
		pid_t pid = fork();

		if (pid == 0) {
			for (;;)
				round_ok(1 + k % 3);
		}
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if (!round_ok(0))
			fail("a call after a child was killed mid-call");
	}
	if (!g_bad)
		printf("ok kill\n");
}

/*
 * The library's doorbell, which libc calls do not show: the highest eventfd
 * the kernel lists (the engine fds' placeholders are eventfds below it); -1.
 */
static int raw_doorbell(void)
{
	char buf[4096], path[64], link[32];
	int dir = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY),
	    found = -1;
	long n;

	while (dir >= 0 && (n = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0)
		for (long off = 0; off < n; off += ((struct dirent64 *)(buf + off))->d_reclen) {
			const char *name = ((struct dirent64 *)(buf + off))->d_name;
			long len;

			snprintf(path, sizeof(path), "/proc/self/fd/%s", name);
			len = syscall(SYS_readlinkat, AT_FDCWD, path, link, sizeof(link) - 1);
			if (len > 0 && (link[len] = 0, !strcmp(link, "anon_inode:[eventfd]")) &&
			    atoi(name) > found)
				found = atoi(name);
		}
	syscall(SYS_close, dir);
	return found;
}

static void mode_bell(long n)
{
	int bell = raw_doorbell();

	for (long i = 0; i < n; i++)
		if (!round_ok(0))
			fail("a call with the doorbell");
	if (bell < 0 || syscall(SYS_close, bell))
		fail("no doorbell to close");
	for (long i = 0; i < n; i++)
		if (!round_ok(0))
			fail("a call after the doorbell was closed");
	if (!g_bad)
		printf("ok bell\n");
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "answers";
	long n = argc > 2 ? atol(argv[2]) : 1000;

	setvbuf(stdout, NULL, _IOLBF, 0);
	setup();
	printf("channel %s\n", my_channel() ? "mapped" : "none");
	if (!strcmp(mode, "answers"))
		mode_answers();
	else if (!strcmp(mode, "signals"))
		mode_signals(n);
	else if (!strcmp(mode, "threads"))
		mode_threads(n);
	else if (!strcmp(mode, "fork"))
		mode_fork(n);
	else if (!strcmp(mode, "scribble"))
		mode_scribble(n);
	else if (!strcmp(mode, "kill"))
		mode_kill(n);
	else if (!strcmp(mode, "bell"))
		mode_bell(n);
	else
		return 2;
	return g_bad != 0;
}
