/* The library's state, its lock, and start-up from the environment. */
#include "preload.h"

unsigned long g_bits[MAX_FDS / LONG_BITS];

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
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

void enter(struct guard *g)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &g->old);
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &g->cancel);
	pthread_mutex_lock(&g_lock);
}

void leave(struct guard *g)
{
	pthread_mutex_unlock(&g_lock);
	pthread_setcancelstate(g->cancel, NULL);
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

void lock_reinit(void)
{
	pthread_mutexattr_t attr;

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&g_lock, &attr);
	pthread_mutexattr_destroy(&attr);
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
