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
 * bitmap. Requests are serialised by one recursive lock per process, held
 * with cancellation disabled. Calls on the socket block every signal, so a
 * frame is never interleaved with another; ioctl, read and write of engine
 * fds go through the channel (chan.c), where a signal handler's call nests
 * in a slot of its own. When the connection is lost, engine fds
 * answer EIO and the program goes on.
 *
 * This header is internal to the library: what one file of it offers the
 * others. Everything declared here is hidden; only the interposed libc entry
 * points (EXPORT) are visible to the program.
 */
#ifndef UIOMMU_PRELOAD_H
#define UIOMMU_PRELOAD_H

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
#include <poll.h>
#include <linux/futex.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "../protocol.h"

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

#pragma GCC visibility push(hidden)

_Static_assert(sizeof(struct stat) == sizeof(struct stat64), "stat64 is stat on 64-bit");

/* ---- the real functions (real.c) --------------------------------------- */

typedef int (*stat_fn)(int, const char *, struct stat *, int);
typedef int (*dirent_filter)(const struct dirent *);
typedef int (*dirent_compar)(const struct dirent **, const struct dirent **);

/* libc's own entry points (the next definition after ours), set by resolve(). */
struct real_fns {
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
	int (*scandir)(const char *, struct dirent ***, dirent_filter, dirent_compar);
	struct dirent *(*readdir)(DIR *);
	int (*readdir_r)(DIR *, struct dirent *, struct dirent **);
	/* only guarded against the library's socket (hidden-fd.c) */
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*writev)(int, const struct iovec *, int);
	off_t (*lseek)(int, off_t, int);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*shutdown)(int, int);
	int (*getsockname)(int, struct sockaddr *, socklen_t *);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*epoll_ctl)(int, int, int, struct epoll_event *);
	int (*epoll_wait)(int, struct epoll_event *, int, int);
	int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
	int (*epoll_pwait2)(int, struct epoll_event *, int, const struct timespec *,
			    const sigset_t *);
	/* the socket's entries answer as for an fd that is not open (poll.c) */
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
	int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
	int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
		       const sigset_t *);
};

extern struct real_fns real;

/* Fills `real`; a symbol libc lacks falls back to the system call. */
void resolve(void);
/* statx through the kernel, reachable before resolve(). */
int sys_statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *stx);

/* ---- state, the lock, start-up (state.c) ------------------------------- */

/* Engine fds: one bit per fd number below MAX_FDS (the default nr_open). */
#define MAX_FDS (1 << 20)
#define LONG_BITS (8 * sizeof(unsigned long))
extern unsigned long g_bits[MAX_FDS / LONG_BITS];

extern int g_active;	      /* UIOMMU_SOCK was set */
extern int g_sock;	      /* the connection, -1 when lost */
extern pid_t g_conn_pid;      /* the process that owns g_sock */
extern uint64_t g_fork_token; /* set by fork() around the real fork */
extern pid_t g_fork_parent;
extern struct sockaddr_un g_addr;
extern char g_root[PATH_MAX]; /* UIOMMU_ROOT without trailing '/', or "" */
extern size_t g_rootlen;
extern char g_rootreal[PATH_MAX]; /* realpath(UIOMMU_ROOT) */
extern size_t g_rootreallen;
extern char *g_keep_env[4]; /* "NAME=value" of SOCK, ROOT, LD_PRELOAD, READY */
/* The program's address space changed (a successful mmap, munmap, mremap, mprotect ...). */
void mm_changed(void);
/* UIOMMU_REQ_MM_CHANGED when it changed since the last request that asked (caller holds the lock), else 0. */
uint16_t mm_changed_since_sent(void);

static inline int bit_test(int fd)
{
	if (fd < 0 || fd >= MAX_FDS)
		return 0;
	return (__atomic_load_n(&g_bits[fd / LONG_BITS], __ATOMIC_ACQUIRE) >> (fd % LONG_BITS)) & 1;
}

static inline void bit_set(int fd)
{
	__atomic_fetch_or(&g_bits[fd / LONG_BITS], 1UL << (fd % LONG_BITS), __ATOMIC_RELEASE);
}

static inline void bit_clear(int fd)
{
	if (fd >= 0 && fd < MAX_FDS)
		__atomic_fetch_and(&g_bits[fd / LONG_BITS], ~(1UL << (fd % LONG_BITS)),
				   __ATOMIC_RELEASE);
}

extern int g_stage; /* the staging memfd (stage.c), -1 when none */
extern int g_bell;  /* the channel's doorbell eventfd (chan.c), -1 when none */

/* How many fds the library has of its own: its socket, staging memfd and doorbell. */
#define LIB_FDS 3

