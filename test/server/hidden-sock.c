/*
 * The library's socket, its staging memfd (native/preload/stage.c) and its
 * channel's doorbell eventfd (native/preload/chan.c), as a real process
 * under `uiommu run` sees them: not at all. Raw system calls (which the library does not see) find it; every
 * libc view answers as Linux does for an fd that is not open: /proc/<self>/fd
 * and fdinfo listings leave it out (readdir, readdir_r, getdents64, scandir,
 * through self, thread-self, the pid and task/<tid>), its entries are ENOENT
 * (readlink, stat, open, access, fopen), poll/ppoll report POLLNVAL without
 * waiting, select/pselect and epoll fail with EBADF. Each sits out of the
 * program's range (at or just below RLIMIT_NOFILE) and follows the limit
 * when the program changes it, still answering requests. A fork child
 * stages in a file and rings a doorbell of its own.
 * Prints "ok <name>" or "FAIL <name>: ..." per check.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IOMMU_IOAS_ALLOC 0x3b81
/* Where the library stops parking its socket higher (native/preload/sock-park.c). */
#define PARK_CEIL (1 << 16)

static int failures;

static void check(const char *name, int ok, const char *detail)
{
	printf(ok ? "ok %s\n" : "FAIL %s: %s\n", name, detail);
	failures += !ok;
}

static void expect_errno(const char *name, long ret, int err)
{
	char detail[96];

	snprintf(detail, sizeof(detail), "ret %ld errno %s, want -1 %s", ret, strerror(errno),
		 strerror(err));
	check(name, ret == -1 && errno == err, detail);
}

/* A library fd by raw system calls: the highest fd whose /proc/self/fd link starts with `link_prefix`. */
static int raw_find(const char *link_prefix)
{
	char buf[8192], path[300], link[64];
	int dir = syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY),
	    found = -1;
	long n;

	while ((n = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *e = (struct dirent64 *)(buf + off);
			long len;

			snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
			len = syscall(SYS_readlinkat, AT_FDCWD, path, link, sizeof(link) - 1);
			if (len > 0 &&
			    (link[len] = 0, !strncmp(link, link_prefix, strlen(link_prefix))))
				found = atoi(e->d_name);
			off += e->d_reclen;
		}
	}
	syscall(SYS_close, dir);
	return found;
}

static int raw_find_sock(void)
{
	return raw_find("socket:");
}

static int raw_find_stage(void)
{
	return raw_find("/memfd:uiommu-stage");
}

/* The inode of fd `fd` by a raw fstat; 0 when none. */
/* The doorbell: the highest eventfd (the engine fds' placeholders are eventfds in the program's range). */
static int raw_find_bell(void)
{
	return raw_find("anon_inode:[eventfd]");
}

static unsigned long raw_inode(int fd)
{
	struct stat st;

	return fd >= 0 && !syscall(SYS_fstat, fd, &st) ? (unsigned long)st.st_ino : 0;
}

/* Entries named `name` in folder `path`, through readdir (0) or readdir_r (1). */
static int listed(const char *path, const char *name, int reentrant)
{
	DIR *d = opendir(path);
	struct dirent *e, ent;
	int hits = 0;

	if (!d)
		return -1;
	for (;;) {
		if (reentrant) {
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
			if (readdir_r(d, &ent, &e) || !e)
				break;
		} else if (!(e = readdir(d))) {
			break;
		}
		hits += !strcmp(e->d_name, name);
	}
	closedir(d);
	return hits;
}

/* Entries named `name` in folder `path` through getdents64: by libc (raw 0) or by the kernel. */
static int listed_getdents(const char *path, const char *name, int raw)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_DIRECTORY), hits = 0;
	long n;

	while ((n = raw ? syscall(SYS_getdents64, fd, buf, sizeof(buf))
			: getdents64(fd, buf, sizeof(buf))) > 0)
		for (long off = 0; off < n; off += ((struct dirent64 *)(buf + off))->d_reclen)
			hits += !strcmp(((struct dirent64 *)(buf + off))->d_name, name);
	close(fd);
	return hits;
}

