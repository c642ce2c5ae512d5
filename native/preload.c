/*
 * libuiommu-preload: runs an unmodified program against the uiommu engine.
 *
 * Loaded with LD_PRELOAD, it forwards the system calls that touch emulated
 * files (/dev/iommu, /dev/vfio/...) to the engine over the Unix socket named
 * by UIOMMU_SOCK, and points /sys and /dev paths at the fake tree under
 * UIOMMU_ROOT. docs/engine-protocol.md is the contract; protocol.h spells
 * its frames. Without UIOMMU_SOCK every call goes straight to libc.
 *
 * Engine fds are real fds: each is an eventfd placeholder that the library
 * reserves (lowest free number, as the kernel would pick) and records in a
 * bitmap. Requests are serialised by one lock per process; signals are
 * blocked and cancellation is disabled while the lock is held, so a frame is
 * never interleaved with another. When the connection is lost, engine fds
 * answer EIO and the program goes on.
 */
#undef _FORTIFY_SOURCE
#undef _FILE_OFFSET_BITS
#undef _TIME_BITS
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "protocol.h"

#ifndef PR_SET_PTRACER
#define PR_SET_PTRACER 0x59616d61
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define EXPORT __attribute__((visibility("default")))

extern char **environ;
extern void __chk_fail(void) __attribute__((noreturn));

_Static_assert(sizeof(struct stat) == sizeof(struct stat64), "stat64 is stat on 64-bit");

/* ---- the real functions ------------------------------------------------ */

typedef int (*stat_fn)(int, const char *, struct stat *, int);

static struct {
	int (*openat)(int, const char *, int, ...);
	FILE *(*fopen)(const char *, const char *);
	int (*close)(int);
	int (*close_range)(unsigned int, unsigned int, int);
	int (*ioctl)(int, unsigned long, ...);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*pread)(int, void *, size_t, off_t);
	ssize_t (*pwrite)(int, const void *, size_t, off_t);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
	pid_t (*fork)(void);
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*fexecve)(int, char *const[], char *const[]);
	stat_fn fstatat;
	int (*statx)(int, const char *, int, unsigned int, struct statx *);
	int (*faccessat)(int, const char *, int, int);
	ssize_t (*readlinkat)(int, const char *, char *, size_t);
	char *(*realpath)(const char *, char *);
	DIR *(*opendir)(const char *);
	int (*scandir)(const char *, struct dirent ***, int (*)(const struct dirent *),
		       int (*)(const struct dirent **, const struct dirent **));
} real;

/* fstatat through the kernel, for a libc without an fstatat symbol. */
static int sys_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
#ifdef SYS_newfstatat
	return syscall(SYS_newfstatat, dirfd, path, st, flags);
#else
	return syscall(SYS_fstatat64, dirfd, path, st, flags);
#endif
}

static int sys_statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *stx)
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

static void resolve(void)
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
	if (!real.fcntl64)
		real.fcntl64 = real.fcntl;
	if (!real.fstatat)
		real.fstatat = sys_fstatat;
	if (!real.statx)
		real.statx = sys_statx;
	if (!real.close_range)
		real.close_range = sys_close_range;
}

/* ---- state ------------------------------------------------------------- */

/* Engine fds: one bit per fd number below MAX_FDS (the default nr_open). */
#define MAX_FDS (1 << 20)
#define LONG_BITS (8 * sizeof(unsigned long))
static unsigned long g_bits[MAX_FDS / LONG_BITS];

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static int g_active;		/* UIOMMU_SOCK was set */
static int g_sock = -1;		/* the connection, -1 when lost */
static pid_t g_conn_pid;	/* the process that owns g_sock */
static uint64_t g_fork_token;	/* set by fork() around the real fork */
static pid_t g_fork_parent;
static struct sockaddr_un g_addr;
static char g_root[PATH_MAX];	/* UIOMMU_ROOT without trailing '/', or "" */
static size_t g_rootlen;
static char g_rootreal[PATH_MAX]; /* realpath(UIOMMU_ROOT) */
static size_t g_rootreallen;
static char *g_keep_env[3];	/* "NAME=value" of SOCK, ROOT, LD_PRELOAD */

static int bit_test(int fd)
{
	if (fd < 0 || fd >= MAX_FDS)
		return 0;
	return (__atomic_load_n(&g_bits[fd / LONG_BITS], __ATOMIC_ACQUIRE) >> (fd % LONG_BITS)) & 1;
}

static void bit_set(int fd)
{
	__atomic_fetch_or(&g_bits[fd / LONG_BITS], 1UL << (fd % LONG_BITS), __ATOMIC_RELEASE);
}

static void bit_clear(int fd)
{
	if (fd >= 0 && fd < MAX_FDS)
		__atomic_fetch_and(&g_bits[fd / LONG_BITS], ~(1UL << (fd % LONG_BITS)),
				   __ATOMIC_RELEASE);
}

/* ---- the lock ---------------------------------------------------------- */

struct guard {
	sigset_t old;
	int cancel;
};

static void enter(struct guard *g)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &g->old);
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &g->cancel);
	pthread_mutex_lock(&g_lock);
}

static void leave(struct guard *g)
{
	pthread_mutex_unlock(&g_lock);
	pthread_setcancelstate(g->cancel, NULL);
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* A fork child starts with a fresh lock: the copy may be held by a thread that is gone. */
static void lock_reinit(void)
{
	pthread_mutexattr_t attr;

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&g_lock, &attr);
	pthread_mutexattr_destroy(&attr);
}

/* ---- frames ------------------------------------------------------------ */