/* The library's fds (-1 for those it has not), in ascending order. */
static inline void lib_fds(int fds[LIB_FDS])
{
	int a = g_sock, b = g_stage, c = g_bell, t;

	if (a > b)
		t = a, a = b, b = t;
	if (b > c)
		t = b, b = c, c = t;
	if (a > b)
		t = a, a = b, b = t;
	fds[0] = a;
	fds[1] = b;
	fds[2] = c;
}

/*
 * The library's own socket, staging memfd and doorbell are no fds of the
 * program's: every call the program makes on their numbers answers as for
 * an fd that is not open.
 */
static inline int lib_fd(int fd)
{
	return fd >= 0 && (fd == g_sock || fd == g_stage || fd == g_bell);
}

/* -1 with errno EBADF. */
static inline int ebadf(void)
{
	errno = EBADF;
	return -1;
}

/*
 * The lock, recursive, with cancellation disabled. enter() also blocks every
 * signal, for calls on the socket: a signal handler calling in must not
 * interleave frames. enter_unmasked() leaves signals alone, for calls that
 * may go through the channel (chan.c), where a handler's call nests in a
 * slot of its own; guard_mask() blocks them later when the call cannot.
 */
struct guard {
	sigset_t old;
	int cancel;
	int masked;
};

void enter(struct guard *g);
void enter_unmasked(struct guard *g);
void guard_mask(struct guard *g);
void leave(struct guard *g);
/* The nesting depth of the lock, for its holder: 1 for a call, 2 for one from a signal handler inside it ... */
int lock_depth(void);
/* A fork child starts with a fresh lock: the copy may be held by a thread that is gone. */
void lock_reinit(void);
/* Reads the environment and connects, once per process; every entry point calls it first. */
void ensure_init(void);

/* ---- this process's pid (self-pid.c) ------------------------------------ */

/* getpid() without a system call after the first; a child made by fork or clone asks again. */
pid_t self_pid(void);
/*
 * This thread's id, asked of the kernel once per thread and process (a fork
 * child asks again): unique among the live threads of the system.
 */
pid_t self_tid(void);

/* ---- the lazy engine (engine-wait.c) ------------------------------------ */

/*
 * At start-up (init): reads UIOMMU_READY; 1 when this process, of HELLO
 * `kind`, connects only at its first need of the engine.
 */
int engine_defer(int kind);
/* Before the first thing that needs the engine: waits until it serves, and connects if deferred. */
void engine_need(void);
/* A fork child inheriting no engine state: it connects at its first need, as a new process. */
void engine_defer_child(void);
/* 1 while this process has not connected and would connect at its first need. */
int engine_deferred(void);
/* 1 when normalised path `norm` lies in a top folder of the fake tree (the engine may serve it). */
int engine_serves(const char *norm);

/* ---- frames and the connection (conn.c) -------------------------------- */

/* Reads exactly `len` bytes; a NULL `buf` discards them. */
int recv_all(void *buf, size_t len);
/* Drops the connection: from now on engine fds answer EIO. */
void lose(void);
struct uiommu_req new_req(uint32_t op);
/*
 * One request/response exchange (caller holds the lock) on this process's
 * connection. Up to `cap` payload bytes land in `out`, the rest is
 * discarded. Returns -1 when the connection is gone, -2 when `payload` (the
 * program's memory) could not be read: nothing was sent, the connection is
 * fine. errno is preserved. rq->pid, when filled in, is this call's getpid().
 */
int call(struct uiommu_req *rq, const void *payload, size_t len, struct uiommu_resp *rs, void *out,
	 size_t cap);
/* The connection belongs to this process (a fork child behind our back reconnects or drops it); 0 when there is none. */
int conn_ready(pid_t me);
/* Fills in the request's pid, tid and address-space flags for a call of process `me`. */
void req_stamp(struct uiommu_req *rq, pid_t me);
/*
 * CHANNEL (caller holds the lock, signals blocked): this connection's
 * channel mapped, or NULL; with it, its doorbell eventfd in `*bell` (parked
 * as the library's fd 2).
 */
struct uiommu_chan *open_channel(int *bell);

/* ---- the channel (chan.c) ------------------------------------------------ */

/*
 * One exchange through the channel when it can be used, else on the socket
 * (then with signals blocked through `g`): `payload` is `len` bytes of the
 * program's memory (`user` set: read without faulting; when they cannot be
 * read the request goes without them) or of our own. As call() otherwise;
 * the caller holds the lock through enter_unmasked(g).
 */
int chan_call(struct guard *g, struct uiommu_req *rq, const void *payload, size_t len, int user,
	      struct uiommu_resp *rs, void *out, size_t cap);