static int listed_scandir(const char *path, const char *name)
{
	struct dirent **list;
	int n = scandir(path, &list, NULL, alphasort), hits = 0;

	for (int i = 0; i < n; i++) {
		hits += !strcmp(list[i]->d_name, name);
		free(list[i]);
	}
	free(list);
	return n < 0 ? -1 : hits;
}

/*
 * The engine still answers this process: open /dev/iommu and IOAS_ALLOC,
 * its struct off the stack so that the library stages the copies (and makes
 * its staging file; a struct on the stack is copied without it).
 */
static int engine_answers(void)
{
	static uint32_t alloc[3];
	int fd = open("/dev/iommu", O_RDWR), r;

	alloc[0] = 12;
	alloc[2] = 0;
	r = fd >= 0 && ioctl(fd, IOMMU_IOAS_ALLOC, alloc) == 0 && alloc[2] != 0;
	close(fd);
	return r;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Checks `name` (prefixed by `what`) for library fd `s`. */
static void check_fd(const char *what, const char *name, int ok, const char *detail)
{
	char full[160];

	snprintf(full, sizeof(full), "%s: %s", what, name);
	check(full, ok, detail);
}

static void expect_fd_errno(const char *what, const char *name, long ret, int err)
{
	char full[160];

	snprintf(full, sizeof(full), "%s: %s", what, name);
	expect_errno(full, ret, err);
}

/* Where the library parks its k-th fd (the socket 0, the stage 1, the doorbell 2) under limit `rl`. */
static int park_place(const struct rlimit *rl, int k)
{
	if (rl->rlim_cur < (rlim_t)(PARK_CEIL - k) && rl->rlim_cur + k < rl->rlim_max)
		return (int)rl->rlim_cur + k;
	return (rl->rlim_cur < PARK_CEIL ? (int)rl->rlim_cur : PARK_CEIL) - 1 - k;
}

/* Every libc view of library fd `s` (`what`) answers as for an fd that is not open. */
static void unseen(const char *what, int s)
{
	int p[2], ep, wide;
	char name[16], path[96], link[64], detail[160];
	struct stat st;
	struct pollfd pfd[2];
	struct timespec ts = { 10, 0 };
	struct epoll_event ev = { .events = EPOLLIN };
	unsigned long *set;
	const char *dirs[] = {
		"/proc/self/fd", "/proc/thread-self/fd", "/proc/self/fdinfo", "/dev/fd", NULL, NULL
	};
	char pid_fd[64], task_fdinfo[64];
	double t0;

	snprintf(name, sizeof(name), "%d", s);
	check_fd(what, "the kernel lists it (raw getdents64)",
		 listed_getdents("/proc/self/fd", name, 1) == 1, name);

	/* listings */
	snprintf(pid_fd, sizeof(pid_fd), "/proc/%d/fd", getpid());
	snprintf(task_fdinfo, sizeof(task_fdinfo), "/proc/self/task/%d/fdinfo", gettid());
	dirs[4] = pid_fd;
	dirs[5] = task_fdinfo;
	for (int i = 0; i < 6; i++) {
		int a = listed(dirs[i], name, 0), b = listed(dirs[i], name, 1),
		    c = listed_getdents(dirs[i], name, 0), d = listed_scandir(dirs[i], name);

		snprintf(detail, sizeof(detail),
			 "%s: readdir %d readdir_r %d getdents64 %d scandir %d", dirs[i], a, b, c,
			 d);
		snprintf(path, sizeof(path), "%s not listed", dirs[i]);
		check_fd(what, path, !a && !b && !c && !d, detail);
	}

	/* its entries do not exist */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", s);
	expect_fd_errno(what, "readlink /proc/self/fd/N", readlink(path, link, sizeof(link)),
			ENOENT);
	expect_fd_errno(what, "lstat /proc/self/fd/N", lstat(path, &st), ENOENT);
	expect_fd_errno(what, "open /proc/self/fd/N", open(path, O_RDONLY), ENOENT);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/fdinfo/%d", getpid(), gettid(), s);
	expect_fd_errno(what, "open fdinfo/N", open(path, O_RDONLY), ENOENT);
	expect_fd_errno(what, "access fdinfo/N", access(path, R_OK), ENOENT);
	check_fd(what, "fopen fdinfo/N: ENOENT", !fopen(path, "r") && errno == ENOENT,
		 strerror(errno));
	snprintf(path, sizeof(path), "/dev/fd/%d", s);
	expect_fd_errno(what, "stat /dev/fd/N", stat(path, &st), ENOENT);

	/* poll: POLLNVAL without waiting, the other entries polled */
	pipe(p);
	write(p[1], "x", 1);
	pfd[0] = (struct pollfd){ s, POLLIN, 0 };
	pfd[1] = (struct pollfd){ p[0], POLLIN, 0 };
	t0 = now();
	int r = poll(pfd, 2, 10000);
	snprintf(detail, sizeof(detail), "ret %d revents %#x %#x fd %d", r, pfd[0].revents,
		 pfd[1].revents, pfd[0].fd);
	check_fd(what, "poll: POLLNVAL for it, POLLIN for the pipe, counted",
		 r == 2 && pfd[0].revents == POLLNVAL && pfd[1].revents == POLLIN && pfd[0].fd == s,
		 detail);
	pfd[0].revents = 0;
	r = ppoll(pfd, 1, &ts, NULL);
	snprintf(detail, sizeof(detail), "ret %d revents %#x", r, pfd[0].revents);
	check_fd(what, "ppoll: POLLNVAL", r == 1 && pfd[0].revents == POLLNVAL, detail);
	check_fd(what, "neither waited", now() - t0 < 5, "a 10 s timeout ran out");

	/* select: EBADF (a set wide enough for its number) */
	wide = s + 1;
	set = calloc((wide + 63) / 64, sizeof(*set));
	set[s / 64] |= 1UL << (s % 64);
	struct timeval tv = { 10, 0 };
	expect_fd_errno(what, "select: EBADF", select(wide, (fd_set *)set, NULL, NULL, &tv), EBADF);
	expect_fd_errno(what, "pselect: EBADF", pselect(wide, NULL, (fd_set *)set, NULL, &ts, NULL),
			EBADF);
	free(set);

	/* epoll: EBADF both ways */
	ep = epoll_create1(EPOLL_CLOEXEC);
	expect_fd_errno(what, "epoll_ctl ADD of it: EBADF", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev),
			EBADF);
	expect_fd_errno(what, "epoll_ctl on it: EBADF", epoll_ctl(s, EPOLL_CTL_ADD, p[0], &ev),
			EBADF);
	expect_fd_errno(what, "epoll_wait on it: EBADF", epoll_wait(s, &ev, 1, 0), EBADF);
	expect_fd_errno(what, "epoll_pwait on it: EBADF", epoll_pwait(s, &ev, 1, 0, NULL), EBADF);
	check_fd(what, "epoll_ctl of the pipe works", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0,
		 strerror(errno));
	close(ep);
	close(p[0]);
	close(p[1]);
}

