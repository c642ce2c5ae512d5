/* The library's state, its lock, and start-up from the environment. */
#include "preload.h"

unsigned long g_bits[MAX_FDS / LONG_BITS];

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
int g_active;
int g_sock = -1;
pid_t g_conn_pid;
uint64_t g_fork_token;
pid_t g_fork_parent;
struct sockaddr_un g_addr;
char g_root[PATH_MAX];
size_t g_rootlen;
char g_rootreal[PATH_MAX];
size_t g_rootreallen;
char *g_keep_env[4];

/*
 * The lock is one word, so that taking it, nesting in it and leaving it are
 * each one atomic step: a signal handler that calls in at any point of
 * another call of its thread finds it consistent (held by its own thread:
 * it nests). Bits 8-31: the holder's thread id (a live thread's id is
 * unique and below PID_MAX_LIMIT, 2^22), bit 7: a thread waits, bits 0-6:
 * the holder's nesting depth.
 */
#define LOCK_DEPTH 0x7fu
#define LOCK_WAITERS 0x80u
#define LOCK_OWNER 0xffffff00u

static uint32_t g_lock;

static void lock_take(void)
{
	uint32_t me = (uint32_t)self_tid() << 8, want = me | 1, w;

	if ((__atomic_load_n(&g_lock, __ATOMIC_RELAXED) & LOCK_OWNER) == me) {
		__atomic_fetch_add(&g_lock, 1, __ATOMIC_ACQUIRE);
		return;
	}
	for (;;) {
		w = 0;
		if (__atomic_compare_exchange_n(&g_lock, &w, want, 0, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return;
		if (!(w & LOCK_WAITERS) &&
		    !__atomic_compare_exchange_n(&g_lock, &w, w | LOCK_WAITERS, 0, __ATOMIC_RELAXED,
						 __ATOMIC_RELAXED))
			continue;
		syscall(SYS_futex, &g_lock, FUTEX_WAIT_PRIVATE, w | LOCK_WAITERS, NULL, NULL, 0);
		/* others may wait too: whoever took it after a wait wakes the next */
		want = me | 1 | LOCK_WAITERS;
	}
}

static void lock_drop(void)
{
	if ((__atomic_load_n(&g_lock, __ATOMIC_RELAXED) & LOCK_DEPTH) > 1)
		__atomic_fetch_sub(&g_lock, 1, __ATOMIC_RELEASE);
	else if (__atomic_exchange_n(&g_lock, 0, __ATOMIC_RELEASE) & LOCK_WAITERS)
		syscall(SYS_futex, &g_lock, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

int lock_depth(void)
{
	return (int)(__atomic_load_n(&g_lock, __ATOMIC_RELAXED) & LOCK_DEPTH);
}

void enter(struct guard *g)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &g->old);
	g->masked = 1;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &g->cancel);
	lock_take();
}

void enter_unmasked(struct guard *g)
{
	g->masked = 0;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &g->cancel);
	lock_take();
}

void guard_mask(struct guard *g)
{
	sigset_t all;

	if (g->masked)
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &g->old);
	g->masked = 1;
}

void leave(struct guard *g)
{
	lock_drop();
	pthread_setcancelstate(g->cancel, NULL);
	if (g->masked)
		pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

void lock_reinit(void)
{
	__atomic_store_n(&g_lock, 0, __ATOMIC_RELAXED);
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
	g_keep_env[3] = dup_env(UIOMMU_ENV_READY);
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
	if (engine_defer(kind))
		return; /* connects at its first need of the engine (engine-wait.c) */
	enter(&g);
	connect_engine(kind, 0);
	leave(&g);
}

void ensure_init(void)
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