static int send_all(const void *head, size_t headlen, const void *payload, size_t len)
{
	struct iovec iov[2] = {
		{ .iov_base = (void *)head, .iov_len = headlen },
		{ .iov_base = (void *)payload, .iov_len = len },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	while (msg.msg_iovlen) {
		ssize_t n = sendmsg(g_sock, &msg, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		while (msg.msg_iovlen && (size_t)n >= msg.msg_iov->iov_len) {
			n -= msg.msg_iov->iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
		if (msg.msg_iovlen) {
			msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + n;
			msg.msg_iov->iov_len -= n;
		}
	}
	return 0;
}

/*
 * How long a caller polls for the engine's answer before sleeping in
 * recv(): waking a sleeping thread costs tens of microseconds on small
 * virtual machines, far more than the engine's work on most requests.
 */
#define ANSWER_SPIN_NS 100000

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Reads exactly `len` bytes; a NULL `buf` discards them. */
static int recv_all(void *buf, size_t len)
{
	char sink[256];
	uint64_t spin_until = monotonic_ns() + ANSWER_SPIN_NS;

	while (len) {
		size_t want = buf ? len : (len < sizeof(sink) ? len : sizeof(sink));
		int flags = monotonic_ns() < spin_until ? MSG_DONTWAIT : 0;
		ssize_t n = recv(g_sock, buf ? buf : sink, want, flags);

		if (n < 0 && flags && (errno == EAGAIN || errno == EWOULDBLOCK))
			continue;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		if (buf)
			buf = (char *)buf + n;
		len -= n;
	}
	return 0;
}

/* Drops the connection: from now on engine fds answer EIO. */
static void lose(void)
{
	if (g_sock >= 0)
		real.close(g_sock);
	g_sock = -1;
}

static struct uiommu_req new_req(uint32_t op)
{
	struct uiommu_req rq = { .op = op };

	rq.pid = getpid();
	rq.tid = syscall(SYS_gettid);
	return rq;
}

static int connect_engine(int kind, uint64_t token);

/*
 * Makes sure the connection belongs to this process. A child forked behind
 * our back (not through fork() below) must not talk on its parent's
 * connection: it drops its copy, and reconnects only if fork() left a token.
 */
static int conn_ready(void)
{
	pid_t me;

	if (g_sock < 0)
		return 0;
	me = getpid();
	if (me == g_conn_pid)
		return 1;
	lose();
	if (g_fork_token && g_fork_parent == g_conn_pid)
		connect_engine(UIOMMU_HELLO_FORK_CHILD, g_fork_token);
	g_fork_token = 0;
	return g_sock >= 0;
}

/*
 * One request/response exchange (caller holds the lock). Up to `cap` payload
 * bytes land in `out`, the rest is discarded. Returns -1 when the connection
 * is gone. errno is preserved.
 */
static int call_raw(struct uiommu_req *rq, const void *payload, size_t len,
		    struct uiommu_resp *rs, void *out, size_t cap)
{
	int saved = errno;
	size_t take;

	rq->len = len;
	if (send_all(rq, sizeof(*rq), payload, len) || recv_all(rs, sizeof(*rs)))
		goto lost;
	take = rs->len < cap ? rs->len : cap;
	if (recv_all(out, take) || recv_all(NULL, rs->len - take))
		goto lost;
	errno = saved;
	return 0;
lost:
	lose();
	errno = saved;
	return -1;
}

static int call(struct uiommu_req *rq, const void *payload, size_t len,
		struct uiommu_resp *rs, void *out, size_t cap)
{
	if (!conn_ready())
		return -1;
	rq->pid = getpid();
	return call_raw(rq, payload, len, rs, out, cap);
}

/* A request without payloads; returns the answer's ret (-1 with rs->err EIO if the connection is gone). */
static int64_t call_simple(uint32_t op, uint64_t a0, uint64_t a1, struct uiommu_resp *rs)
{
	struct uiommu_req rq = new_req(op);

	rq.a[0] = a0;
	rq.a[1] = a1;
	if (call(&rq, NULL, 0, rs, NULL, 0)) {
		rs->ret = -1;
		rs->err = EIO;
		rs->newfd = -1;
		return -1;
	}
	return rs->ret;
}

/* ---- connection -------------------------------------------------------- */

/* The target of /proc/self/fd/<fd> into `link` (NUL-terminated); -1 if unreadable. */
static ssize_t fd_link(int fd, char *link, size_t size)
{
	char path[32] = "/proc/self/fd/", digits[12];
	int i = 0;
	size_t p = strlen(path);
	ssize_t r;

	do {
		digits[i++] = '0' + fd % 10;
		fd /= 10;
	} while (fd);
	while (i)
		path[p++] = digits[--i];
	path[p] = 0;
	r = real.readlinkat(AT_FDCWD, path, link, size - 1);
	if (r >= 0)
		link[r] = 0;
	return r;
}

/* True when `fd` is an eventfd, or when /proc cannot tell. */
static int is_placeholder(int fd)
{
	char link[64];

	if (fd_link(fd, link, sizeof(link)) < 0)
		return 1;
	return strcmp(link, "anon_inode:[eventfd]") == 0;
}

/*
 * The HELLO kind 2 answer lists the fds the engine holds for this pid: keep
 * those that survived exec (still open placeholders), CLOSE the others.
 */
static int adopt_fds(uint32_t len)
{
	size_t count = len / sizeof(int32_t), i;
	int32_t *fds;
	struct uiommu_resp rs;

	if (!len)
		return 0;
	fds = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fds == MAP_FAILED)
		return recv_all(NULL, len);
	if (recv_all(fds, len)) {
		munmap(fds, len);
		return -1;
	}
	for (i = 0; i < count; i++) {
		int fd = fds[i];

		if (fd >= 0 && fd < MAX_FDS && fd != g_sock && real.fcntl(fd, F_GETFD) >= 0 &&
		    is_placeholder(fd))
			bit_set(fd);
		else
			fds[i] = -1 - fd; /* to close */
	}
	for (i = 0; i < count && g_sock >= 0; i++)
		if (fds[i] < 0)
			call_simple(UIOMMU_OP_CLOSE, (uint64_t)(int64_t)(-1 - fds[i]), 0, &rs);
	munmap(fds, len);
	return 0;
}

/* Says HELLO on the fresh connection; returns the answer's ret, or -2 if the connection broke. */
static int64_t hello(int kind, uint64_t token)
{
	struct uiommu_req rq = new_req(UIOMMU_OP_HELLO);
	struct uiommu_resp rs;

	rq.a[0] = kind;
	rq.a[1] = token;
	if (send_all(&rq, sizeof(rq), NULL, 0) || recv_all(&rs, sizeof(rs)))
		return -2;
	if (kind == UIOMMU_HELLO_EXEC && rs.ret >= 0) {
		if (adopt_fds(rs.len))
			return -2;
	} else if (recv_all(NULL, rs.len)) {
		return -2;
	}
	return rs.ret;
}

/*
 * Opens this process's connection (caller holds the lock or is alone) and
 * introduces the process. A kind 2 HELLO the engine refuses (it did not see
 * our EXEC_BEGIN) falls back to a new process.
 */
static int connect_engine(int kind, uint64_t token)
{
	int saved = errno, s, n;
	int64_t ret;
	struct ucred cred;
	socklen_t credlen = sizeof(cred);

	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		goto out;
	if (connect(s, (struct sockaddr *)&g_addr, sizeof(g_addr))) {
		real.close(s);
		goto out;
	}
	n = real.fcntl(s, F_DUPFD_CLOEXEC, UIOMMU_SOCK_FD_MIN);
	if (n >= 0) {
		real.close(s);
		s = n;
	}
	g_sock = s;
	g_conn_pid = getpid();
	/* Let the engine read our memory even under Yama ptrace_scope 1. */
	if (!getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &credlen))
		prctl(PR_SET_PTRACER, (unsigned long)cred.pid, 0, 0, 0);
	ret = hello(kind, token);
	if (ret == -2 || (ret < 0 && kind != UIOMMU_HELLO_EXEC)) {
		lose();
	} else if (ret < 0) {
		lose();
		errno = saved;
		return connect_engine(UIOMMU_HELLO_NEW, 0);
	}
out:
	errno = saved;
	return g_sock >= 0 ? 0 : -1;
}

static void atfork_child(void)
{
	lock_reinit();
}

static char *dup_env(const char *name)
{
	size_t n = strlen(name);
	char **e;

	for (e = environ; e && *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return strdup(*e);
	return NULL;
}

static void init(void)
{
	const char *sock, *root, *exec;
	int kind = UIOMMU_HELLO_NEW;
	struct guard g;

	resolve();
	sock = getenv(UIOMMU_ENV_SOCK);
	if (!sock || !*sock)
		return;
	g_active = 1;
	root = getenv(UIOMMU_ENV_ROOT);
	if (root && *root == '/' && strlen(root) < sizeof(g_root)) {
		strcpy(g_root, root);
		g_rootlen = strlen(g_root);
		while (g_rootlen > 1 && g_root[g_rootlen - 1] == '/')
			g_root[--g_rootlen] = 0;
		if (real.realpath(g_root, g_rootreal))
			g_rootreallen = strlen(g_rootreal);
	}
	g_keep_env[0] = dup_env(UIOMMU_ENV_SOCK);
	g_keep_env[1] = dup_env(UIOMMU_ENV_ROOT);
	g_keep_env[2] = dup_env("LD_PRELOAD");
	exec = getenv(UIOMMU_ENV_EXEC);
	if (exec) {
		if (atoi(exec) == getpid())
			kind = UIOMMU_HELLO_EXEC;
		unsetenv(UIOMMU_ENV_EXEC);
	}
	if (strlen(sock) >= sizeof(g_addr.sun_path))
		return; /* active, but no connection: engine fds cannot exist */
	g_addr.sun_family = AF_UNIX;
	strcpy(g_addr.sun_path, sock);
	pthread_atfork(NULL, NULL, atfork_child);
	enter(&g);
	connect_engine(kind, 0);
	leave(&g);
}

static void ensure_init(void)
{
	pthread_once(&g_once, init);
}

/*
 * Connects at load time. A library initialised before this one (the loader
 * runs preloaded objects' constructors late) reaches us through lazy init on
 * its first interposed call.
 */
__attribute__((constructor(101))) static void preload_ctor(void)
{
	ensure_init();
}

/* ---- paths ------------------------------------------------------------- */

enum route { ROUTE_REAL, ROUTE_FAKE, ROUTE_ENGINE };

/* Lexically normalises an absolute path ("//", ".", ".."). Returns -1 if too long. */
static int normalize(const char *in, char *out)
{
	size_t o = 0;

	out[0] = 0;
	while (*in) {
		const char *seg;
		size_t n;

		while (*in == '/')
			in++;
		seg = in;
		while (*in && *in != '/')
			in++;
		n = in - seg;
		if (n == 0 || (n == 1 && seg[0] == '.'))
			continue;
		if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			while (o && out[o - 1] != '/')
				o--;
			if (o)
				o--;
			out[o] = 0;
			continue;
		}
		if (o + 1 + n >= PATH_MAX)
			return -1;
		out[o++] = '/';
		memcpy(out + o, seg, n);
		o += n;
		out[o] = 0;
	}
	if (!o) {
		out[0] = '/';
		out[1] = 0;
	}
	return 0;
}

static int starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/*
 * Where an absolute /sys or /dev path goes. ROUTE_ENGINE fills `norm` with
 * the normalised path (/dev/iommu, /dev/vfio/X where X is not a directory
 * of the fake tree); ROUTE_FAKE fills `fake` with UIOMMU_ROOT + path when
 * that exists. Relative paths are never routed. errno is preserved.
 */
static enum route classify(const char *path, char *norm, char *fake)
{
	int saved = errno;
	enum route r = ROUTE_REAL;
	struct statx stx;

	ensure_init();
	if (!g_active || !path || path[0] != '/' || normalize(path, norm))
		return ROUTE_REAL;
	if (!starts(norm, "/sys/") && !starts(norm, "/dev/"))
		return ROUTE_REAL;
	if (g_rootlen && g_rootlen + strlen(path) < PATH_MAX) {
		memcpy(fake, g_root, g_rootlen);
		strcpy(fake + g_rootlen, path);
		if (!sys_statx(AT_FDCWD, fake, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx))
			r = ROUTE_FAKE;
	}
	if (!strcmp(norm, "/dev/iommu") || (starts(norm, "/dev/vfio/") && norm[10])) {
		if (r != ROUTE_FAKE || !S_ISDIR(stx.stx_mode))
			r = ROUTE_ENGINE;
	}
	errno = saved;
	return r;
}

/* Removes the UIOMMU_ROOT prefix from a resolved path, in place. */
static void strip_root(char *p)
{
	const char *roots[2] = { g_root, g_rootreal };
	size_t lens[2] = { g_rootlen, g_rootreallen };
	int i;

	for (i = 0; i < 2; i++) {
		if (lens[i] > 1 && !strncmp(p, roots[i], lens[i]) && p[lens[i]] == '/') {
			memmove(p, p + lens[i], strlen(p + lens[i]) + 1);
			return;
		}
	}
}

/* ---- engine fds -------------------------------------------------------- */

/* Reserves a placeholder: a readable+writable eventfd at the lowest free number. */
static int reserve(int cloexec)
{
	uint64_t one = 1;
	int fd = eventfd(0, EFD_NONBLOCK | (cloexec ? EFD_CLOEXEC : 0));

	if (fd < 0)
		return -1;
	if (fd >= MAX_FDS) {
		real.close(fd);
		errno = EMFILE;
		return -1;
	}
	if (real.write(fd, &one, sizeof(one)) != sizeof(one)) {
		real.close(fd);
		errno = EIO;
		return -1;
	}
	return fd;
}

static int engine_open(const char *norm, int flags)
{
	int saved = errno, fd, err;
	struct uiommu_req rq = new_req(UIOMMU_OP_OPEN);
	struct uiommu_resp rs;
	struct guard g;

	fd = reserve(flags & O_CLOEXEC);
	if (fd < 0)
		return -1;
	enter(&g);
	rq.a[0] = fd;
	rq.a[1] = (uint32_t)flags;
	if (call(&rq, norm, strlen(norm) + 1, &rs, NULL, 0))
		err = EIO;
	else
		err = rs.ret < 0 ? (rs.err ? rs.err : EIO) : 0;
	if (!err)
		bit_set(fd);
	leave(&g);
	if (err) {
		real.close(fd);
		errno = err;
		return -1;
	}
	errno = saved;
	return fd;
}

/* After a real dup of engine fd `oldfd` onto `newfd`: tell the engine. */
static void engine_dup(int oldfd, int newfd)
{
	struct uiommu_resp rs;

	if (newfd >= MAX_FDS)
		return;
	if (call_simple(UIOMMU_OP_DUP, oldfd, newfd, &rs) >= 0 || rs.err == EIO)
		bit_set(newfd);
	else
		bit_clear(newfd);
}

/* Sends CLOSE for an engine fd and forgets it (caller holds the lock). */
static void engine_forget(int fd)
{
	struct uiommu_resp rs;

	bit_clear(fd);
	call_simple(UIOMMU_OP_CLOSE, fd, 0, &rs);
}

static int creates_file(unsigned long request)
{
	switch (request & 0xffff) {
	case UIOMMU_IOC_VFIO_GROUP_GET_DEVICE_FD:
	case UIOMMU_IOC_IOMMU_FAULT_QUEUE_ALLOC:
	case UIOMMU_IOC_IOMMU_VEVENTQ_ALLOC:
	case UIOMMU_IOC_IOMMU_TEST_CMD:
		return 1;
	}
	return 0;
}

static int engine_ioctl(int fd, unsigned long request, void *arg)
{
	int saved = errno, spare = -1;
	struct uiommu_req rq = new_req(UIOMMU_OP_IOCTL);
	struct uiommu_resp rs;
	struct guard g;

	enter(&g);
	if (!bit_test(fd)) {
		leave(&g);
		return real.ioctl(fd, request, arg);
	}
	if (creates_file(request)) {
		spare = reserve(1);
		if (spare < 0) {
			saved = errno;
			leave(&g);
			errno = saved;
			return -1;
		}
	}
	rq.a[0] = fd;
	rq.a[1] = request;
	rq.a[2] = (uintptr_t)arg;
	rq.a[3] = (uint64_t)(int64_t)spare;
	if (call(&rq, NULL, 0, &rs, NULL, 0)) {
		rs.ret = -1;
		rs.err = EIO;
		rs.newfd = -1;
	}
	if (spare >= 0) {
		if (rs.newfd == spare)
			bit_set(spare);
		else
			real.close(spare);
	}
	leave(&g);
	errno = rs.ret < 0 ? (rs.err ? rs.err : EIO) : saved;
	return (int)rs.ret;
}

static ssize_t engine_rw(uint32_t op, int fd, uintptr_t buf, size_t count, off_t off)
{
	int saved = errno;
	struct uiommu_req rq = new_req(op);
	struct uiommu_resp rs;
	struct guard g;

	rq.a[0] = fd;
	rq.a[1] = buf;
	rq.a[2] = count;
	rq.a[3] = (uint64_t)off;
	enter(&g);
	if (call(&rq, NULL, 0, &rs, NULL, 0)) {
		rs.ret = -1;
		rs.err = EIO;
	}
	leave(&g);
	errno = rs.ret < 0 ? (rs.err ? rs.err : EIO) : saved;
	return rs.ret;
}

/*
 * STAT (norm != NULL) or FSTAT (fd): 1 and *out for a device node, 0 for an
 * anonymous file, -1 with errno on failure.
 */
static int engine_stat(const char *norm, int fd, struct uiommu_stat *out)
{
	int saved = errno;
	struct uiommu_req rq = new_req(norm ? UIOMMU_OP_STAT : UIOMMU_OP_FSTAT);
	struct uiommu_resp rs;
	struct guard g;
	int r;

	memset(out, 0, sizeof(*out));
	rq.a[0] = (uint64_t)(int64_t)fd;
	enter(&g);
	r = call(&rq, norm, norm ? strlen(norm) + 1 : 0, &rs, out, sizeof(*out));
	leave(&g);
	if (r) {
		errno = EIO;
		return -1;
	}
	if (rs.ret < 0) {
		errno = rs.err ? rs.err : EIO;
		return -1;
	}
	errno = saved;
	return rs.ret > 0 && rs.len >= sizeof(*out);
}

/* The device node at engine path `norm`: 0 and *out, or -1 with errno (ENOENT when none). */
static int engine_node(const char *norm, struct uiommu_stat *out)
{
	int r = engine_stat(norm, -1, out);

	if (r == 0)
		errno = ENOENT;
	return r > 0 ? 0 : -1;
}

static void node_stat(struct stat *st, const struct uiommu_stat *ps, int fresh)
{
	if (fresh) {
		memset(st, 0, sizeof(*st));
		st->st_nlink = 1;
		st->st_blksize = 4096;
		st->st_ino = makedev(ps->major, ps->minor) + 1;
	}
	st->st_mode = S_IFCHR | (ps->mode & 07777);
	st->st_rdev = makedev(ps->major, ps->minor);
	st->st_size = 0;
}

static void node_statx(struct statx *stx, const struct uiommu_stat *ps, int fresh)
{
	if (fresh) {
		memset(stx, 0, sizeof(*stx));
		stx->stx_mask = STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_INO | STATX_SIZE;
		stx->stx_nlink = 1;
		stx->stx_blksize = 4096;
		stx->stx_ino = makedev(ps->major, ps->minor) + 1;
	}
	stx->stx_mask |= STATX_TYPE | STATX_MODE;
	stx->stx_mode = S_IFCHR | (ps->mode & 07777);
	stx->stx_rdev_major = ps->major;
	stx->stx_rdev_minor = ps->minor;
	stx->stx_size = 0;
}

/* ---- /proc/<pid>/status ----------------------------------------------- */

/*
 * The pid whose status file an absolute path names: /proc/self/status or
 * /proc/<digits>/status after normalisation; 0 for anything else.
 */
static pid_t status_pid(const char *path)
{
	char norm[PATH_MAX];
	const char *p;
	long pid = 0;

	ensure_init();
	if (!g_active || !path || path[0] != '/' || normalize(path, norm) || !starts(norm, "/proc/"))
		return 0;
	p = norm + 6;
	if (starts(p, "self/"))
		return strcmp(p + 5, "status") ? 0 : getpid();
	if (*p < '1' || *p > '9')
		return 0;
	while (*p >= '0' && *p <= '9' && pid <= INT_MAX)
		pid = pid * 10 + (*p++ - '0');
	return pid <= INT_MAX && !strcmp(p, "/status") ? (pid_t)pid : 0;
}

/*
 * Opens pid's status file as the engine shows it (VmLck/VmPin from the
 * model): a read-only fd of a memfd holding PROC_STATUS's answer, at the
 * lowest free number. -1 when the engine does not serve pid or anything
 * fails (the caller then opens the real file); errno is preserved.
 */
static int status_open(pid_t pid, int flags)
{
	int saved = errno, fd = -1, ro, r, cloexec = flags & O_CLOEXEC;
	struct uiommu_req rq = new_req(UIOMMU_OP_PROC_STATUS);
	struct uiommu_resp rs;
	struct guard g;
	char path[32];
	char *buf;

	if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC | O_DIRECTORY)))
		return -1;
	buf = mmap(NULL, UIOMMU_MAX_PAYLOAD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	if (buf == MAP_FAILED)
		goto out;
	rq.a[0] = (uint64_t)(int64_t)pid;
	enter(&g);
	r = call(&rq, NULL, 0, &rs, buf, UIOMMU_MAX_PAYLOAD);
	leave(&g);
	if (r || rs.ret < 0 || rs.len > UIOMMU_MAX_PAYLOAD)
		goto unmap;
	fd = memfd_create("uiommu-status", cloexec ? MFD_CLOEXEC : 0);
	if (fd < 0)
		goto unmap;
	if (real.write(fd, buf, rs.len) != (ssize_t)rs.len || lseek(fd, 0, SEEK_SET)) {
		real.close(fd);
		fd = -1;
		goto unmap;
	}
	/* a read-only open file in the memfd's slot, like the real file's */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = real.openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (ro >= 0) {
		if (real.dup3(ro, fd, cloexec ? O_CLOEXEC : 0) < 0) {
			real.close(fd);
			fd = -1;
		}
		real.close(ro);
	}
unmap:
	munmap(buf, UIOMMU_MAX_PAYLOAD);
out:
	errno = saved;
	return fd;
}