/* The library fds sit at their parking places under limit `rl` (`when` says which). */
static void parked(const char *when, const struct rlimit *rl)
{
	int s = raw_find_sock(), m = raw_find_stage(), b = raw_find_bell();
	char name[128], detail[96];

	snprintf(detail, sizeof(detail), "socket %d, stage %d, doorbell %d; RLIMIT_NOFILE %lu/%lu",
		 s, m, b, (unsigned long)rl->rlim_cur, (unsigned long)rl->rlim_max);
	snprintf(name, sizeof(name), "%s: all out of the program's range", when);
	check(name, s == park_place(rl, 0) && m == park_place(rl, 1) && b == park_place(rl, 2),
	      detail);
	snprintf(name, sizeof(name), "%s: the engine answers", when);
	check(name, engine_answers(), "open + IOAS_ALLOC");
}

int main(void)
{
	struct rlimit rl, low;
	char detail[128], path[64], link[64];
	unsigned long *set;
	struct timespec ts = { 10, 0 };
	int s, m, b;

	getrlimit(RLIMIT_NOFILE, &rl);
	/* an answer with write-back makes the staging file; the first ioctl, the channel */
	check("the engine answers", engine_answers(), "open + IOAS_ALLOC");
	s = raw_find_sock();
	m = raw_find_stage();
	b = raw_find_bell();
	snprintf(detail, sizeof(detail), "socket %d, stage %d, doorbell %d, RLIMIT_NOFILE %lu/%lu",
		 s, m, b, (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_max);
	check("the raw view finds the socket, the staging file and the doorbell",
	      s >= 0 && m >= 0 && b >= 0, detail);
	if (s < 0 || m < 0 || b < 0)
		return 1;
	/* above the program's range when the hard limit leaves room, else its top (parking stops at 64 Ki) */
	parked("at start", &rl);
	unseen("socket", s);
	unseen("stage", m);
	unseen("doorbell", b);
	check("other fds are still listed", listed("/proc/self/fd", "0", 0) == 1, "fd 0");
	snprintf(path, sizeof(path), "/proc/self/fd/0");
	check("readlink of another fd works", readlink(path, link, sizeof(link)) > 0, path);

	/* wild arrays: poll's and select's own EFAULT, not a fault in the library */
	expect_errno("poll of a wild array: EFAULT", poll((struct pollfd *)8, 2, 0), EFAULT);
	expect_errno("ppoll of a wild array: EFAULT", ppoll((struct pollfd *)8, 1, &ts, NULL),
		     EFAULT);
	set = calloc((s + 64) / 64, sizeof(*set));
	struct timeval tv = { 10, 0 };
	expect_errno("select of a wild set: EFAULT", select(s + 1, (fd_set *)8, NULL, NULL, &tv),
		     EFAULT);
	free(set);

	/* they follow RLIMIT_NOFILE */
	low = (struct rlimit){ 256, rl.rlim_max };
	setrlimit(RLIMIT_NOFILE, &low);
	parked("a lowered limit", &low);
	prlimit(0, RLIMIT_NOFILE, &rl, NULL);
	parked("the limit restored", &rl);
	check("back where they were",
	      raw_find_sock() == s && raw_find_stage() == m && raw_find_bell() == b, "moved");

	/*
	 * A child capped at 64 fds: the socket, the stage and the doorbell top its
	 * range; a dup2 onto any moves it lower; the child's stage and doorbell
	 * are files of its own.
	 */
	fflush(stdout);
	pid_t kid = fork();
	if (kid == 0) {
		struct rlimit tight = { 64, 64 };
		unsigned long parent_stage = raw_inode(raw_find_stage()),
			      parent_bell = raw_inode(raw_find_bell());
		int at, then, sat, sthen, bat, bthen, answers;

		setrlimit(RLIMIT_NOFILE, &tight);
		answers = engine_answers();
		at = raw_find_sock();
		sat = raw_find_stage();
		bat = raw_find_bell();
		printf("%s the child's stage: a file of its own (inode %lu, the parent's %lu)\n",
		       raw_inode(sat) && raw_inode(sat) != parent_stage ? "ok" : "FAIL",
		       raw_inode(sat), parent_stage);
		printf("%s the child's doorbell: a file of its own (inode %lu, the parent's %lu)\n",
		       raw_inode(bat) && raw_inode(bat) != parent_bell ? "ok" : "FAIL",
		       raw_inode(bat), parent_bell);
		dup2(open("/dev/null", O_RDONLY), at);
		then = raw_find_sock();
		dup2(open("/dev/null", O_RDONLY), sat);
		sthen = raw_find_stage();
		dup2(open("/dev/null", O_RDONLY), bat);
		bthen = raw_find_bell();
		answers = answers && engine_answers();
		printf("%s the child's socket: at %d, then %d after a dup2 onto it\n",
		       at == 63 && then >= 0 && then < 63 && answers ? "ok" : "FAIL", at, then);
		printf("%s the child's stage: at %d, then %d after a dup2 onto it\n",
		       sat == 62 && sthen >= 0 && sthen < 62 && sthen != then && answers ? "ok"
											 : "FAIL",
		       sat, sthen);
		printf("%s the child's doorbell: at %d, then %d after a dup2 onto it\n",
		       bat == 61 && bthen >= 0 && bthen < 61 && bthen != then && bthen != sthen &&
				       answers
			       ? "ok"
			       : "FAIL",
		       bat, bthen);
		fflush(stdout);
		_exit(0);
	}
	waitpid(kid, NULL, 0);
	return failures ? 1 : 0;
}