/*
 * The connection is gone: its channel is no longer used (nor unmapped: a
 * nested call may hold it) and its doorbell is closed.
 */
void chan_forget(void);
/* A dup2 onto the doorbell's number: it moves away (caller holds the lock). */
void chan_move_bell(void);
/* After an RLIMIT_NOFILE change: the doorbell is parked anew (caller holds the lock). */
void chan_repark(void);

/* A request without payloads; returns the answer's ret (-1 with rs->err EIO if the connection is gone). */
int64_t call_simple(uint32_t op, uint64_t a0, uint64_t a1, struct uiommu_resp *rs);
/*
 * Opens this process's connection (caller holds the lock or is alone) and
 * says HELLO of `kind`; 0, or -1 when there is no connection.
 */
int connect_engine(int kind, uint64_t token);
/*
 * Moves socket `s` (close-on-exec) out of the program's range of fd numbers
 * (sock-park.c): at or just below its RLIMIT_NOFILE soft limit, else at
 * UIOMMU_SOCK_FD_MIN or above. Returns where it is now; errno is preserved.
 */
int sock_park(int s);
/* sock_park() for the library's k-th fd (the socket 0, the stage 1, the doorbell 2): a place of its own. */
int lib_park(int s, int k);
/*
 * Copies [src, src+len) of our own memory without faulting, as
 * copy_from_user sees it (unreadable pages refuse): bytes copied, 0 on a fault.
 */
size_t read_own(void *dst, uintptr_t src, size_t len);

/* The target of /proc/self/fd/<fd> into `link` (NUL-terminated); -1 if unreadable. */
ssize_t fd_link(int fd, char *link, size_t size);

/* ---- paths (paths.c) --------------------------------------------------- */

enum route { ROUTE_REAL, ROUTE_FAKE, ROUTE_ENGINE };

/* Lexically normalises an absolute path ("//", ".", ".."). Returns -1 if too long. */
int normalize(const char *in, char *out);
int starts(const char *s, const char *prefix);
/*
 * Where an absolute /sys or /dev path goes. ROUTE_ENGINE fills `norm` with
 * the normalised path (/dev/iommu, /dev/vfio/X where X is not a directory
 * of the fake tree); ROUTE_FAKE fills `fake` with UIOMMU_ROOT + path when
 * that exists, or when the path lies in a folder the emulated host owns
 * (UIOMMU_ROOT/owned): the fake path is then missing and the call answers
 * ENOENT, never with the host's file. The library socket's /proc entry
 * (hidden_proc_path) is ROUTE_FAKE to a missing file too. Relative paths
 * are never routed. errno is preserved.
 */
enum route classify(const char *path, char *norm, char *fake);
/* 1 when the engine generates the file at fake-tree path `norm` (its marker under UIOMMU_ROOT/.engine exists). */
int engine_attr(const char *norm);
/*
 * The path for a call that only ever reaches real files: the fake tree's
 * copy (`fake`, with *dirfd set to AT_FDCWD) when there is one, else `path`.
 */
const char *fake_or_real(const char *path, int *dirfd, char *fake);
/* Removes the UIOMMU_ROOT prefix from a resolved path, in place. */
void strip_root(char *p);

/* ---- engine fds (engine-fd.c) ------------------------------------------ */

/* Reserves a placeholder: a readable+writable eventfd at the lowest free number. */
int reserve(int cloexec);
/* OPEN of engine path `norm` into a fresh placeholder: the fd, or -1 with errno. */
int engine_open(const char *norm, int flags);
/* After a real dup of engine fd `oldfd` onto `newfd`: tell the engine. */
void engine_dup(int oldfd, int newfd);
/* Sends CLOSE for an engine fd and forgets it (caller holds the lock). */
void engine_forget(int fd);
/*
 * STAT (norm != NULL) or FSTAT (fd): 1 and *out for a device node, 0 for an
 * anonymous file, -1 with errno on failure.
 */
int engine_stat(const char *norm, int fd, struct uiommu_stat *out);
/* The device node at engine path `norm`: 0 and *out, or -1 with errno (ENOENT when none). */
int engine_node(const char *norm, struct uiommu_stat *out);

/* ---- SPAPR unmap leases (unmap-lease.c) ------------------------------- */

/* 1 when `request` is VFIO_IOMMU_UNMAP_DMA. */
int lease_is_unmap(unsigned long request);
/*
 * UNMAP_DMA on engine fd `fd` served from this connection's lease (caller
 * holds the lock): 1 with *ret and errno set, 0 when it must go to the engine.
 */