/* ---- open family ------------------------------------------------------- */

static int do_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	char norm[PATH_MAX], fake[PATH_MAX];
	pid_t pid = status_pid(path);

	if (pid > 0) {
		int fd = status_open(pid, flags);

		if (fd >= 0)
			return fd;
	}
	switch (classify(path, norm, fake)) {
	case ROUTE_ENGINE:
		return engine_open(norm, flags);
	case ROUTE_FAKE:
		return real.openat(AT_FDCWD, fake, flags, mode);
	default:
		return real.openat(dirfd, path, flags, mode);
	}
}

#define OPEN_MODE(flags, mode)                                               \
	do {                                                                 \
		if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) { \
			va_list ap;                                          \
			va_start(ap, flags);                                 \
			mode = va_arg(ap, int);                              \
			va_end(ap);                                          \
		}                                                            \
	} while (0)

EXPORT int open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return do_openat(AT_FDCWD, path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return do_openat(AT_FDCWD, path, flags, mode);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return do_openat(dirfd, path, flags, mode);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return do_openat(dirfd, path, flags, mode);
}

/* The _FORTIFY_SOURCE entry points (no mode: O_CREAT is refused by the compiler). */
EXPORT int __open_2(const char *path, int flags)
{
	return do_openat(AT_FDCWD, path, flags, 0);
}

EXPORT int __open64_2(const char *path, int flags)
{
	return do_openat(AT_FDCWD, path, flags, 0);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	return do_openat(dirfd, path, flags, 0);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	return do_openat(dirfd, path, flags, 0);
}

EXPORT int creat(const char *path, mode_t mode)
{
	return do_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

EXPORT int creat64(const char *path, mode_t mode)
{
	return do_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

/*
 * stdio streams on the fake tree, and on the engine's view of a status file
 * (read-only modes); an engine path is not rewritten (stdio would not reach
 * the engine).
 */
static FILE *do_fopen(const char *path, const char *how)
{
	char norm[PATH_MAX], fake[PATH_MAX];
	pid_t pid = status_pid(path);

	if (pid > 0 && how && how[0] == 'r' && !strchr(how, '+')) {
		int fd = status_open(pid, O_RDONLY | (strchr(how, 'e') ? O_CLOEXEC : 0));

		if (fd >= 0) {
			FILE *f = fdopen(fd, how);
			int e = errno;

			if (!f)
				real.close(fd);
			errno = e;
			return f;
		}
	}
	if (classify(path, norm, fake) == ROUTE_FAKE)
		return real.fopen(fake, how);
	return real.fopen(path, how);
}

EXPORT FILE *fopen(const char *path, const char *how)
{
	return do_fopen(path, how);
}

EXPORT FILE *fopen64(const char *path, const char *how)
{
	return do_fopen(path, how);
}

/* ---- close and dup ----------------------------------------------------- */

EXPORT int close(int fd)
{
	int r, e;
	struct guard g;

	ensure_init();
	if (fd >= 0 && fd == g_sock) {
		errno = EBADF; /* not the program's fd */
		return -1;
	}
	if (!bit_test(fd))
		return real.close(fd);
	enter(&g);
	if (bit_test(fd))
		engine_forget(fd);
	r = real.close(fd);
	e = errno;
	leave(&g);
	errno = e;
	return r;
}

/* Moves our socket out of the way of a dup onto its number (caller holds the lock). */
static void move_sock(void)
{
	int n = real.fcntl(g_sock, F_DUPFD_CLOEXEC, UIOMMU_SOCK_FD_MIN);

	if (n >= 0) {
		real.close(g_sock);
		g_sock = n;
	}
}

EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	struct guard g;
	unsigned int fd, end;
	int r = 0, e;

	ensure_init();
	if (!g_active || first > last || (flags & CLOSE_RANGE_CLOEXEC))
		return real.close_range(first, last, flags);
	enter(&g);
	end = last < MAX_FDS - 1 ? last : MAX_FDS - 1;
	for (fd = first; fd <= end && fd < MAX_FDS; fd++) {
		if (!g_bits[fd / LONG_BITS]) {
			fd |= LONG_BITS - 1;
			continue;
		}
		if (bit_test(fd))
			engine_forget(fd);
	}
	if (g_sock >= 0 && (unsigned int)g_sock >= first && (unsigned int)g_sock <= last) {
		unsigned int s = g_sock;

		if (s > first)
			r = real.close_range(first, s - 1, flags);
		if (!r && s < last)
			r = real.close_range(s + 1, last, flags);
	} else {
		r = real.close_range(first, last, flags);
	}
	e = errno;
	leave(&g);
	errno = e;
	return r;
}

EXPORT void closefrom(int lowfd)
{
	if (lowfd >= 0)
		close_range(lowfd, ~0U, 0);
}

EXPORT int dup(int oldfd)
{
	struct guard g;
	int r, e;

	if (!bit_test(oldfd)) {
		ensure_init();
		return real.dup(oldfd);
	}
	enter(&g);
	r = real.dup(oldfd);
	e = errno;
	if (r >= 0 && bit_test(oldfd))
		engine_dup(oldfd, r);
	leave(&g);
	errno = e;
	return r;
}

/* dup2 (flags < 0) and dup3 with the engine's view kept in step. */
static int do_dup3(int oldfd, int newfd, int flags)
{
	struct guard g;
	int r, e;

	ensure_init();
#define REAL_DUP() (flags < 0 ? real.dup2(oldfd, newfd) : real.dup3(oldfd, newfd, flags))
	if (oldfd == newfd || (flags > 0 && (flags & ~O_CLOEXEC)))
		return REAL_DUP();
	if (g_sock >= 0 && newfd == g_sock) {
		enter(&g);
		if (newfd == g_sock)
			move_sock();
		leave(&g);
	}
	if (!bit_test(oldfd) && !bit_test(newfd))
		return REAL_DUP();
	enter(&g);
	if (bit_test(newfd) && !bit_test(oldfd)) {
		if (real.fcntl(oldfd, F_GETFD) < 0) {
			e = errno;
			leave(&g);
			errno = e;
			return -1;
		}
		engine_forget(newfd);
	}
	r = REAL_DUP();
	e = errno;
	if (r >= 0 && bit_test(oldfd))
		engine_dup(oldfd, newfd);
	leave(&g);
	errno = e;
	return r;
#undef REAL_DUP
}

EXPORT int dup2(int oldfd, int newfd)
{
	return do_dup3(oldfd, newfd, -1);
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
	return do_dup3(oldfd, newfd, flags);
}

static int do_fcntl(int (*fn)(int, int, ...), int fd, int cmd, void *arg)
{
	struct guard g;
	int r, e;

	if ((cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC) || !bit_test(fd))
		return fn(fd, cmd, arg);
	enter(&g);
	r = fn(fd, cmd, arg);
	e = errno;
	if (r >= 0 && bit_test(fd))
		engine_dup(fd, r);
	leave(&g);
	errno = e;
	return r;
}

EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	ensure_init();
	return do_fcntl(real.fcntl, fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	ensure_init();
	return do_fcntl(real.fcntl64, fd, cmd, arg);
}

/* ---- ioctl, read, write ------------------------------------------------ */

/* The KVM-VFIO device's attribute group and its file commands (KVM_DEV_VFIO_FILE*). */
#define KVM_DEV_VFIO_FILE 1
#define KVM_DEV_VFIO_FILE_ADD 1
#define KVM_DEV_VFIO_FILE_DEL 2

/*
 * KVM_SET_DEVICE_ATTR on a KVM-VFIO device (a real kernel fd) adding or
 * removing a VFIO file that is an engine fd: the kernel would see the
 * placeholder eventfd and refuse it (EINVAL, not a VFIO file). KVM only
 * uses the file for coherency and platform hooks that an emulated device
 * does not need, so the library answers 0 itself. Not modelled: EEXIST for
 * a second ADD, ENOENT for a DEL of a file never added, EINVAL for an
 * engine file that is no VFIO group or device.
 */
static int kvm_vfio_engine_file(int fd, unsigned long request, void *arg)
{
	struct kvm_device_attr attr;
	struct iovec local = { &attr, sizeof(attr) }, remote = { arg, sizeof(attr) };
	int32_t file;
	char link[64];

	if ((unsigned int)request != (unsigned int)KVM_SET_DEVICE_ATTR)
		return 0;
	/* the arguments may be bad pointers: read them without faulting */
	if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != sizeof(attr))
		return 0;
	if (attr.group != KVM_DEV_VFIO_FILE ||
	    (attr.attr != KVM_DEV_VFIO_FILE_ADD && attr.attr != KVM_DEV_VFIO_FILE_DEL))
		return 0;
	local = (struct iovec){ &file, sizeof(file) };
	remote = (struct iovec){ (void *)(uintptr_t)attr.addr, sizeof(file) };
	if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != sizeof(file))
		return 0;
	if (file < 0 || !bit_test(file))
		return 0;
	return fd_link(fd, link, sizeof(link)) >= 0 && strcmp(link, "anon_inode:kvm-vfio") == 0;
}