int lease_unmap(int fd, void *arg, int *ret);
/* Marks an UNMAP_DMA request as asking for a lease (a4: a new ring's memfd or -1). */
void lease_ask(struct uiommu_req *rq);
/* After any IOCTL request: closes the ring memfd it offered, if any. */
void lease_asked(void);

/* ---- copies to and from the program's memory (stage.c) ----------------- */

/*
 * Writes the `len` bytes at `bytes` over the pieces `to[0..n)` of the
 * program's memory, in order, as copy_to_user does (caller holds the lock):
 * the bytes written (short at a page that cannot be written), or -1 with
 * errno (EFAULT when none could be).
 */
ssize_t write_own(const struct iovec *to, int n, const void *bytes, size_t len);
/*
 * Reads [src, src+len) of the program's memory into `dst` as copy_from_user
 * does (caller holds the lock): the bytes read, short at a page that
 * cannot be read (0 when none).
 */
size_t read_user(void *dst, uintptr_t src, size_t len);
/*
 * 1 when [p, p+len) may be copied with memcpy: it lies in the calling
 * thread's stack at or above the library's frame, and the library runs on
 * that stack (stack-copy.c states the rule).
 */
int stack_holds(uintptr_t p, size_t len);
/* The program changes the mappings of [addr, addr+len) (before and after the real call). */
void stack_touched(uintptr_t addr, size_t len);
/* The program's RLIMIT_FSIZE was set to `set` (NULL: read it). */
void stage_fsize(const struct rlimit *set);
/*
 * Moves library fd `fd` out of the way of a dup onto its number: to the
 * lowest free fd >= UIOMMU_SOCK_FD_MIN, or, under a limit below that, the
 * lowest free one. Returns the new fd (the old one closed), or -1 (kept).
 */
int lib_move(int fd);
/* A dup2 onto the staging memfd's number: it moves away (caller holds the lock). */
void stage_move(void);
/* After an RLIMIT_NOFILE change: the staging memfd is parked anew (caller holds the lock). */
void stage_repark(void);

/* ---- /proc/<pid>/status (proc-status.c) -------------------------------- */

/*
 * The pid whose status file an absolute path names: /proc/self/status or
 * /proc/<digits>/status after normalisation; 0 for anything else.
 */
pid_t status_pid(const char *path);
/*
 * Opens pid's status file as the engine shows it (VmLck/VmPin from the
 * model); -1 when the engine does not serve pid or anything fails (the
 * caller then opens the real file); errno is preserved.
 */
int status_open(pid_t pid, int flags);
int attr_open(const char *norm, int flags);

/* ---- the socket's /proc entries (proc-fd.c) ----------------------------- */

/* Reads a pid, tid or fd number at *p (no leading zero); 0 when there is none. */
long proc_number(const char **p);
/*
 * Normalised path `norm` is the socket's entry in this process's /proc fd or
 * fdinfo folder (or below it): 1, with a missing entry's path in `fake`.
 */
int hidden_proc_path(const char *norm, char *fake);

/* ---- fault injection (fail-nth.c) ---------------------------------------- */

/*
 * Whether path names a fail-nth file of the calling process's tasks; writes
 * its /proc/<pid>/task/<tid>/fail-nth form to canon (PATH_MAX bytes).
 */
int fail_nth_path(const char *path, char *canon);

/* ---- device mappings (mmap.c) and their trap (trap.c) ------------------ */

#define MAX_BAR_MAPS 64
#define MAX_BAR_REGS 8

/* One device mapping: [start, end), the program's protection, its trapped register ranges. */
struct bar_map {
	uintptr_t start, end;
	int prot;
	int zapped; /* memory pages are PROT_NONE until the next touch faults them in */
	unsigned nregs;
	struct {
		uintptr_t start, end;
	} regs[MAX_BAR_REGS];
};

extern struct bar_map g_bar_maps[MAX_BAR_MAPS];
extern int g_nbar_maps;

/* The device mapping holding `addr`, or NULL (caller holds the lock). */
struct bar_map *bar_map_at(uintptr_t addr);
int bar_map_is_register(const struct bar_map *m, uintptr_t addr);
/* The engine let a zapped mapping's memory pages back in. */
void bar_map_faulted_in(struct bar_map *m);
/* Every answer's zap count: on a change, all device mappings are zapped (caller holds the lock). */
void bar_zaps_seen(uint32_t zaps);
/*
 * KVM_SET_USER_MEMORY_REGION(2) whose slot covers trapped registers: prints
 * why it cannot work and returns 1 with errno EFAULT; 0 for anything else.
 */
int kvm_slot_over_registers(int fd, unsigned long request, void *arg);
/* Installs the SIGSEGV trap (once); the program's action is kept as its own. */
void trap_install(void);

#pragma GCC visibility pop

#endif