/*
 * FIOCLEX and FIONCLEX act on the fd, not the file (the kernel answers them
 * before any driver): they stay with the placeholder.
 */
EXPORT int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (bit_test(fd) && (unsigned int)request != FIOCLEX && (unsigned int)request != FIONCLEX)
		return engine_ioctl(fd, request, arg);
	ensure_init();
	if (kvm_vfio_engine_file(fd, request, arg))
		return 0;
	return real.ioctl(fd, request, arg);
}

EXPORT ssize_t read(int fd, void *buf, size_t count)
{
	if (bit_test(fd))
		return engine_rw(UIOMMU_OP_READ, fd, (uintptr_t)buf, count, 0);
	ensure_init();
	return real.read(fd, buf, count);
}

EXPORT ssize_t write(int fd, const void *buf, size_t count)
{
	if (bit_test(fd))
		return engine_rw(UIOMMU_OP_WRITE, fd, (uintptr_t)buf, count, 0);
	ensure_init();
	return real.write(fd, buf, count);
}

static ssize_t do_pread(int fd, void *buf, size_t count, off_t off)
{
	if (bit_test(fd))
		return engine_rw(UIOMMU_OP_PREAD, fd, (uintptr_t)buf, count, off);
	ensure_init();
	return real.pread(fd, buf, count, off);
}

static ssize_t do_pwrite(int fd, const void *buf, size_t count, off_t off)
{
	if (bit_test(fd))
		return engine_rw(UIOMMU_OP_PWRITE, fd, (uintptr_t)buf, count, off);
	ensure_init();
	return real.pwrite(fd, buf, count, off);
}

EXPORT ssize_t pread(int fd, void *buf, size_t count, off_t off)
{
	return do_pread(fd, buf, count, off);
}

EXPORT ssize_t pread64(int fd, void *buf, size_t count, off64_t off)
{
	return do_pread(fd, buf, count, off);
}

EXPORT ssize_t pwrite(int fd, const void *buf, size_t count, off_t off)
{
	return do_pwrite(fd, buf, count, off);
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t off)
{
	return do_pwrite(fd, buf, count, off);
}

/* _FORTIFY_SOURCE variants: the buffer-size check, then the call above. */
EXPORT ssize_t __read_chk(int fd, void *buf, size_t count, size_t buflen)
{
	if (count > buflen)
		__chk_fail();
	return read(fd, buf, count);
}

EXPORT ssize_t __pread_chk(int fd, void *buf, size_t count, off_t off, size_t buflen)
{
	if (count > buflen)
		__chk_fail();
	return do_pread(fd, buf, count, off);
}

EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t count, off64_t off, size_t buflen)
{
	if (count > buflen)
		__chk_fail();
	return do_pread(fd, buf, count, off);
}

/* ---- stat family ------------------------------------------------------- */

/* "" (or NULL, which Linux 6.11+ accepts) with AT_EMPTY_PATH names dirfd itself. */
static int empty_path(const char *path)
{
	return !path || !path[0];
}

static int do_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	char norm[PATH_MAX], fake[PATH_MAX];
	struct uiommu_stat ps;
	int r;

	ensure_init();
	if (empty_path(path) && (flags & AT_EMPTY_PATH) && bit_test(dirfd)) {
		r = real.fstatat(dirfd, path, st, flags);
		if (r == 0 && engine_stat(NULL, dirfd, &ps) > 0)
			node_stat(st, &ps, 0);
		return r;
	}
	switch (classify(path, norm, fake)) {
	case ROUTE_ENGINE:
		if (engine_node(norm, &ps))
			return -1;
		node_stat(st, &ps, 1);
		return 0;
	case ROUTE_FAKE:
		return real.fstatat(AT_FDCWD, fake, st, flags);
	default:
		return real.fstatat(dirfd, path, st, flags);
	}
}

EXPORT int stat(const char *path, struct stat *st)
{
	return do_fstatat(AT_FDCWD, path, st, 0);
}

EXPORT int stat64(const char *path, struct stat64 *st)
{
	return do_fstatat(AT_FDCWD, path, (struct stat *)st, 0);
}

EXPORT int lstat(const char *path, struct stat *st)
{
	return do_fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}

EXPORT int lstat64(const char *path, struct stat64 *st)
{
	return do_fstatat(AT_FDCWD, path, (struct stat *)st, AT_SYMLINK_NOFOLLOW);
}

EXPORT int fstat(int fd, struct stat *st)
{
	return do_fstatat(fd, "", st, AT_EMPTY_PATH);
}

EXPORT int fstat64(int fd, struct stat64 *st)
{
	return do_fstatat(fd, "", (struct stat *)st, AT_EMPTY_PATH);
}

EXPORT int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	return do_fstatat(dirfd, path, st, flags);
}

EXPORT int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
	return do_fstatat(dirfd, path, (struct stat *)st, flags);
}

/*
 * The pre-2.33 glibc entry points that older binaries call; `ver` is assumed
 * to name the current struct stat layout (_STAT_VER).
 */
EXPORT int __xstat(int ver, const char *path, struct stat *st)
{
	(void)ver;
	return do_fstatat(AT_FDCWD, path, st, 0);
}

EXPORT int __xstat64(int ver, const char *path, struct stat64 *st)
{
	(void)ver;
	return do_fstatat(AT_FDCWD, path, (struct stat *)st, 0);
}

EXPORT int __lxstat(int ver, const char *path, struct stat *st)
{
	(void)ver;
	return do_fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}

EXPORT int __lxstat64(int ver, const char *path, struct stat64 *st)
{
	(void)ver;
	return do_fstatat(AT_FDCWD, path, (struct stat *)st, AT_SYMLINK_NOFOLLOW);
}

EXPORT int __fxstat(int ver, int fd, struct stat *st)
{
	(void)ver;
	return do_fstatat(fd, "", st, AT_EMPTY_PATH);
}

EXPORT int __fxstat64(int ver, int fd, struct stat64 *st)
{
	(void)ver;
	return do_fstatat(fd, "", (struct stat *)st, AT_EMPTY_PATH);
}

EXPORT int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags)
{
	(void)ver;
	return do_fstatat(dirfd, path, st, flags);
}

EXPORT int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags)
{
	(void)ver;
	return do_fstatat(dirfd, path, (struct stat *)st, flags);
}

EXPORT int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *stx)
{
	char norm[PATH_MAX], fake[PATH_MAX];
	struct uiommu_stat ps;
	int r;

	ensure_init();
	if (empty_path(path) && (flags & AT_EMPTY_PATH) && bit_test(dirfd)) {
		r = real.statx(dirfd, path, flags, mask, stx);
		if (r == 0 && engine_stat(NULL, dirfd, &ps) > 0)
			node_statx(stx, &ps, 0);
		return r;
	}
	switch (classify(path, norm, fake)) {
	case ROUTE_ENGINE:
		if (engine_node(norm, &ps))
			return -1;
		node_statx(stx, &ps, 1);
		return 0;
	case ROUTE_FAKE:
		return real.statx(AT_FDCWD, fake, flags, mask, stx);
	default:
		return real.statx(dirfd, path, flags, mask, stx);
	}
}

/* ---- access, readlink, realpath, directories --------------------------- */

static int do_faccessat(int dirfd, const char *path, int how, int flags)
{
	char norm[PATH_MAX], fake[PATH_MAX];
	struct uiommu_stat ps;

	switch (classify(path, norm, fake)) {
	case ROUTE_ENGINE:
		/* the engine's nodes are accessible to the program */
		return engine_node(norm, &ps);
	case ROUTE_FAKE:
		return real.faccessat(AT_FDCWD, fake, how, flags);
	default:
		return real.faccessat(dirfd, path, how, flags);
	}
}

EXPORT int access(const char *path, int how)
{
	return do_faccessat(AT_FDCWD, path, how, 0);
}

EXPORT int faccessat(int dirfd, const char *path, int how, int flags)
{
	return do_faccessat(dirfd, path, how, flags);
}

EXPORT int euidaccess(const char *path, int how)
{
	return do_faccessat(AT_FDCWD, path, how, AT_EACCESS);
}

EXPORT int eaccess(const char *path, int how)
{
	return do_faccessat(AT_FDCWD, path, how, AT_EACCESS);
}

static ssize_t do_readlinkat(int dirfd, const char *path, char *buf, size_t size)
{
	char norm[PATH_MAX], fake[PATH_MAX];

	if (classify(path, norm, fake) == ROUTE_FAKE)
		return real.readlinkat(AT_FDCWD, fake, buf, size);
	return real.readlinkat(dirfd, path, buf, size);
}

EXPORT ssize_t readlink(const char *path, char *buf, size_t size)
{
	return do_readlinkat(AT_FDCWD, path, buf, size);
}

EXPORT ssize_t readlinkat(int dirfd, const char *path, char *buf, size_t size)
{
	return do_readlinkat(dirfd, path, buf, size);
}

EXPORT ssize_t __readlink_chk(const char *path, char *buf, size_t size, size_t buflen)
{
	if (size > buflen)
		__chk_fail();
	return do_readlinkat(AT_FDCWD, path, buf, size);
}

EXPORT ssize_t __readlinkat_chk(int dirfd, const char *path, char *buf, size_t size,
				size_t buflen)
{
	if (size > buflen)
		__chk_fail();
	return do_readlinkat(dirfd, path, buf, size);
}

EXPORT char *realpath(const char *path, char *resolved)
{
	char norm[PATH_MAX], fake[PATH_MAX];
	struct uiommu_stat ps;
	char *r;

	switch (classify(path, norm, fake)) {
	case ROUTE_ENGINE:
		if (engine_stat(norm, -1, &ps) < 0)
			return NULL;
		if (resolved)
			return strcpy(resolved, norm);
		r = strdup(norm);
		if (!r)
			errno = ENOMEM;
		return r;
	case ROUTE_FAKE:
		r = real.realpath(fake, resolved);
		if (r)
			strip_root(r);
		return r;
	default:
		return real.realpath(path, resolved);
	}
}

EXPORT char *__realpath_chk(const char *path, char *resolved, size_t resolvedlen)
{
	if (resolvedlen < PATH_MAX)
		__chk_fail();
	return realpath(path, resolved);
}

EXPORT char *canonicalize_file_name(const char *path)
{
	return realpath(path, NULL);
}

EXPORT DIR *opendir(const char *path)
{
	char norm[PATH_MAX], fake[PATH_MAX];

	if (classify(path, norm, fake) == ROUTE_FAKE)
		return real.opendir(fake);
	return real.opendir(path);
}

typedef int (*dirent_filter)(const struct dirent *);
typedef int (*dirent_compar)(const struct dirent **, const struct dirent **);

EXPORT int scandir(const char *path, struct dirent ***list, dirent_filter filter,
		   dirent_compar compar)
{
	char norm[PATH_MAX], fake[PATH_MAX];

	if (classify(path, norm, fake) == ROUTE_FAKE)
		return real.scandir(fake, list, filter, compar);
	return real.scandir(path, list, filter, compar);
}

/* struct dirent64 is struct dirent on 64-bit. */
EXPORT int scandir64(const char *path, struct dirent64 ***list,
		     int (*filter)(const struct dirent64 *),
		     int (*compar)(const struct dirent64 **, const struct dirent64 **))
{
	return scandir(path, (struct dirent ***)list, (dirent_filter)filter, (dirent_compar)compar);
}

/* ---- fork -------------------------------------------------------------- */

/*
 * FORK_BEGIN, the real fork, FORK_END, all under the lock so the engine's
 * snapshot matches the bitmap the child inherits. The child drops the
 * inherited connection (no shutdown: the parent still uses it) and says
 * HELLO kind 1 with the token on a connection of its own.
 */
EXPORT pid_t fork(void)
{
	struct uiommu_resp rs;
	struct guard g;
	uint64_t token = 0;
	pid_t pid;
	int e;

	ensure_init();
	if (!g_active)
		return real.fork();
	enter(&g);
	if (call_simple(UIOMMU_OP_FORK_BEGIN, 0, 0, &rs) > 0)
		token = rs.ret;
	g_fork_token = token;
	g_fork_parent = getpid();
	pid = real.fork();
	if (pid == 0) {
		lock_reinit();
		lose();
		if (token)
			connect_engine(UIOMMU_HELLO_FORK_CHILD, token);
		g_fork_token = 0;
		pthread_setcancelstate(g.cancel, NULL);
		pthread_sigmask(SIG_SETMASK, &g.old, NULL);
		return 0;
	}
	e = errno;
	g_fork_token = 0;
	if (token)
		call_simple(UIOMMU_OP_FORK_END, token, (uint64_t)(int64_t)(pid < 0 ? -1 : pid), &rs);
	leave(&g);
	errno = e;
	return pid;
}

/* vfork is fork here: the child gets its own connection (POSIX lets vfork be fork). */
EXPORT pid_t vfork(void)
{
	return fork();
}

/* ---- exec -------------------------------------------------------------- */

/*
 * The environment for the new image: envp without any UIOMMU_EXEC, plus
 * UIOMMU_EXEC=<our pid> when `mark`, plus UIOMMU_SOCK, UIOMMU_ROOT and
 * LD_PRELOAD from our start if envp dropped them. mmap'd, so it is safe in a
 * fork child; exec_env_free() releases it.
 */
static char **exec_env(char *const envp[], int mark, char *pidvar, size_t *size)
{
	size_t n = 0, k = 0, i, j;
	char **env;

	while (envp && envp[n])
		n++;
	*size = (n + 2 + sizeof(g_keep_env) / sizeof(g_keep_env[0])) * sizeof(char *);
	env = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (env == MAP_FAILED)
		return NULL;
	for (i = 0; i < n; i++)
		if (!starts(envp[i], UIOMMU_ENV_EXEC "="))
			env[k++] = envp[i];
	for (j = 0; j < sizeof(g_keep_env) / sizeof(g_keep_env[0]); j++) {
		size_t len;

		if (!g_keep_env[j])
			continue;
		len = strchr(g_keep_env[j], '=') - g_keep_env[j] + 1;
		for (i = 0; i < n; i++)
			if (!strncmp(envp[i], g_keep_env[j], len))
				break;
		if (i == n)
			env[k++] = g_keep_env[j];
	}
	if (mark) {
		pid_t pid = getpid();
		char digits[12];
		int d = 0;
		size_t p = strlen(UIOMMU_ENV_EXEC "=");

		memcpy(pidvar, UIOMMU_ENV_EXEC "=", p);
		do {
			digits[d++] = '0' + pid % 10;
			pid /= 10;
		} while (pid);
		while (d)
			pidvar[p++] = digits[--d];
		pidvar[p] = 0;
		env[k++] = pidvar;
	}
	env[k] = NULL;
	return env;
}

enum exec_kind { EXEC_PATH, EXEC_SEARCH, EXEC_FD };

/*
 * EXEC_BEGIN, the real exec with signals as the caller had them, and
 * EXEC_ABORT if it returns. The lock is held throughout, so no other thread's
 * request falls between EXEC_BEGIN and the exec.
 */
static int do_exec(enum exec_kind kind, const char *path, int fd, char *const argv[],
		   char *const envp[])
{
	struct uiommu_resp rs;
	struct guard g;
	sigset_t all;
	char pidvar[32];
	char **env;
	size_t size;
	int begun, e;

	ensure_init();
	if (!g_active)
		goto plain;
	enter(&g);
	begun = call_simple(UIOMMU_OP_EXEC_BEGIN, 0, 0, &rs) == 0;
	env = exec_env(envp, begun, pidvar, &size);
	if (!env) {
		if (begun)
			call_simple(UIOMMU_OP_EXEC_ABORT, 0, 0, &rs);
		leave(&g);
		errno = ENOMEM;
		return -1;
	}
	pthread_sigmask(SIG_SETMASK, &g.old, NULL);
	if (kind == EXEC_PATH)
		real.execve(path, argv, env);
	else if (kind == EXEC_SEARCH)
		real.execvpe(path, argv, env);
	else
		real.fexecve(fd, argv, env);
	e = errno;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	if (begun)
		call_simple(UIOMMU_OP_EXEC_ABORT, 0, 0, &rs);
	munmap(env, size);
	leave(&g);
	errno = e;
	return -1;
plain:
	if (kind == EXEC_PATH)
		return real.execve(path, argv, envp);
	if (kind == EXEC_SEARCH)
		return real.execvpe(path, argv, envp);
	return real.fexecve(fd, argv, envp);
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	return do_exec(EXEC_PATH, path, -1, argv, envp);
}

EXPORT int execv(const char *path, char *const argv[])
{
	return do_exec(EXEC_PATH, path, -1, argv, environ);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	return do_exec(EXEC_SEARCH, file, -1, argv, envp);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	return do_exec(EXEC_SEARCH, file, -1, argv, environ);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	return do_exec(EXEC_FD, NULL, fd, argv, envp);
}

/* glibc's execl* call execve inside libc, out of our reach: rebuild them on execve/execvpe. */
#define COLLECT_ARGS(arg0, argv)                          \
	size_t argc = 1;                                  \
	va_list ap;                                       \
	va_start(ap, arg0);                               \
	while (va_arg(ap, const char *))                  \
		argc++;                                   \
	va_end(ap);                                       \
	const char *argv[argc + 1];                       \
	argv[0] = arg0;                                   \
	va_start(ap, arg0);                               \
	for (size_t i_ = 1; i_ <= argc; i_++)             \
		argv[i_] = va_arg(ap, const char *);      \

EXPORT int execl(const char *path, const char *arg, ...)
{
	COLLECT_ARGS(arg, argv);
	va_end(ap);
	return do_exec(EXEC_PATH, path, -1, (char *const *)argv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	COLLECT_ARGS(arg, argv);
	va_end(ap);
	return do_exec(EXEC_SEARCH, file, -1, (char *const *)argv, environ);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
	char *const *envp;

	COLLECT_ARGS(arg, argv);
	envp = va_arg(ap, char *const *);
	va_end(ap);
	return do_exec(EXEC_PATH, path, -1, (char *const *)argv, envp);
}
